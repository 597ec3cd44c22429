"""A stage served as deployed (stage 9): two daphne workers of its copy behind nginx, filled in
from the project's own deploy/nginx.conf.template, over TLS; every process in the sandbox
(the template is the student's, so nginx is student code too)."""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from functools import cached_property

from shared_tests.chat_client import chat_path, describe_refusal, open_socket, room_name
from shared_tests.servers import Endpoint, Server
from shared_tests.stage_under_test import StageUnderTest
from tools.deployment.nginx import (
    TEMPLATE,
    NginxProblem,
    NginxSite,
    nginx_command,
    render,
)
from tools.deployment.workers import BEHIND_NGINX
from tools.grading.copy_files import (
    UnsafePath,
    fresh_folder,
    is_file,
    read_text,
    write_text,
)
from tools.net import free_port

WORKERS = 2


class DeploymentProblem(AssertionError):
    """The deployment could not start; the message says what and why."""


@dataclass(frozen=True)
class BeforeSocket:
    """The workers' state before a socket is opened in `room` (Deployment.worker_of)."""

    room: str
    connections: dict[Server, set[str]]  # from the kernel
    logged: dict[Server, int]  # from the workers' logs


class Deployment(Endpoint):
    """https:// and wss:// at nginx's port; `workers` are the daphne servers behind it."""

    secure = True

    def __init__(self, stage: StageUnderTest):
        self.stage = stage
        self.workers: list[Server] = []
        self.nginx: Server | None = None
        self.idle_worker: Server | None = None  # the worker of the idle test's socket
        self.failure: AssertionError | None = None  # why it could not start
        self.port = free_port()

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> Deployment:
        project = self.stage.project
        static_root = self.stage.facts.get("static_root") or ""
        if not static_root:
            raise DeploymentProblem(
                "settings.py sets no STATIC_ROOT, so `manage.py collectstatic` has nowhere "
                "to put the files nginx serves"
            )
        self.stage.prepare_database()
        failure = project.manage(["collectstatic", "--noinput"], self.stage.sandbox)
        if failure:
            raise DeploymentProblem(
                f"`python manage.py collectstatic --noinput` failed: {failure}"
            )
        for number in range(1, WORKERS + 1):
            self.start_worker(number)
        try:  # the project's processes run: nothing written or read through a link
            tls, self.certificate_pem = self.stage.write_tls(".tls")
            run_dir = fresh_folder(project.root, ".nginx", self.stage.sandbox.uid)
            if not is_file(project.root, TEMPLATE):
                raise NginxProblem(f"the project has no {TEMPLATE}")
            site = NginxSite(
                run_dir=run_dir,
                port=self.port,
                worker_ports=tuple(worker.port for worker in self.workers),
                tls=tls,
                static_root=project.root / static_root,
            )
            config = render(read_text(project.root, TEMPLATE), site)
            write_text(project.root, ".nginx/nginx.conf", config)
            command = nginx_command(run_dir / "nginx.conf")
        except (NginxProblem, UnsafePath) as problem:
            raise DeploymentProblem(str(problem)) from None
        self.nginx = self.stage.pool.start_program(
            project, command, self.port, f"stage{self.stage.number}-nginx"
        )
        return self

    def start_worker(self, number: int, port: int | None = None) -> Server:
        """Worker `number` (1, 2, ...), on a free port or on `port` (a restart)."""
        worker = self.stage.start_server(
            self.stage.redis_url,
            f"worker{number}",
            port=port,
            proxy_headers=True,
            extra_env=BEHIND_NGINX,
        )
        if number <= len(self.workers):
            self.workers[number - 1] = worker
        else:
            self.workers.append(worker)
        return worker

    def kill_worker(self, worker: Server) -> None:
        """SIGKILL, as when a worker's process dies (it cannot say goodbye to anyone)."""
        self.stage.stop_server(worker, kill=True)

    def stop(self) -> None:
        for server in [self.nginx, *self.workers]:
            if server is not None and server in self.stage.pool.running:
                self.stage.stop_server(server)

    def death(self) -> str | None:
        """Why nginx or a worker is gone, or None."""
        for server in [self.nginx, *self.workers]:
            death = server.death() if server else "nginx did not start"
            if death:
                return death
        return None

    def open_idle_socket(self) -> None:
        """One socket through nginx, left idle from now until the idle test (run last)."""
        self.idle_room = room_name("idle")
        self.idle_socket, self.idle_worker, self.idle_refusal = None, None, ""
        before = self.before_socket(self.idle_room)
        try:
            # Entered by hand: it stays open across tests, until the idle test closes it.
            socket = open_socket(self, chat_path(self.idle_room)).__enter__()
            self.idle_worker = self.worker_of(before)
            self.idle_socket = socket
        except Exception as error:  # noqa: BLE001 - the idle test says it could not connect
            self.idle_refusal = describe_refusal(error)
        self.idle_since = time.monotonic()

    # -- clients ----------------------------------------------------------------------------
    @cached_property
    def client_ssl(self) -> ssl.SSLContext:
        """A client context that trusts the deployment's self-signed certificate."""
        return ssl.create_default_context(cadata=self.certificate_pem)

    def before_socket(self, room: str) -> BeforeSocket:
        """What the workers have before a socket is opened in `room` (see worker_of)."""
        return BeforeSocket(
            room, self.upstream_connections(), self.logged_sockets(room)
        )

    def worker_of(self, before: BeforeSocket) -> Server:
        """The worker nginx sent the socket opened since `before` to. The kernel says: the
        worker with a TCP connection that was not open before. When more than one has one
        (the page's own requests, kept alive by nginx), the workers' logs break the tie
        between those, never alone: a project can print what it likes."""
        deadline = time.monotonic() + 2
        while True:
            after = self.upstream_connections()
            grown = [w for w in self.workers if after[w] - before.connections[w]]
            if len(grown) > 1:
                logged = self.logged_sockets(before.room)
                grown = [w for w in grown if logged[w] > before.logged[w]] or grown
            if len(grown) == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if len(grown) != 1:
            raise AssertionError(
                f"could not tell which worker took the socket in room {before.room!r}: "
                f"{len(grown)} workers had a new connection from nginx"
            )
        return grown[0]

    def upstream_connections(self) -> dict[Server, set[str]]:
        """Each worker's open TCP connections, by the address they come from (nginx's), as
        the kernel lists them."""
        by_port = established_connections({w.port for w in self.workers})
        return {w: by_port[w.port] for w in self.workers}

    def logged_sockets(self, room: str) -> dict[Server, int]:
        """How many sockets each worker says it accepted in `room` (daphne logs WSCONNECT)."""
        line = f"WSCONNECT /ws/chat/{room}/"
        return {w: w.log_since(0).count(line) for w in self.workers}


ESTABLISHED = "01"  # a connection's state in /proc/net/tcp


def established_connections(ports: set[int]) -> dict[int, set[str]]:
    """The established TCP connections to each of `ports` on this machine (in this network
    namespace), by the address they come from: /proc/net/tcp and tcp6 list them."""
    found: dict[int, set[str]] = {port: set() for port in ports}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as lines:
            next(lines)  # the header
            for line in lines:
                local, remote, state = line.split()[1:4]
                port = int(local.rpartition(":")[2], 16)
                if state == ESTABLISHED and port in found:
                    found[port].add(remote)
    return found
