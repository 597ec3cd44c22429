# chat/middleware.py
# Beyond the tutorial: when Redis is unreachable, close the socket with a clear code.
import logging

from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# 4000-4999 are free for applications; 4503 mirrors HTTP's "503 Service Unavailable".
REDIS_UNAVAILABLE = 4503


class CloseOnRedisError:
    """ASGI middleware: a consumer that cannot reach Redis gets its socket closed with 4503."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        accepted = False

        async def send_and_track(message):
            nonlocal accepted
            accepted = accepted or message["type"] == "websocket.accept"
            await send(message)

        try:
            await self.app(scope, receive, send_and_track)
        except RedisError as error:
            logger.error(
                "Cannot reach Redis (%s). Start it with `redis-server`, or point "
                "REDIS_URL at a running one. Closing the socket with code %d.",
                error,
                REDIS_UNAVAILABLE,
            )
            if not accepted:
                await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": REDIS_UNAVAILABLE})
