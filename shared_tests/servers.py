"""Real server processes for the tests: daphne (what `runserver` runs once daphne is installed)
serving a project copy on a free port, with its output in a log file the tests can read."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mirakuru import TCPExecutor
from mirakuru.exceptions import ProcessExitedWithError, TimeoutExpired

from tools.grading.project import Project
from tools.net import HOST, free_port

STARTUP_TIMEOUT = 60
# SIGTERM, then SIGKILL after this long. A sync consumer caught inside async_to_sync() when
# daphne stops waits forever for the stopped event loop, and Python's exit waits for that thread.
STOP_TIMEOUT = 5


class ServerFailed(AssertionError):
    """A server that did not start; the message quotes the end of its log."""


@dataclass
class Page:
    status: int
    text: str
    url: str


def daphne_command(target: str, port: int) -> list[str]:
    """Serve `target` (module:attribute) with daphne on `port`."""
    return [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(port), target]


def runserver_command(port: int) -> list[str]:
    """Django's `runserver`, which daphne replaces once "daphne" is in INSTALLED_APPS."""
    return [sys.executable, "manage.py", "runserver", f"{HOST}:{port}", "--noreload"]


@dataclass(eq=False)  # a server is itself, not equal to any other on the same port
class Endpoint:
    """Where a chat server listens on this machine, and plain HTTP GETs to it."""

    port: int

    # -- addresses --------------------------------------------------------------------------
    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"

    def http_url(self, path: str) -> str:
        return self.origin + urllib.parse.quote(path, safe="/%?=&")

    def ws_url(self, path: str) -> str:
        """`path` must already be percent-encoded (see chat_client.chat_path)."""
        return f"ws://{HOST}:{self.port}{path}"

    # -- HTTP -------------------------------------------------------------------------------
    def get(self, path: str) -> Page:
        """GET a page; any status is returned, not raised."""
        url = self.http_url(path)
        try:
            with urllib.request.urlopen(url, timeout=15) as response:
                return Page(
                    response.status, response.read().decode("utf-8", "replace"), url
                )
        except urllib.error.HTTPError as error:
            return Page(error.code, error.read().decode("utf-8", "replace"), url)


class Server(Endpoint):
    """A server process for `project` on `port`; its output goes to `log_path`."""

    def __init__(
        self,
        project: Project,
        command: list[str],
        port: int,
        log_path: Path,
        redis_url: str | None,
    ):
        self.project = project
        self.port = port
        self.log_path = log_path
        self.redis_url = redis_url
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._executor = TCPExecutor(
            command,
            host=HOST,
            port=self.port,
            cwd=str(project.root),
            envvars=project.environment(redis_url),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            timeout=STARTUP_TIMEOUT,
        )

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> Server:
        try:
            self._executor.start()
        except (ProcessExitedWithError, TimeoutExpired) as error:
            reason = (
                "exited"
                if isinstance(error, ProcessExitedWithError)
                else "did not open its port"
            )
            raise ServerFailed(
                f"the server {reason} while starting: {self.last_log_line()}"
            ) from None
        return self

    def stop(self) -> None:
        """Stop the process (any exit code is fine: CPython 3.11.7 can crash while finalizing
        asyncio, python/cpython#113566, fixed in 3.11.8)."""
        process = self._executor.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._log.close()

    @property
    def pid(self) -> int | None:
        """The server process' id while it runs (None once it has exited)."""
        process = self._executor.process
        return process.pid if process is not None and process.poll() is None else None

    # -- log --------------------------------------------------------------------------------
    def log_mark(self) -> int:
        """A position in the log; log_since(mark) returns what was written after it."""
        self._log.flush()
        return self.log_path.stat().st_size

    def log_since(self, mark: int = 0) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(mark)
            return log.read().decode("utf-8", "replace")

    def last_log_line(self) -> str:
        lines = [line for line in self.log_since().splitlines() if line.strip()]
        return lines[-1].strip() if lines else "(no output)"


class ServerPool:
    """Starts servers on demand and stops every one of them at the end of the session."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self._servers: list[Server] = []

    def start(
        self, project: Project, target: str | None, redis_url: str | None, name: str
    ) -> Server:
        """Start daphne serving `target`, or `runserver` when target is None."""
        port = free_port()
        command = (
            runserver_command(port) if target is None else daphne_command(target, port)
        )
        log_path = self.log_dir / f"{name}-{len(self._servers)}.log"
        server = Server(project, command, port, log_path, redis_url)
        self._servers.append(server)
        return server.start()

    def stop(self, server: Server) -> None:
        server.stop()
        self._servers.remove(server)

    def stop_all(self) -> None:
        for server in self._servers:
            server.stop()
        self._servers.clear()
