"""The Makefile and its tools as a student or instructor meets them: `make stepN` serves and
stops cleanly, `make diff` shows a lesson, and every mistake gets one readable line."""

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from shared_tests.chat_client import (
    chat_socket,
    expect_message,
    room_name,
    send_message,
)
from shared_tests.servers import Endpoint
from shared_tests.without_programs import run_without_system_programs
from tools.course import REPO, load_course
from tools.grading.project import NO_FOLDER
from tools.net import free_port, port_in_use

pytestmark = pytest.mark.repository
QUIET_ENV = {"MAKEFLAGS": "", "MAKELEVEL": ""}
# make's own trailer after any failing recipe ("make: *** [Makefile:50: step1] Error 1").
MAKE_TRAILER = re.compile(r"^make: \*\*\* \[.*\] Error \d+$")


def make(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", "--no-print-directory", *args],
        cwd=REPO,
        env={**os.environ, **QUIET_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line(result: subprocess.CompletedProcess) -> str:
    """The single line a failed command printed (asserting there is exactly one), besides
    make's own "Error 1" trailer."""
    lines = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and not MAKE_TRAILER.match(line)
    ]
    assert len(lines) == 1, (
        f"expected one readable line, got {len(lines)}:\n" + "\n".join(lines)
    )
    return lines[0]


def test_wrong_step_is_one_readable_line():
    """`make test STEP=10` says which stages exist."""
    result = make("test", "STEP=10")
    assert result.returncode != 0
    assert "STEP=10 is not a stage: use one of 1 2 3 4 5 6 7 8 9" in one_line(result)


@pytest.mark.parametrize("target", [("grade", "STEP=5"), ("check",)], ids=" ".join)
def test_no_dir_is_one_readable_line_and_no_report(target):
    """`make grade STEP=5` or `make check` without DIR= says to pass one, and writes no
    report for a project that was never named."""
    reports = every_file(REPO / "grade-report")
    result = make(*target)
    assert result.returncode == 2
    assert one_line(result) == NO_FOLDER
    assert every_file(REPO / "grade-report") == reports, "a report was written"


def every_file(folder: Path) -> dict[Path, int]:
    """Each file under `folder`, with the time it was last written."""
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_port_in_use_is_one_readable_line():
    """`make step1` on a taken port says so and suggests another."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = make("step1", f"PORT={port}")
    assert result.returncode != 0
    assert f"Port {port} is already in use" in one_line(result)


def test_bad_port_is_one_readable_line():
    result = make("step2", "PORT=eighty")
    assert result.returncode != 0
    assert "PORT=eighty is not a port number" in one_line(result)


def test_diff_shows_the_lesson_and_no_generated_files():
    """`make diff FROM=3 TO=4` is the stage-4 lesson: groups through the channel layer."""
    result = make("diff", "FROM=3", "TO=4")
    assert result.returncode == 0, result.stderr
    assert "+++ step4_channel_layer_groups/chat/consumers.py" in result.stdout
    assert "async_to_sync(self.channel_layer.group_send)" in result.stdout
    assert "__pycache__" not in result.stdout and "sqlite3" not in result.stdout.lower()


def test_missing_redis_is_one_line_saying_what_to_install(tmp_path):
    result = run_without_system_programs(
        tmp_path, ["bash", "tools/require.sh", "redis"]
    )
    assert result.returncode != 0
    line = one_line(result)
    assert "apt-get install redis-server" in line and "brew install redis" in line


@pytest.mark.parametrize("ci", ["true", ""], ids=["in-ci", "on-a-laptop"])
def test_missing_browser_fails_in_ci_and_warns_elsewhere(tmp_path, ci):
    result = run_without_system_programs(
        tmp_path, ["bash", "tools/require.sh", "browser"], CI=ci, CHROME_BIN=""
    )
    line = one_line(result)
    assert "chromium" in line
    assert (result.returncode != 0) == bool(ci), line


def test_stage_needing_redis_without_any_says_what_to_install(tmp_path):
    """With no Redis answering and no redis-server to start, `make step4` stops with one line."""
    result = run_without_system_programs(
        tmp_path, [sys.executable, "-m", "tools.serve", "4", "--port", str(free_port())]
    )
    assert result.returncode != 0
    assert "redis-server is not installed" in one_line(result)


def default_ctrl_c() -> None:
    """Ctrl-C as a terminal's foreground job gets it: a suite started in the background
    (nohup ... &) runs with SIGINT ignored, and its children would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class ForegroundMake:
    """`make TARGET` as a terminal's foreground job, its output read as it comes (a reader
    thread), as the person at the terminal reads it."""

    def __init__(self, target: str, port: int, *options: str):
        self.target = target
        self.process = subprocess.Popen(
            [
                "make",
                "-s",
                target,
                f"PORT={port}",
                f"REDIS_URL=redis://127.0.0.1:{free_port()}/0",
                *options,
            ],
            cwd=REPO,
            env={**os.environ, **QUIET_ENV},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, like a foreground job
            preexec_fn=default_ctrl_c,
        )
        self.lines: list[str] = []
        self.said_open = threading.Event()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith("Open "):
                self.said_open.set()

    def wait_until_serving(self, port: int) -> None:
        """Until it has said which URL to open and something listens there (stages 1-8
        say it before their server listens; stage 9 once nginx does)."""
        deadline = time.monotonic() + 60
        while not (self.said_open.is_set() and port_in_use(port)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                os.killpg(self.process.pid, signal.SIGKILL)
                pytest.fail(f"make {self.target} did not serve: {self.output()}")
            time.sleep(0.2)

    def output(self, timeout: float = 30) -> str:
        """Everything it printed, once it has stopped."""
        self.process.wait(timeout)
        self.reader.join(timeout)
        return "".join(self.lines)


def start_make(target: str, port: int, *options: str) -> ForegroundMake:
    """`make TARGET` with no Redis at REDIS_URL; returns once it serves on `port`."""
    job = ForegroundMake(target, port, *options)
    job.wait_until_serving(port)
    return job


def two_tabs_talk(server: Endpoint) -> None:
    room = room_name()
    with chat_socket(server, room) as alice, chat_socket(server, room) as bob:
        send_message(alice, "hello from the finished chat")
        expect_message(
            bob, "hello from the finished chat", "a second tab in the same room"
        )


# How a terminal stops its foreground job: Ctrl-C and a closed terminal signal the whole
# process group; `kill PID` signals make alone (make passes SIGTERM on to its recipe).
STOPS = {
    "ctrl-c": lambda process: os.killpg(process.pid, signal.SIGINT),
    "terminal-closed": lambda process: os.killpg(process.pid, signal.SIGHUP),
    "kill-make": lambda process: process.send_signal(signal.SIGTERM),
}


def ports_in(output: str, pattern: str) -> list[int]:
    return [int(port) for port in re.findall(pattern, output)]


@pytest.mark.parametrize(
    "target, stop",
    [
        ("step5", "ctrl-c"),
        ("step6", "kill-make"),
        ("step7", "terminal-closed"),
        ("step8", "ctrl-c"),
    ],
)
def test_make_step_serves_the_chat_and_stopping_it_stops_everything(target, stop):
    """`make step5` (and the later stages', which store messages too) with no Redis at
    REDIS_URL starts a private one and serves a chat where two clients talk; Ctrl-C, a
    closed terminal (SIGHUP) or `kill` (SIGTERM) stops the server and that Redis (each way
    of stopping on another stage: they share tools/serve.py)."""
    port = free_port()
    job = start_make(target, port)
    try:
        two_tabs_talk(
            Endpoint(port)
        )  # the server is make's child; the test only talks to it
    finally:
        STOPS[stop](job.process)
        output = job.output()
    opens = load_course().stage(int(target.removeprefix("step"))).open
    assert f"Open http://127.0.0.1:{port}{opens}" in output
    assert "started a private one" in output and "Stopped the private Redis." in output
    assert not port_in_use(port), "the server still listens once stopped"
    for redis_port in ports_in(
        output, r"started a private one at redis://[\d.]+:(\d+)/"
    ):
        assert not port_in_use(redis_port), "the private Redis still runs once stopped"


def test_make_step9_serves_through_nginx_over_tls_and_stops_everything():
    """`make step9 WORKERS=3` serves https:// through nginx in front of three workers
    (each named in the log with its port), a chat over wss:// works, and closing the
    terminal stops nginx, every worker and the private Redis."""
    port = free_port()
    job = start_make("step9", port, "WORKERS=3")
    try:
        site = Endpoint(port)
        site.secure = True
        certificate = REPO / ".workshop" / "step9" / "tls" / "cert.pem"
        site.client_ssl = ssl.create_default_context(cafile=str(certificate))
        two_tabs_talk(site)
        page = site.get("/chat/")
        assert page.status == 200, (
            f"https://127.0.0.1:{port}/chat/ answered {page.status}"
        )
    finally:
        STOPS["terminal-closed"](job.process)
        output = job.output()
    assert f"Open https://127.0.0.1:{port}/chat/" in output
    workers = sorted(set(ports_in(output, r"worker \d \(127\.0\.0\.1:(\d+)\)")))
    assert len(workers) == 3, f"expected three workers in the log:\n{output}"
    assert "WSCONNECT /ws/chat/" in output, "no worker logged the sockets it took"
    assert "Stopped the private Redis." in output
    for listening in (port, *workers):
        assert not port_in_use(listening), (
            f"port {listening} still listens once stopped"
        )


@pytest.mark.parametrize(
    "target, count",
    [("step6-test", 8), ("step7-test", 11), ("step8-test", 12), ("step9-test", 12)],
)
def test_make_stage_test_runs_the_stage_tests_in_the_sandbox(target, count):
    """`make step6-test` runs stage 6's own tests (`manage.py test chat`) as the grader
    runs a student's, prints Django's output, and exits 0 when they all pass; stage 7's
    too."""
    result = subprocess.run(
        ["make", "-s", target],
        cwd=REPO,
        env={**os.environ, **QUIET_ENV},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Ran {count} tests" in result.stdout and "\nOK\n" in result.stdout
    assert f"{count} tests ran and passed" in result.stdout
