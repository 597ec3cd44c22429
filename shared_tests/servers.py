"""Real server processes for the tests: daphne (what `runserver` runs once daphne is installed)
serving a project copy on a free port, in the sandbox, with its output in a log file the tests
can read."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil
from mirakuru import TCPExecutor
from mirakuru.exceptions import AlreadyRunning, ProcessExitedWithError, TimeoutExpired

import tools.executors  # noqa: F401 - turns off mirakuru's killing at exit
from tools.deployment.certificate import TLSFiles
from tools.deployment.workers import worker_command
from tools.grading.project import Project
from tools.grading.sandbox import NO_SANDBOX, Sandbox, descendants, limit_behind
from tools.net import HOST, free_port, listens_on

STARTUP_TIMEOUT = 60
PORT_TRIES = 3  # free ports tried in turn when another program takes one first
# SIGTERM, then SIGKILL after this long. A sync consumer caught inside async_to_sync() when
# daphne stops waits forever for the stopped event loop, and Python's exit waits for that thread.
STOP_TIMEOUT = 5


class ServerFailed(AssertionError):
    """A server that did not start; the message quotes the end of its log."""


class OwnPortExecutor(TCPExecutor):
    """A TCPExecutor that counts the port as open only when its own processes listen there.
    free_port() finds a port that was free a moment ago: another program can take it first,
    and the server would pass for started while it exits with "Address already in use"."""

    def after_start_check(self) -> bool:
        if not super().after_start_check():
            return False
        try:
            process = psutil.Process(self.process.pid)
            family = [process.pid, *(c.pid for c in process.children(recursive=True))]
        except psutil.Error:  # it exited: mirakuru says so next
            return False
        # None: their files cannot be read (another user's), so count the port as before.
        return listens_on(family, self.port) is not False


@dataclass
class Page:
    status: int
    text: str
    url: str
    server: str = ""  # its Server header: "daphne" for a page Daphne served


def daphne_command(
    target: str, port: int, tls: TLSFiles | None = None, proxy_headers: bool = False
) -> list[str]:
    """Serve `target` (module:attribute) with daphne on `port` (over TLS with `tls`: daphne
    then takes a Twisted endpoint string; behind a proxy whose X-Forwarded-* headers it
    believes with `proxy_headers`)."""
    if proxy_headers:  # a worker behind nginx, as `make step9` starts one
        if tls is not None:
            raise ValueError(
                "a worker behind nginx serves plain HTTP: nginx holds the TLS"
            )
        return worker_command(port, target)
    daphne = [sys.executable, "-m", "daphne"]
    if tls is None:
        return [*daphne, "-b", HOST, "-p", str(port), target]
    endpoint = f"ssl:port={port}:interface={HOST}:privateKey={tls.key}:certKey={tls.certificate}"
    return [*daphne, "-e", endpoint, target]


def runserver_command(port: int) -> list[str]:
    """Django's `runserver`, which daphne replaces once "daphne" is in INSTALLED_APPS."""
    return [sys.executable, "manage.py", "runserver", f"{HOST}:{port}", "--noreload"]


@dataclass(eq=False)  # a server is itself, not equal to any other on the same port
class Endpoint:
    """Where a chat server listens on this machine, and plain HTTP GETs to it."""

    port: int
    secure = False  # served over TLS: https:// pages and wss:// sockets
    client_ssl = None  # (secure) an ssl.SSLContext that trusts its certificate

    # -- addresses --------------------------------------------------------------------------
    @property
    def origin(self) -> str:
        return f"{'https' if self.secure else 'http'}://{HOST}:{self.port}"

    def http_url(self, path: str) -> str:
        return self.origin + urllib.parse.quote(path, safe="/%?=&")

    def ws_url(self, path: str) -> str:
        """`path` must already be percent-encoded (see chat_client.chat_path)."""
        return f"{'wss' if self.secure else 'ws'}://{HOST}:{self.port}{path}"

    # -- HTTP -------------------------------------------------------------------------------
    def get(self, path: str) -> Page:
        """GET a page; any status is returned, not raised."""
        url = self.http_url(path)
        try:
            with urllib.request.urlopen(
                url, timeout=15, context=self.client_ssl
            ) as response:
                text = response.read().decode("utf-8", "replace")
                return Page(
                    response.status, text, url, response.headers["Server"] or ""
                )
        except urllib.error.HTTPError as error:
            text = error.read().decode("utf-8", "replace")
            return Page(error.code, text, url, error.headers["Server"] or "")

    def first_answer_to(self, request: bytes) -> bytes:
        """The first bytes the server answers `request` with, sent as it is on a plain
        socket: what the server itself says to a request no application ever sees."""
        assert not self.secure, "a plain socket, not TLS"
        with socket.create_connection((HOST, self.port), timeout=5) as connection:
            connection.sendall(request)
            try:
                return connection.recv(200)
            except TimeoutError:
                return b""


