"""The servers the benchmark measures: stage copies served by daphne in the variants it
compares (channel layer, layer CONFIG, slow handler), stage 9 as deployed (daphne workers behind
nginx over TLS, tools/deployment/), and the raw `websockets` ceiling; plus what a server costs
while a load runs (CPU seconds, peak memory)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil

from shared_tests.servers import Endpoint, Server, ServerFailed, daphne_command
from tools.course import REPO, load_course
from tools.deployment.certificate import TLSFiles, self_signed
from tools.deployment.nginx import NginxProblem, NginxSite, nginx_command, write_config
from tools.deployment.workers import BEHIND_NGINX, distinct_free_ports
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
    workers: int = 0  # > 0: as deployed, that many daphne workers behind nginx over TLS

    def describe(self) -> dict:
        described = {"label": self.label, "stage": self.stage, "env": dict(self.env)}
        return described | ({"workers": self.workers} if self.workers else {})


@dataclass(frozen=True)
class BenchProject(Project):
    """A project copy run with the benchmark's settings (tools/overlay/bench_settings.py)."""

    extra_env: tuple[tuple[str, str], ...] = ()

    def environment(self, redis_url: str | None = None) -> dict[str, str]:
        env = super().environment(redis_url)
        env.update(DJANGO_SETTINGS_MODULE="bench_settings", **dict(self.extra_env))
        return env


class Deployment(Endpoint):
    """A stage as deployed: nginx on `port` (https://, wss://) in front of daphne workers.
    Its certificate is self-signed: the load client trusts it as its CA file."""

    secure = True

    def __init__(self, port: int, certificate: Path):
        self.port = port
        self.certificate = certificate
        self.workers: list[Server] = []
        self.nginx: Server | None = None

    def stop(self) -> None:
        for server in [*self.workers, *([self.nginx] if self.nginx else [])]:
            server.stop()


