# chat/presence.py
"""Who is in each room, kept in Redis so that every server process sees the same list.

Channels' groups cannot be listed, so presence is kept apart: one entry per open socket in
a sorted set per room, scored with the time the entry expires. Each socket renews its entry
every HEARTBEAT seconds. A socket whose server process died stops renewing, so its entry
drops out EXPIRY seconds later: nobody has to run its disconnect().
"""
import asyncio
import time
import weakref

import redis.asyncio as redis
from django.conf import settings

HEARTBEAT = 2  # seconds between renewals (and between checks of the list)
EXPIRY = 3 * HEARTBEAT  # two missed renewals are forgiven; the third one means gone

# One Redis client per event loop (a client cannot be shared between loops).
_clients = weakref.WeakKeyDictionary()


def _redis():
    loop = asyncio.get_running_loop()
    if loop not in _clients:
        _clients[loop] = redis.from_url(settings.REDIS_URL)
    return _clients[loop]


def _key(room_hash):
    return f"presence:{room_hash}"


async def renew(room_hash, channel_name, name):
    """Say that this socket (and so `name`) is in the room for EXPIRY more seconds."""
    member = f"{channel_name} {name}"
    await _redis().zadd(_key(room_hash), {member: time.time() + EXPIRY})


async def leave(room_hash, channel_name, name):
    await _redis().zrem(_key(room_hash), f"{channel_name} {name}")


async def names_in(room_hash):
    """The names of everyone in the room, each once (a user may have several tabs open)."""
    key = _key(room_hash)
    await _redis().zremrangebyscore(key, 0, time.time())  # forget the expired
    members = await _redis().zrange(key, 0, -1)
    return sorted({member.decode().split(" ", 1)[1] for member in members})