class Server(Endpoint):
    """A server process for `project` on `port`; its output goes to `log_path`."""

    def __init__(
        self,
        project: Project,
        command: list[str],
        port: int,
        log_path: Path,
        redis_url: str | None,
        sandbox: Sandbox = NO_SANDBOX,
        secure: bool = False,
        extra_env: dict[str, str] | None = None,
    ):
        self.project = project
        self.port = port
        self.secure = secure
        self.log_path = log_path
        self.redis_url = redis_url
        self.sandbox = sandbox
        self._stopped_by_us = False
        self._out_of_time = False
        self._wall_clock: threading.Timer | None = None
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._executor = OwnPortExecutor(
            sandbox.wrap(command, project.root),
            host=HOST,
            port=self.port,
            cwd=str(project.root),
            envvars={**project.environment(redis_url), **(extra_env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            timeout=STARTUP_TIMEOUT,
            popen_kwargs={"stdin": subprocess.DEVNULL},
        )

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> Server:
        try:
            self._executor.start()
        except AlreadyRunning:  # another program listens on the port already
            raise ServerFailed(
                f"the server did not start: port {self.port} is already in use"
            ) from None
        except (ProcessExitedWithError, TimeoutExpired) as error:
            self._kill()
            reason = (
                "exited"
                if isinstance(error, ProcessExitedWithError)
                else "did not open its port"
            )
            limit = self.limit_hit()
            raise ServerFailed(
                f"the server {reason} while starting: "
                + (limit or self.last_log_line())
            ) from None
        if self.sandbox.enabled:
            self._wall_clock = threading.Timer(
                self.sandbox.limits.wall_seconds, self._out_of_wall_time
            )
            self._wall_clock.daemon = True
            self._wall_clock.start()
        return self

    def _out_of_wall_time(self) -> None:
        self._out_of_time = True
        self._kill()

    def _kill(self) -> None:
        process = self._executor.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def stop(self, kill: bool = False) -> None:
        """Stop the process (any exit code is fine: CPython 3.11.7 can crash while finalizing
        asyncio, python/cpython#113566, fixed in 3.11.8). In the sandbox, bwrap's end is the
        end of every process inside. `kill`: at once, with no chance to clean up, as when a
        machine or a process dies."""
        self._stopped_by_us = True
        if self._wall_clock is not None:
            self._wall_clock.cancel()
        process = self._executor.process
        if process is not None and process.poll() is None:
            if kill:
                process.kill()
            else:
                process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._log.close()

    # -- what happened to it ----------------------------------------------------------------
    @property
    def exit_code(self) -> int | None:
        """The exit code once it exited on its own (None while it runs or once we stopped it)."""
        process = self._executor.process
        if process is None or self._stopped_by_us:
            return None
        return process.poll()

    def limit_hit(self) -> str | None:
        """Which sandbox limit stopped it, in words (None: none that shows)."""
        limits = self.sandbox.limits
        if not self.sandbox.enabled:
            return None
        if self._out_of_time:
            return f"it ran longer than the wall-time limit ({limits.wall_seconds} s)"
        if self.log_path.stat().st_size >= limits.output_bytes:
            return (
                f"it wrote {limits.output_bytes // 2**20} MB of log, the output limit"
            )
        code = self._executor.process.poll() if self._executor.process else None
        if code == 128 + signal.SIGXCPU:
            return f"it used the CPU-time limit ({limits.cpu_seconds} s)"
        if (
            code == 128 + signal.SIGKILL
        ):  # not ours: the hard CPU limit, or out of memory
            return (
                f"it was killed: the CPU-time limit ({limits.cpu_seconds} s) or memory"
            )
        return limit_behind(self.log_tail(), limits)

    def death(self) -> str | None:
        """Why a server that should be serving is not, in one line (None: it runs)."""
        code = self.exit_code
        if code is None:
            return None
        limit = self.limit_hit()
        if limit:
            return f"the server was stopped by the sandbox: {limit}"
        if code == 0:
            return "the server exited on its own (code 0) while it should be serving"
        return f"the server died (exit code {code}): {self.last_log_line()}"

    @property
    def pid(self) -> int | None:
        """The server process' id while it runs (None once it has exited)."""
        process = self._executor.process
        return process.pid if process is not None and process.poll() is None else None

    def handles_on(self, path: Path) -> int:
        """How many open descriptors of the server's processes point at the file at `path`
        (by inode: a sandboxed server sees the project folder at another path)."""
        pid = self.pid
        if pid is None:
            raise ServerFailed(self.death() or "the server is not running")
        target = path.stat()
        count = 0
        for process in [pid, *(child.pid for child in descendants(pid))]:
            try:
                descriptors = list(Path(f"/proc/{process}/fd").iterdir())
            except OSError:  # it exited meanwhile
                continue
            for descriptor in descriptors:
                try:
                    found = descriptor.stat()
                except OSError:  # closed meanwhile
                    continue
                count += (found.st_dev, found.st_ino) == (target.st_dev, target.st_ino)
        return count

    # -- log --------------------------------------------------------------------------------
    def log_mark(self) -> int:
        """A position in the log; log_since(mark) returns what was written after it."""
        self._log.flush()
        return self.log_path.stat().st_size

    def log_size(self) -> int:
        """The log's size, also once the server has stopped."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.stat().st_size

    def log_since(self, mark: int = 0) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(mark)
            return log.read().decode("utf-8", "replace")

    def log_tail(self, size: int = 16 * 1024) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(max(0, self.log_path.stat().st_size - size))
            return log.read().decode("utf-8", "replace")

    def last_log_line(self) -> str:
        lines = [line for line in self.log_tail().splitlines() if line.strip()]
        return lines[-1].strip()[:300] if lines else "(no output)"


def exception_line(log: str) -> str | None:
    """The exception of the last traceback in a log (the line that names it, e.g.
    "TypeError: Group name must be ..."), or None when it shows no traceback."""
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most")]
    if not starts:
        return None
    for line in lines[starts[-1] + 1 :]:
        if line.strip() and not line[0].isspace():
            return line.strip()[:300]
    return None


class ServerPool:
    """Starts servers on demand (in the sandbox) and stops every one of them at the end of
    the session; remembers the ones that died on their own, for the report."""

    def __init__(self, log_dir: Path, sandbox: Sandbox = NO_SANDBOX):
        self.log_dir = log_dir
        self.sandbox = sandbox
        self._servers: list[Server] = []
        self._ever: list[Server] = []  # every server started, for cause_since()
        self._count = 0
        self.deaths: list[
            str
        ] = []  # "stage5: the server was stopped by the sandbox: ..."

    def start(
        self,
        project: Project,
        target: str | None,
        redis_url: str | None,
        name: str,
        port: int | None = None,
        tls: TLSFiles | None = None,
        proxy_headers: bool = False,
        extra_env: dict[str, str] | None = None,
    ) -> Server:
        """Start daphne serving `target`, or `runserver` when target is None (on `port`, to
        restart a server where its pages expect it; over TLS with `tls`; behind a proxy with
        `proxy_headers`; with `extra_env` added to its environment)."""

        def start_on(chosen: int) -> Server:
            command = (
                runserver_command(chosen)
                if target is None
                else daphne_command(target, chosen, tls, proxy_headers)
            )
            return self.start_program(
                project, command, chosen, name, redis_url, tls is not None, extra_env
            )

        if port:  # a restart, where its pages expect it
            return start_on(port)
        for _ in range(PORT_TRIES - 1):
            try:
                return start_on(free_port())
            except ServerFailed as failure:
                if "already in use" not in str(failure):
                    raise
                self.deaths.pop()  # another program took the port first: try another
        return start_on(free_port())

    def start_program(
        self,
        project: Project,
        command: list[str],
        port: int,
        name: str,
        redis_url: str | None = None,
        secure: bool = False,
        extra_env: dict[str, str] | None = None,
    ) -> Server:
        """Start `command` in `project` (in the sandbox) and wait until it listens on `port`."""
        self._count += 1
        log_path = self.log_dir / f"{name}-{self._count}.log"
        server = Server(
            project,
            command,
            port,
            log_path,
            redis_url,
            self.sandbox,
            secure,
            extra_env,
        )
        server.name = name
        self._servers.append(server)
        self._ever.append(server)
        try:
            return server.start()
        except ServerFailed as failure:
            self.deaths.append(f"{name}: {failure}")
            raise

    @property
    def running(self) -> list[Server]:
        """The servers started and not stopped yet (some may have died)."""
        return list(self._servers)

    def log_marks(self) -> dict[Server, int]:
        """Where each server's log is now, stopped ones too (see cause_since)."""
        return {server: server.log_size() for server in self._ever}

    def cause_since(self, marks: dict[Server, int]) -> str | None:
        """The exception a server logged after `marks` (servers started since: all of
        their log), the last one if several did; None if none did."""
        causes = []
        for server in [*marks, *(s for s in self._ever if s not in marks)]:
            if server.log_path.exists():
                line = exception_line(server.log_since(marks.get(server, 0)))
                if line:
                    causes.append(line)
        return causes[-1] if causes else None

    def stop(self, server: Server, kill: bool = False) -> None:
        self._note_death(server)
        server.stop(kill)
        self._servers.remove(server)

    def stop_all(self) -> None:
        for server in self._servers:
            self._note_death(server)
            server.stop()
        self._servers.clear()

    def _note_death(self, server: Server) -> None:
        """A server that died on its own, or that a sandbox limit held back, goes into the
        report."""
        death = server.death()
        limit = server.limit_hit()
        if death:
            self.deaths.append(f"{server.name}: {death}")
        elif limit:
            self.deaths.append(f"{server.name}: held back by the sandbox: {limit}")
