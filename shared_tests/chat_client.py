"""A WebSocket chat client for the tests (the `websockets` library), whose failures read as
sentences a student understands."""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from contextlib import contextmanager

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from shared_tests.servers import Server

REPLY_TIMEOUT = (
    5  # seconds to wait for a message that should come (it takes milliseconds)
)
QUIET_WINDOW = 0.5  # seconds of silence that show a message did NOT come


def room_name(prefix: str = "lobby") -> str:
    """A fresh room name; word characters only, so the official tutorial's \\w+ route takes it."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def chat_path(room: str) -> str:
    """The WebSocket path of a room, percent-encoded like the room page's encodeURIComponent."""
    return f"/ws/chat/{urllib.parse.quote(room, safe='')}/"


def room_page_path(room: str) -> str:
    return f"/chat/{urllib.parse.quote(room, safe='')}/"


def describe_refusal(error: Exception) -> str:
    if isinstance(error, InvalidStatus):
        return f"HTTP {error.response.status_code}"
    if isinstance(error, ConnectionClosed):
        return f"closed with code {error.rcvd.code if error.rcvd else 'none'}"
    return type(error).__name__


def open_socket(
    server: Server, path: str, origin: str | None = None, cookie: str = ""
) -> ClientConnection:
    """Open a WebSocket (with a browser's Cookie header, when given); raises what websockets
    raises when the server refuses it."""
    return connect(
        server.ws_url(path),
        origin=origin or server.origin,
        additional_headers={"Cookie": cookie} if cookie else None,
        open_timeout=REPLY_TIMEOUT,
        close_timeout=2,
        max_size=None,
        ssl=server.client_ssl,
    )


@contextmanager
def chat_socket(server: Server, room: str, cookie: str = ""):
    """An open chat socket in `room`; a refusal fails the test with a readable line."""
    try:
        socket = open_socket(server, chat_path(room), cookie=cookie)
    except (InvalidHandshake, ConnectionClosed, OSError, TimeoutError) as error:
        raise AssertionError(
            f"the server refused the WebSocket for room {room!r} ({describe_refusal(error)})"
        ) from None
    with socket:
        yield socket


def send_message(socket: ClientConnection, text: str) -> None:
    socket.send(json.dumps({"message": text}))


def is_presence(frame) -> bool:
    """A list of who is in the room ({"presence": [...]}, from stage 8), which a page may
    receive at any time: the message tests look past it."""
    try:
        data = json.loads(frame)
    except (TypeError, ValueError):
        return False
    return isinstance(data, dict) and "presence" in data


def next_frame(socket: ClientConnection, timeout: float) -> str | bytes:
    """The next frame that is not a presence list (raises TimeoutError like recv)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = socket.recv(timeout=max(0.0, deadline - time.monotonic()))
        if not is_presence(frame):
            return frame


def next_reply(
    socket: ClientConnection, expected: str, timeout: float = REPLY_TIMEOUT
) -> dict:
    """The next frame as JSON; `expected` says in words what should have come."""
    try:
        frame = next_frame(socket, timeout)
    except TimeoutError:
        raise AssertionError(
            f"nothing arrived within {timeout:g} s: expected {expected}"
        ) from None
    except ConnectionClosed as error:
        raise AssertionError(
            f"the socket was closed ({describe_refusal(error)}) while waiting for {expected}"
        ) from None
    try:
        reply = json.loads(frame)
    except (TypeError, ValueError):
        raise AssertionError(
            f"expected {expected} as JSON, got {frame!r:.80}"
        ) from None
    if not isinstance(reply, dict):
        raise AssertionError(f"expected {expected} as a JSON object, got {frame!r:.80}")
    return reply


def expect_message(socket: ClientConnection, text: str, who: str) -> None:
    """Assert the next frame is {"message": text}."""
    reply = next_reply(socket, f'{{"message": {text!r}}} at {who}')
    assert reply.get("message") == text, (
        f'{who} expected {{"message": {text!r}}}, got {reply}'
    )


def frames_within(socket: ClientConnection, seconds: float = QUIET_WINDOW) -> list[str]:
    """Every frame that arrives within `seconds` (used to show that nothing more came)."""
    frames = []
    while True:
        try:
            frame = socket.recv(timeout=seconds)
        except (TimeoutError, ConnectionClosed):
            return frames
        if not is_presence(frame):
            frames.append(frame)
