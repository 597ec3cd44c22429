"""What results.json records about the machine and the software a benchmark ran on, so
that its numbers can be compared with another run's."""

from __future__ import annotations

import datetime
import os
import platform
from importlib import metadata
from pathlib import Path

import redis

PACKAGES = (
    "Django", "channels", "channels-redis", "daphne", "redis", "hiredis", "asgiref",
    "Twisted", "autobahn", "msgpack", "websockets", "py-spy",
)  # fmt: skip


def machine_facts(mode: str, redis_url: str) -> dict:
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "packages": {name: package_version(name) for name in PACKAGES},
        "redis_server": redis_server_version(redis_url),
        "c_speedups": c_speedups(),
        "load_average_start": load_average(),
    }


def c_speedups() -> dict:
    """The modules doing the hot work: C ones when the fast paths are installed. (The
    servers run this same interpreter; each variant also reports its Redis parser.)"""
    import msgpack
    from autobahn.websocket.utf8validator import Utf8Validator
    from redis.asyncio.connection import DefaultParser

    return {
        "redis_reply_parser": DefaultParser.__name__,
        "msgpack": msgpack.Packer.__module__,
        "autobahn_utf8_validator": Utf8Validator.__module__,
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass  # not Linux: ask platform
    return platform.processor() or platform.machine()


def package_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def redis_server_version(url: str) -> str:
    return redis_info(url, "server")["redis_version"]


def redis_cpu_seconds(url: str) -> float:
    """CPU seconds the Redis server has used so far."""
    cpu = redis_info(url, "cpu")
    return cpu["used_cpu_user"] + cpu["used_cpu_sys"]


def redis_info(url: str, section: str) -> dict:
    client = redis.Redis.from_url(url)
    try:
        return client.info(section)
    finally:
        client.close()


def load_average() -> float:
    """The one-minute load average: how busy the machine was around a run."""
    return round(os.getloadavg()[0], 2)
