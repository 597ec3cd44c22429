"""Redis for the workshop: tell whether one answers, and start a private one on a free port."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from pytest_redis.executor import RedisExecutor

import tools.executors  # noqa: F401 - turns off mirakuru's killing at exit
from tools.net import HOST, free_port

INSTALL_HINT = (
    "redis-server is not installed: run `sudo apt-get install redis-server` "
    "(Debian/Ubuntu) or `brew install redis` (macOS)."
)


class RedisMissing(RuntimeError):
    """No redis-server on this machine; the message says how to install it."""


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    """Whether a Redis server answers PING at `url`."""
    client = redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def redis_server_executable() -> str:
    executable = shutil.which("redis-server")
    if executable is None:
        raise RedisMissing(INSTALL_HINT)
    return executable


class PrivateRedis:
    """A redis-server on a free loopback port, in a throwaway folder, that saves nothing.

    Use as a context manager, or call start()/stop(); stop() then start() brings the same port
    back, which is how the tests simulate Redis going away and coming back.
    """

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        # A short path: Redis' unix socket path must stay under about 100 characters.
        self.datadir = Path(tempfile.mkdtemp(prefix="workshop-redis-"))
        self._executor = RedisExecutor(
            executable=redis_server_executable(),
            databases=16,
            redis_timeout=0,  # never close idle clients: channels-redis keeps connections open
            loglevel="warning",
            host=HOST,
            port=self.port,
            datadir=self.datadir,
            startup_timeout=20,
        )

    def url(self, db: int = 0) -> str:
        return f"redis://{HOST}:{self.port}/{db}"

    def start(self) -> PrivateRedis:
        self._executor.start()
        return self

    def stop(self) -> None:
        self._executor.stop()

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Redis answers nothing until the block ends (its process is stopped): clients'
        commands wait in their sockets, as behind a stalled network, and nothing is lost."""
        pid = self._executor.process.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    def close(self) -> None:
        """Stop the server and remove its folder."""
        if self._executor.running():
            self._executor.stop()
        shutil.rmtree(self.datadir, ignore_errors=True)

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()


def main() -> int:
    """`make redis`: a Redis for a student's own project, on 6379 when it is free, until
    Ctrl-C; prints the REDIS_URL to export."""
    import time

    from tools.net import port_in_use

    try:
        redis = PrivateRedis(port=None if port_in_use(6379) else 6379).start()
    except RedisMissing as missing:
        print(missing, file=sys.stderr)
        return 1
    print(f"Redis is running at {redis.url()} (Ctrl-C stops it). In another terminal:")
    print(
        f'  export REDIS_URL={redis.url()}     (PowerShell: $env:REDIS_URL = "{redis.url()}")'
    )
    print("  python manage.py runserver", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        redis.close()
        print("Stopped Redis.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
