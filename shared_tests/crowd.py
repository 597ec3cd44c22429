"""Many chat clients at once (asyncio + websockets), for the load and loss tests."""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from shared_tests.chat_client import chat_path
from shared_tests.servers import Server

PROGRESS_TIMEOUT = 20  # seconds without any new message before a receiver gives up


async def open_crowd(server: Server, room: str, count: int) -> list[ClientConnection]:
    """`count` open sockets in `room`, connected a few at a time."""
    limit = asyncio.Semaphore(20)

    async def one() -> ClientConnection:
        async with limit:
            return await connect(
                server.ws_url(chat_path(room)),
                origin=server.origin,
                open_timeout=30,
                max_size=None,
                ping_interval=None,  # the tests watch the server's behaviour, not our pings
            )

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def receive_messages(socket: ClientConnection, expected: int) -> list[str]:
    """Messages received until `expected` arrived, the socket closed, or progress stopped."""
    messages: list[str] = []
    while len(messages) < expected:
        try:
            frame = await asyncio.wait_for(socket.recv(), PROGRESS_TIMEOUT)
        except (TimeoutError, ConnectionClosed):
            break
        messages.append(json.loads(frame).get("message"))
    return messages


async def close_all(sockets: list[ClientConnection]) -> None:
    await asyncio.gather(
        *(socket.close() for socket in sockets), return_exceptions=True
    )


def abnormal_closes(sockets: list[ClientConnection]) -> list[str]:
    """A description of every socket the server closed (or that failed) while it should be open."""
    closed = []
    for index, socket in enumerate(sockets):
        if socket.close_code is not None:
            closed.append(f"client {index} closed with code {socket.close_code}")
    return closed


def loss_report(received: list[list[str]], expected: set[str]) -> list[str]:
    """For each client that missed messages: how many, of how many."""
    lines = []
    for index, messages in enumerate(received):
        missing = expected - set(messages)
        if missing:
            lines.append(
                f"client {index} received {len(expected) - len(missing)} of "
                f"{len(expected)} messages ({len(missing)} lost)"
            )
    return lines
