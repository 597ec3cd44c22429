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
    mime_types,
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
from tools.net import established_connections, free_port

WORKERS = 2


class DeploymentProblem(AssertionError):
    """The deployment could not start; the message says what and why."""


@dataclass(frozen=True)
class BeforeSocket:
    """The workers' state before a socket is opened in `room` (Deployment.worker_of)."""

    room: str
    connections: dict[int, set[tuple[str, str]]]  # by worker port, from the kernel
    logged: dict[int, int]  # by worker port, from the workers' logs


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
            write_text(project.root, ".nginx/mime.types", mime_types())
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
        try:
            for _ in range(3):  # another socket opened meanwhile: try again
                # It stays open across tests, until the idle test closes it.
                socket, worker = self.socket_and_worker(self.idle_room)
                if worker is not None:
                    self.idle_socket, self.idle_worker = socket, worker
                    break
                socket.close()
            else:
                self.idle_refusal = "could not tell which worker took it"
        except Exception as error:  # noqa: BLE001 - the idle test says it could not connect
            self.idle_refusal = describe_refusal(error)
        self.idle_since = time.monotonic()

    # -- clients ----------------------------------------------------------------------------
    @cached_property
    def client_ssl(self) -> ssl.SSLContext:
        """A client context that trusts the deployment's self-signed certificate."""
        return ssl.create_default_context(cadata=self.certificate_pem)

    def socket_and_worker(self, room: str, cookie: str = ""):
        """A socket opened through nginx in `room` (the caller closes it), and the worker
        that took it (None: could not tell, see worker_of)."""
        before = self.before_socket(room)
        # Entered by hand: the idle test's socket stays open across tests.
        socket = open_socket(self, chat_path(room), cookie=cookie).__enter__()
        # No page's own requests here: a second new connection is not waited out for long.
        return socket, self.worker_of(before, patience=0.5)

    def before_socket(self, room: str) -> BeforeSocket:
        """What the workers have before a socket is opened in `room` (see worker_of)."""
        ports = {w.port for w in self.workers}
        return BeforeSocket(
            room, established_connections(ports), self.logged_sockets(room)
        )

    def worker_of(
        self, before: BeforeSocket, tie_break_by_log=False, patience: float = 2
    ) -> Server | None:
        """The worker nginx sent the socket opened since `before` to: the one with a TCP
        connection that was not open before, as the kernel lists them (a project prints
        what it likes in its log). None when that is not one worker: none (nginx reused a
        connection it kept alive) or several, unless `tie_break_by_log` (a browser's page
        makes its own requests meanwhile): the workers' logs then choose among those.
        Waits up to `patience` seconds for other new connections (a favicon's) to close."""
        deadline = time.monotonic() + patience
        while True:
            after = established_connections(set(before.connections))
            grown = [
                w for w in self.workers if after[w.port] - before.connections[w.port]
            ]
            if len(grown) > 1 and tie_break_by_log:
                logged = self.logged_sockets(before.room)
                grown = [
                    w for w in grown if logged[w.port] > before.logged[w.port]
                ] or grown
            if len(grown) == 1:
                return grown[0]
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def logged_sockets(self, room: str) -> dict[int, int]:
        """By worker port, how many sockets each worker says it accepted in `room` (daphne
        logs WSCONNECT)."""
        line = f"WSCONNECT /ws/chat/{room}/"
        return {w.port: w.log_since(0).count(line) for w in self.workers}
