"""The servers the benchmark measures: stage copies served by daphne in the variants it
compares (channel layer, layer CONFIG, slow handler), and the raw `websockets` ceiling; plus
what a server costs while a load runs (CPU seconds, peak memory)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil

from shared_tests.servers import Server, ServerFailed, daphne_command
from tools.course import REPO, load_course
from tools.grading.project import Project, find_project, load_failure
from tools.grading.sandbox import NO_SANDBOX
from tools.net import free_port

RSS_SAMPLE_SECONDS = 0.1
# Run in a variant's environment: its layer settings, and whether hiredis parses replies.
SHOW_LAYER = """
import json, bench_settings
from redis.asyncio.connection import DefaultParser
print(json.dumps({
    "channel_layer": bench_settings.CHANNEL_LAYERS["default"],
    "redis_parser": DefaultParser.__name__,
}))
"""


class ServerGone(RuntimeError):
    """A server process that exited during the benchmark; the message quotes its log."""


@dataclass(frozen=True)
class Variant:
    """One server the benchmark starts: a stage (or the ceiling) in one configuration."""

    name: str  # the key in results.json, e.g. "stage5-pubsub"
    label: str  # what the tables show, e.g. "stage 5, RedisPubSubChannelLayer"
    stage: int | None  # None: the raw `websockets` server (tools/bench/ceiling.py)
    env: tuple[tuple[str, str], ...] = ()  # BENCH_* variables for bench_settings/asgi
    bench_asgi: bool = False  # serve tools/overlay/bench_asgi.py, not the stage's app

    def describe(self) -> dict:
        return {"label": self.label, "stage": self.stage, "env": dict(self.env)}


@dataclass(frozen=True)
class BenchProject(Project):
    """A project copy run with the benchmark's settings (tools/overlay/bench_settings.py)."""

    extra_env: tuple[tuple[str, str], ...] = ()

    def environment(self, redis_url: str | None = None) -> dict[str, str]:
        env = super().environment(redis_url)
        env.update(DJANGO_SETTINGS_MODULE="bench_settings", **dict(self.extra_env))
        return env


class BenchServers:
    """Copies the stages once, starts every variant (a few at a time), stops them all."""

    def __init__(self, workdir: Path, redis_url: str):
        self.workdir = workdir
        self.redis_url = redis_url
        self.servers: dict[str, Server] = {}
        self.facts: dict[int, dict] = {}  # what loading each stage copy revealed
        self._copies: dict[int, Project] = {}

    def copy_of(self, stage: int) -> Project:
        if stage not in self._copies:
            source = find_project(load_course().stage(stage).path)
            copy = source.copy_to(self.workdir / f"stage{stage}")
            facts = copy.probe()
            failure = load_failure(facts)
            if failure:
                raise ServerFailed(f"stage {stage}: {failure}")
            # A stage that stores every message needs its tables.
            if load_course().stage(stage).migrate:
                failure = copy.manage(["migrate", "--noinput", "-v", "0"], NO_SANDBOX)
                if failure:
                    raise ServerFailed(
                        f"stage {stage}: `manage.py migrate` failed: {failure}"
                    )
            self._copies[stage], self.facts[stage] = copy, facts
        return self._copies[stage]

    def command(self, variant: Variant, port: int) -> tuple[Project, list[str]]:
        if variant.stage is None:
            # The ceiling runs from the repository; it has no settings to load.
            ceiling = [sys.executable, "-m", "tools.bench.ceiling", "--port", str(port)]
            return Project(REPO, settings_module=""), ceiling
        copy = self.copy_of(variant.stage)
        project = BenchProject(copy.root, copy.settings_module, variant.env)
        target = (
            "bench_asgi:application"
            if variant.bench_asgi
            else copy.asgi_target(self.facts[variant.stage].get("asgi_application"))
        )
        return project, daphne_command(target, port)

    def start(self, variants: list[Variant]) -> None:
        for stage in sorted({v.stage for v in variants if v.stage is not None}):
            self.copy_of(stage)  # copy and probe once, before the parallel starts

        def start_one(variant: Variant) -> None:
            port = free_port()
            project, command = self.command(variant, port)
            log = self.workdir / f"{variant.name}.log"
            server = Server(project, command, port, log, self.redis_url)
            try:
                server.start()
            except ServerFailed as failure:
                server.stop()
                raise ServerFailed(f"{variant.label}: {failure}") from None
            self.servers[variant.name] = server  # stop_all() stops what started

        # Two at a time: each start imports Django, and the machine has two cores.
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(start_one, variants))  # raises the first failure

    def layer_of(self, variant: Variant) -> dict:
        """The channel layer a variant's server runs with (its Redis address left out),
        and the Redis reply parser redis-py picks in that server's environment."""
        if variant.stage is None:
            return {"channel_layer": None}
        project, _ = self.command(variant, port=0)
        completed = subprocess.run(
            [sys.executable, "-c", SHOW_LAYER],
            cwd=project.root,
            env=project.environment(self.redis_url),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        facts = json.loads(completed.stdout)
        facts["channel_layer"].get("CONFIG", {}).pop("hosts", None)
        return facts

    def stop_all(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()


def live_pid(server: Server, name: str) -> int:
    """The server's process id; ServerGone if that process has exited."""
    # The process is the server itself (daphne or the ceiling), not a shell: measure it.
    if server.pid is None:
        raise ServerGone(f"the {name} server exited: {server.last_log_line()}")
    return server.pid


class Meter:
    """CPU seconds and peak resident memory of one process while a `with` block runs."""

    def __init__(self, pid: int):
        self.process = psutil.Process(pid)
        self.cpu_s = 0.0
        self.peak_rss_mb = 0.0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample_rss, daemon=True)

    def _cpu(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system

    def _sample_rss(self) -> None:
        while True:
            try:
                rss = self.process.memory_info().rss / 2**20
            except psutil.Error:
                return  # the process exited: __exit__ says so
            self.peak_rss_mb = max(self.peak_rss_mb, round(rss, 1))
            if self._stop.wait(RSS_SAMPLE_SECONDS):
                return

    def __enter__(self) -> Meter:
        self._cpu_before = self._cpu()
        self._sampler.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._sampler.join()
        try:
            self.cpu_s = round(self._cpu() - self._cpu_before, 3)
        except psutil.Error:
            raise ServerGone("the server exited during the run") from None
