"""Where a server's time goes: py-spy samples the running process while a load runs, and
each sampled stack is put under the first cost below that one of its frames belongs to."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

SAMPLES_PER_SECOND = 100

# (cost, frame markers): a stack counts for the first cost any of its frames matches.
# The database's first: its work runs on the thread that the per-handler hop also uses.
COSTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "database: a new connection per message, and closing it",
        ("get_new_connection", "DatabaseWrapper.close (", "ensure_connection"),
    ),
    ("database: the INSERT and its commit", ("SQLInsertCompiler.execute_sql",)),
    (
        "close_old_connections() thread hop before every handler (Channels 4.2+)",
        ("aclose_old_connections", "SyncToAsync.__call__", "concurrent/futures/"),
    ),
    ("group_send: Redis commands", ("RedisChannelLayer.group_send",)),
    (
        "layer receive: wait tasks per consumer, fan-out to buffers",
        ("RedisChannelLayer.receive", "BoundedQueue", "queues.py"),
    ),
    (
        "WebSocket frames out (daphne, autobahn, Twisted writes)",
        ("handle_reply", "serverSend", "sendMessage", "doWrite", "untilConcludes"),
    ),
    (
        "WebSocket frames in (Twisted reads, autobahn parsing)",
        ("dataReceived", "onMessage", "doRead"),
    ),
    (
        "consumer dispatch and chat_message (json)",
        ("await_many_dispatch", "AsyncConsumer.dispatch", "chat_message", "json/"),
    ),
    (
        "event loop: epoll, callbacks, task switches",
        ("selectors.py", "base_events.py", "events.py", "tasks.py"),
    ),
)
OTHER = "other"


class ProfilerMissing(RuntimeError):
    """py-spy is not installed or may not attach to the process here."""


def py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent))
    found = found or shutil.which("py-spy")
    if found is None:
        raise ProfilerMissing("py-spy is not installed (`make setup` installs it)")
    return found


def start_sampling(pid: int, seconds: float, output: Path) -> subprocess.Popen:
    """Sample `pid` for `seconds` into `output` (py-spy's raw collapsed stacks)."""
    command = [
        py_spy(), "record", "--pid", str(pid), "--output", str(output),
        "--duration", str(max(1, round(seconds))), "--rate", str(SAMPLES_PER_SECOND),
        "--format", "raw", "--nolineno", "--nonblocking",
    ]  # fmt: skip
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def finish_sampling(sampler: subprocess.Popen, output: Path) -> dict:
    """Wait for py-spy and return the costs it saw, largest first."""
    _, errors = sampler.communicate(timeout=60)
    if sampler.returncode != 0 or not output.exists():
        last = (errors.strip().splitlines() or ["no output"])[-1]
        raise ProfilerMissing(f"py-spy failed: {last}")
    return summarize(output.read_text(encoding="utf-8"))


def cost_of(frames: list[str]) -> str:
    for cost, markers in COSTS:
        if any(marker in frame for frame in frames for marker in markers):
            return cost
    return OTHER


def summarize(raw: str) -> dict:
    """Shares of the sampled (non-idle) time per cost, from py-spy's raw output."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[cost_of(stack.split(";"))] += int(count)
    total = sum(counts.values())
    return {
        "samples": total,
        "costs": [
            {"cost": cost, "share": round(count / total, 3)}
            for cost, count in counts.most_common()
        ]
        if total
        else [],
    }