class BenchServers:
    """Copies the stages once, starts every variant (a few at a time), stops them all."""

    def __init__(self, workdir: Path, redis_url: str):
        self.workdir = workdir
        self.redis_url = redis_url
        self.servers: dict[str, Server | Deployment] = {}
        self.facts: dict[int, dict] = {}  # what loading each stage copy revealed
        self._copies: dict[int, Project] = {}
        self._tls: TLSFiles | None = None

    def copy_of(self, stage: int) -> Project:
        if stage not in self._copies:
            source = find_project(load_course().stage(stage).path)
            copy = source.copy_to(self.workdir / f"stage{stage}")
            # A stage that stores every message needs its tables; a deployed one, the
            # static files nginx serves (as `make step9` prepares them). Each is a Django
            # start-up of its own: they run while the probe loads the project.
            commands = ["migrate"] if load_course().stage(stage).migrate else []
            if load_course().stage(stage).deploy:
                commands.append("collectstatic")
            with ThreadPoolExecutor(max_workers=1 + len(commands)) as pool:
                probing = pool.submit(copy.probe)
                failures = pool.map(
                    lambda command: copy.manage(
                        [command, "--noinput", "-v", "0"], NO_SANDBOX
                    ),
                    commands,
                )
                facts, failures = probing.result(), list(failures)
            failure = load_failure(facts)
            if failure:
                raise ServerFailed(f"stage {stage}: {failure}")
            for command, failure in zip(commands, failures, strict=True):
                if failure:
                    raise ServerFailed(
                        f"stage {stage}: `manage.py {command}` failed: {failure}"
                    )
            self._copies[stage], self.facts[stage] = copy, facts
        return self._copies[stage]

    def command(self, variant: Variant, port: int) -> tuple[Project, list[str]]:
        if variant.stage is None:
            # The ceiling runs from the repository; it has no settings to load.
            ceiling = [sys.executable, "-m", "tools.bench.ceiling", "--port", str(port)]
            return Project(REPO, settings_module=""), ceiling
        copy = self.copy_of(variant.stage)
        env = variant.env + (tuple(BEHIND_NGINX.items()) if variant.workers else ())
        project = BenchProject(copy.root, copy.settings_module, env)
        target = (
            "bench_asgi:application"
            if variant.bench_asgi
            else copy.asgi_target(self.facts[variant.stage].get("asgi_application"))
        )
        return project, daphne_command(
            target, port, proxy_headers=bool(variant.workers)
        )

    def tls(self) -> TLSFiles:
        """One self-signed certificate for every deployment of the run."""
        if self._tls is None:
            self._tls = self_signed(self.workdir / "tls")
        return self._tls

    def deploy(self, variant: Variant) -> Deployment:
        """nginx (the stage's own deploy/nginx.conf.template) in front of variant.workers
        daphne workers, as `make step9` serves it; every process started is in the result,
        so stopping it stops them (also when one fails to start)."""
        nginx_port, *worker_ports = distinct_free_ports(variant.workers + 1)
        copy = self.copy_of(variant.stage)
        site = NginxSite(
            run_dir=self.workdir / f"{variant.name}-nginx",
            port=nginx_port,
            worker_ports=tuple(worker_ports),
            tls=self.tls(),
            static_root=copy.root / self.facts[variant.stage].get("static_root", ""),
        )
        try:  # before any worker starts: no nginx, no deployment
            nginx = nginx_command(write_config(copy.root, site))
        except NginxProblem as problem:
            raise ServerFailed(str(problem)) from None
        deployment = Deployment(nginx_port, site.tls.certificate)
        self.servers[variant.name] = deployment  # stop_all() stops what started
        for number, port in enumerate(worker_ports, 1):
            project, command = self.command(variant, port)
            log = self.workdir / f"{variant.name}-worker{number}.log"
            deployment.workers.append(
                Server(project, command, port, log, self.redis_url)
            )
        with ThreadPoolExecutor(max_workers=variant.workers) as pool:
            list(pool.map(Server.start, deployment.workers))  # raises the first failure
        log = self.workdir / f"{variant.name}-nginx.log"
        deployment.nginx = Server(project, nginx, nginx_port, log, self.redis_url)
        deployment.nginx.start()
        return deployment

    def start(self, variants: list[Variant]) -> None:
        # Copy and probe each stage once, before the servers start.
        stages = sorted({v.stage for v in variants if v.stage is not None})
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(self.copy_of, stages))  # raises the first failure
        if any(variant.workers for variant in variants):
            self.tls()  # once, before deployments start side by side

        def start_one(variant: Variant) -> None:
            if variant.workers:
                try:
                    self.deploy(variant)
                except ServerFailed as failure:
                    raise ServerFailed(f"{variant.label}: {failure}") from None
                return
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

    def run_python(self, variant: Variant, code: str) -> str:
        """What `code` prints, run by Python in the environment of the variant's server."""
        project, _ = self.command(variant, port=0)
        completed = subprocess.run(
            [sys.executable, "-c", code],
            cwd=project.root,
            env=project.environment(self.redis_url),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return completed.stdout

    def layer_of(self, variant: Variant) -> dict:
        """The channel layer a variant's server runs with (its Redis address left out),
        and the Redis reply parser redis-py picks in that server's environment."""
        if variant.stage is None:
            return {"channel_layer": None}
        facts = json.loads(self.run_python(variant, SHOW_LAYER))
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


def live_pids(server: Server | Deployment, name: str) -> tuple[list[int], list[int]]:
    """The Python server processes (daphne, one per worker, or the ceiling) and the proxy's
    (nginx: none without one); ServerGone if one has exited."""
    if isinstance(server, Deployment):
        workers = [live_pid(worker, name) for worker in server.workers]
        return workers, [live_pid(server.nginx, name)]
    return [live_pid(server, name)], []


class Meter:
    """CPU seconds and peak resident memory of some processes (their children included:
    nginx's work is done by its worker process) while a `with` block runs."""

    def __init__(self, pids: list[int]):
        parents = [psutil.Process(pid) for pid in pids]
        self.processes = [
            *parents,
            *(child for parent in parents for child in parent.children(recursive=True)),
        ]
        self.cpu_s = 0.0
        self.peak_rss_mb = 0.0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample_rss, daemon=True)

    def _cpu(self) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self.processes)  # user + system

    def _sample_rss(self) -> None:
        while True:
            try:
                rss = sum(p.memory_info().rss for p in self.processes) / 2**20
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
