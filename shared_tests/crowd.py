"""Many chat clients at once (asyncio + websockets), for the load and loss tests."""

from __future__ import annotations

import asyncio
import json
import threading
import time

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from shared_tests.chat_client import chat_path, is_presence
from shared_tests.servers import Server

PROGRESS_TIMEOUT = 10  # seconds without any new message before a receiver gives up


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
        if not is_presence(frame):  # who is here (stage 8): not a message
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


class BackgroundLoop:
    """An asyncio event loop in its own thread: sockets opened on it stay open (and keep
    reading) while the tests do other things."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine, timeout: float = 120):
        """Run a coroutine on the loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


class IdleCrowds:
    """Idle clients for the idle-sockets behaviour, opened the moment a stage's server
    starts: their half-minute of silence then overlaps every other test of the stage (whose
    idle test runs last) instead of adding to the run."""

    def __init__(self, size: int):
        self.size = size
        self.loop: BackgroundLoop | None = None
        self.opened: dict[int, tuple[list[ClientConnection], float]] = {}

    def open(self, stage: int, server: Server, room: str) -> None:
        if self.loop is None:
            self.loop = BackgroundLoop()
        sockets = self.loop.run(open_crowd(server, room, self.size))
        self.opened[stage] = (sockets, time.monotonic())

    def close(self) -> None:
        if self.loop is None:
            return
        for sockets, _ in self.opened.values():
            self.loop.run(close_all(sockets))
        self.loop.stop()
