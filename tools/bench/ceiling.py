"""The benchmark's ceiling: the chat's protocol on the `websockets` library alone, with no
Django, Channels or channel layer, so the benchmark can show what those layers cost.

`python -m tools.bench.ceiling --port N` serves ws://127.0.0.1:N/ws/chat/<room>/: every
{"message": "..."} a client sends goes to every client in that room, the sender included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections import defaultdict

from websockets.asyncio.server import ServerConnection, broadcast, serve

from tools.net import HOST

ROOM_PREFIX = "/ws/chat/"

rooms: defaultdict[str, set[ServerConnection]] = defaultdict(set)


async def chat(socket: ServerConnection) -> None:
    path = socket.request.path
    if not (path.startswith(ROOM_PREFIX) and path.endswith("/")):
        await socket.close(4404, "not a chat room")
        return
    room = rooms[path[len(ROOM_PREFIX) : -1]]
    room.add(socket)
    try:
        async for frame in socket:
            message = json.loads(frame).get("message")
            if isinstance(message, str):
                # One write per recipient, no task per recipient: the cheapest fan-out.
                broadcast(room, json.dumps({"message": message}))
    finally:
        room.discard(socket)


async def main(port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with serve(chat, HOST, port, compression=None, max_size=2**16):
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
