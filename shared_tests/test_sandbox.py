"""What the grading sandbox (tools/grading/sandbox.py) guarantees, each shown by a process that
tries: it sees only the system, Python and its own copy; it has no privileges and sees no other
process; it gets none of the grader's environment; its limits hold; the grading network is a
loopback of its own; and the test browser cannot read the grader's files either."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from shared_tests.browser import NoBrowser, start_browser
from shared_tests.conftest import missing_prerequisite
from shared_tests.graded_projects import copy_stage
from shared_tests.without_programs import run_without_system_programs
from tools.course import REPO, load_course
from tools.grading.integrity import GRADER_PYCACHE
from tools.grading.project import Project
from tools.grading.sandbox import (
    LIMITS,
    MIB,
    SandboxUnavailable,
    make_sandbox,
    network_namespace,
    processes_of,
)

pytestmark = pytest.mark.repository
PROBE = r"""
import json, os, sys
from pathlib import Path

def attempt(action):
    try:
        action()
        return "done"
    except Exception as error:
        return type(error).__name__

def write(path):
    return attempt(lambda: Path(path).write_text("x"))

secret, original, harness_pid = sys.argv[1:4]
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({
    "grader_file_visible": os.path.exists(sys.argv[4]),
    "secret_visible": os.path.exists(secret),
    "original_folder_visible": os.path.exists(original),
    "write_own_copy": write("written-by-the-sandbox.txt"),
    "write_venv": write(Path(sys.prefix) / "owned.pth"),
    "write_grader_bytecode": write(Path(sys.argv[5]) / "owned.cpython-311.pyc"),
    "write_etc": write("/etc/owned"),
    "write_usr": write("/usr/owned"),
    "write_tmp": write("/tmp/scratch"),
    "uid": os.getuid(),
    "capabilities": status["CapEff"].strip(),
    "no_new_privs": status["NoNewPrivs"].strip(),
    "processes_seen": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "signal_harness": attempt(lambda: os.kill(int(harness_pid), 0)),
    "environment": sorted(os.environ),
}))
"""


SYSTEM_PYTHON = "/usr/bin/python3"  # one every user may run (the "user" kind needs it)
# What the probe tries to write outside its copy, in either kind of sandbox.
READ_ONLY_TARGETS = ("write_venv", "write_grader_bytecode", "write_etc", "write_usr")


def bwrap_sandbox(**limits):
    try:
        return make_sandbox("bwrap", dataclasses.replace(LIMITS, **limits))
    except SandboxUnavailable as problem:
        missing_prerequisite(f"no sandbox: {problem}")


def run_python(sandbox, folder: Path, code: str, *args: str, python=sys.executable):
    """Run `code` with the sandbox's Python in `folder` (a project copy), in the sandbox."""
    folder.mkdir(exist_ok=True)
    sandbox.prepare(folder)
    project = Project(folder, settings_module="unused")
    return project.run([python, "-c", code, *args], sandbox, timeout=60)


def test_a_project_process_sees_only_the_system_python_and_its_copy(
    tmp_path, monkeypatch
):
    """It cannot see the checkout, the student's original folder or the grader's other
    files, cannot write anywhere but its copy and private /tmp (not the virtualenv, not the
    test session's bytecode), has no capabilities, sees only its own processes, and gets none
    of the grader's environment."""
    sandbox = bwrap_sandbox()
    GRADER_PYCACHE.mkdir(exist_ok=True)
    secret = tmp_path / "another-students-work.txt"
    secret.write_text("not yours")
    monkeypatch.setenv("WORKSHOP_GRADER_TOKEN", "secret")
    original = REPO / load_course().stage(3).folder
    result = run_python(
        sandbox,
        tmp_path / "copy",
        PROBE,
        str(secret),
        str(original),
        str(os.getpid()),
        str(REPO / "shared_tests" / "course.toml"),
        str(GRADER_PYCACHE),
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert not seen["grader_file_visible"] and not seen["secret_visible"]
    assert not seen["original_folder_visible"]
    assert seen["write_own_copy"] == "done" and seen["write_tmp"] == "done"
    assert (tmp_path / "copy" / "written-by-the-sandbox.txt").is_file()
    for target in READ_ONLY_TARGETS:
        assert seen[target] in ("OSError", "PermissionError"), (target, seen[target])
    assert seen["capabilities"] == "0000000000000000" and seen["no_new_privs"] == "1"
    assert seen["signal_harness"] == "ProcessLookupError"
    assert len(seen["processes_seen"]) <= 3, seen["processes_seen"]
    assert "WORKSHOP_GRADER_TOKEN" not in seen["environment"]
    if os.geteuid() == 0:
        assert seen["uid"] not in (0, os.getuid()), "it runs as the grader's user"


LIMIT_CASES = {
    "memory": (
        "x = bytearray(512 * 2**20)",
        "MemoryError",
        {"memory_bytes": 256 * MIB},
    ),
    "processes": (
        "import os, time\n"
        "for n in range(200):\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(30)\n"
        "        os._exit(0)",
        "Resource temporarily unavailable",
        {"processes": 20},
    ),
    "output": (
        "open('big.log', 'wb').write(b'x' * 2 * 2**20)",
        "File too large",
        {"output_bytes": MIB},
    ),
}


@pytest.mark.parametrize("case", LIMIT_CASES.values(), ids=LIMIT_CASES.keys())
def test_a_limit_stops_the_process_that_reaches_it(tmp_path, case):
    """Memory, processes and output: going past the limit fails with the error that names
    it (the report turns it into a sentence, see tools.grading.sandbox.limit_behind)."""
    code, error, limits = case
    result = run_python(bwrap_sandbox(**limits), tmp_path / "copy", code)
    assert result.returncode not in (0, None), "the limit did not stop it"
    assert error in result.stderr, result.stderr[-500:]


def test_cpu_time_limit_kills_a_busy_loop(tmp_path):
    """A process spinning past its CPU-time limit is killed by SIGXCPU (bwrap: 128 + 24)."""
    result = run_python(
        bwrap_sandbox(cpu_seconds=1), tmp_path / "copy", "while 1: pass"
    )
    assert result.returncode == 128 + 24


def host_address() -> str | None:
    """An address of this machine that is not a loopback one (None: it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: it only picks a route
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_the_grading_network_is_a_loopback_of_its_own():
    """Inside the grading run's network namespace its own loopback works, while this
    machine's loopback and its other addresses are out of reach."""
    bwrap_sandbox()  # skips (fails in CI) without bwrap
    with socket.socket() as outside:
        outside.bind(("0.0.0.0", 0))
        outside.listen()
        port = outside.getsockname()[1]
        code = r"""
import socket, sys
def reach(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "reached"
    except OSError as error:
        return type(error).__name__
inside = socket.socket(); inside.bind(("127.0.0.1", 0)); inside.listen()
print(reach("127.0.0.1", inside.getsockname()[1]))
for host in sys.argv[2:]:
    print(reach(host, int(sys.argv[1])))
"""
        hosts = ["127.0.0.1"] + [a for a in [host_address()] if a]
        result = subprocess.run(
            network_namespace([sys.executable, "-c", code, str(port), *hosts]),
            capture_output=True,
            text=True,
            timeout=60,
        )
    lines = result.stdout.split()
    assert result.returncode == 0, result.stderr
    assert lines[0] == "reached", "the run's own loopback does not work"
    reached = [
        host for host, line in zip(hosts, lines[1:], strict=True) if line == "reached"
    ]
    assert not reached, f"from inside the grading network it reached {reached}"


def sandboxed_and_plain_browsers():
    """("sandboxed", a browser started as grading starts it), then ("plain", one started as
    `make test` does): a check that differs between them can fail. Each quits after its turn."""
    for name, sandbox in (("sandboxed", bwrap_sandbox()), ("plain", None)):
        try:
            driver = start_browser(sandbox) if sandbox else start_browser()
        except NoBrowser as missing:
            missing_prerequisite(str(missing))
        try:
            yield name, driver
        finally:
            driver.quit()


def test_the_test_browser_cannot_read_the_grader_files():
    """While grading, Chromium runs in the sandbox too: a student's page (or a student's
    process talking to chromedriver) cannot make it read the checkout. Without the sandbox
    the same page shows the file, which proves the check can fail."""
    grader_file = (REPO / "shared_tests" / "conftest.py").as_uri()
    shown = {}
    for name, driver in sandboxed_and_plain_browsers():
        driver.get(grader_file)
        shown[name] = "def pytest_configure" in driver.page_source
    assert shown == {"sandboxed": False, "plain": True}


def data_limit(pid: int) -> str:
    """The soft limit on the memory process `pid` writes to, as /proc shows it."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max data size"):
            return line.split()[3]
    raise AssertionError(f"/proc/{pid}/limits has no data size line")


def test_the_test_browser_runs_under_the_sandboxs_limits():
    """A page a student's server sends could make Chromium eat memory or start processes
    without end: while grading, every Chromium process has the sandbox's limit on the memory
    it writes to. Without the sandbox it has none, which proves the check can fail."""
    limits = {}
    for name, driver in sandboxed_and_plain_browsers():
        family = psutil.Process(driver.service.process.pid).children(recursive=True)
        chromium = [p for p in family if p.name() in ("chromium", "chrome")]
        limits[name] = {data_limit(process.pid) for process in chromium}
    assert limits == {"sandboxed": {str(LIMITS.memory_bytes)}, "plain": {"unlimited"}}


def test_the_sandbox_user_is_not_shared_between_runs():
    """Two runs at once (two students) get two different sandbox users."""
    if os.geteuid() != 0:
        pytest.skip("a sandbox user of its own needs root; here it is the grader's")
    code = (
        "from tools.grading.sandbox import make_sandbox; "
        "print(make_sandbox('bwrap').uid)"
    )
    with tempfile.TemporaryDirectory():
        runs = [
            subprocess.Popen(
                [sys.executable, "-c", code + "; import time; time.sleep(2)"],
                cwd=REPO,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        uids = {run.communicate(timeout=60)[0].strip() for run in runs}
    assert len(uids) == 2 and bwrap_sandbox().uid not in uids, uids


# ---------------------------------------------------------------------------- without bwrap
def grade_without_bwrap(tmp_path, *options: str) -> subprocess.CompletedProcess:
    project = copy_stage(1, tmp_path)
    return run_without_system_programs(
        tmp_path,
        [sys.executable, "-m", "tools.grading.grade", "--project", str(project)]
        + ["--stage", "1", "--behaviour", "manage_check"]
        + ["--report-dir", str(tmp_path / "report"), *options],
        timeout=300,
    )


def test_without_bwrap_grading_refuses_in_one_line(tmp_path):
    """Where bubblewrap cannot run, grading says so in one line, runs nothing, and writes
    a report scoring 0 that says why."""
    result = grade_without_bwrap(tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and "bubblewrap (bwrap) is not installed" in lines[0]
    assert "UNSANDBOXED=1" in lines[0]
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert results["score"] == 0 and "sandbox cannot run" in results["output"]


def test_unsandboxed_grading_says_so_in_the_report(tmp_path):
    """UNSANDBOXED=1 grades without the sandbox, and the report says it was unsandboxed."""
    result = grade_without_bwrap(tmp_path, "--unsandboxed")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = (tmp_path / "report" / "report.txt").read_text()
    assert "UNSANDBOXED" in report and "PASS" in report


def test_in_ci_a_missing_bwrap_fails_the_suite(tmp_path):
    """With CI=true the suite does not quietly run the stages unsandboxed: it stops."""
    result = run_without_system_programs(
        tmp_path,
        [sys.executable, "-m", "pytest", "shared_tests", "--stage", "1", "-p"]
        + ["no:cacheprovider", "--behaviour", "manage_check"],
        CI="true",
    )
    assert result.returncode != 0
    assert "Cannot sandbox the projects" in result.stdout + result.stderr


def test_missing_bwrap_is_one_line_saying_what_to_install(tmp_path):
    result = run_without_system_programs(
        tmp_path, ["bash", "tools/require.sh", "sandbox"]
    )
    assert result.returncode != 0
    assert (
        "apt-get install bubblewrap" in result.stderr
        and "UNSANDBOXED=1" in result.stderr
    )


# ---------------------------------------------------------------------------- the "user" kind
def test_without_namespaces_a_user_of_its_own_still_cannot_write_the_grader_files(
    tmp_path, monkeypatch
):
    """The autograder's fallback where bwrap cannot run (root, no namespaces): another
    user, no capabilities, the limits, none of the grader's environment; it may write only
    its copy, and nothing of it outlives the run."""
    if os.geteuid() != 0 or not Path(SYSTEM_PYTHON).exists():
        pytest.skip("a user of its own needs root and a Python every user may run")
    sandbox = make_sandbox("user")
    GRADER_PYCACHE.mkdir(exist_ok=True)
    private = tmp_path / "results"
    private.mkdir(mode=0o700)
    monkeypatch.setenv("WORKSHOP_GRADER_TOKEN", "secret")
    code = PROBE + (
        "\nimport os\nif os.fork() == 0:\n    import time; time.sleep(600)\n"
    )
    result = run_python(
        sandbox,
        tmp_path / "copy",
        code,
        str(private / "results.json"),
        "/nonexistent",
        str(os.getpid()),
        str(REPO / "shared_tests" / "course.toml"),
        str(GRADER_PYCACHE),
        python=SYSTEM_PYTHON,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[0])
    assert seen["uid"] not in (0, os.getuid())
    assert seen["capabilities"] == "0000000000000000" and seen["no_new_privs"] == "1"
    assert seen["write_own_copy"] == "done"
    for target in READ_ONLY_TARGETS:
        assert seen[target] == "PermissionError", (target, seen[target])
    assert "WORKSHOP_GRADER_TOKEN" not in seen["environment"]
    assert not (private / "results.json").exists()
    sandbox.end()
    assert not processes_of(sandbox.uid), (
        "a process of the sandbox user outlived the run"
    )


@pytest.mark.parametrize("ci", ["true", ""], ids=["in-ci", "on-a-laptop"])
def test_make_test_without_bwrap_fails_in_ci_and_warns_elsewhere(tmp_path, ci):
    """`make test` needs no bubblewrap on a laptop (macOS): its stages run unsandboxed and
    the sandbox's tests skip; in CI a missing bubblewrap fails the run."""
    result = run_without_system_programs(
        tmp_path, ["bash", "tools/require.sh", "test-sandbox"], CI=ci
    )
    assert "bubblewrap" in result.stderr
    assert (result.returncode != 0) == bool(ci), result.stderr


@pytest.mark.parametrize("ci", ["true", ""], ids=["in-ci", "on-a-laptop"])
def test_no_xvfb_fails_in_ci_and_warns_elsewhere(tmp_path, ci):
    """Without Xvfb a student's visible-Chrome tests cannot run when graded: CI fails,
    a laptop is warned in one line that names the package."""
    result = run_without_system_programs(
        tmp_path, ["bash", "tools/require.sh", "display"], CI=ci
    )
    assert "sudo apt-get install xvfb" in result.stdout + result.stderr
    assert (result.returncode != 0) == bool(ci), result.stderr


def test_an_exiting_grader_process_kills_no_one_elses_server():
    """mirakuru, at the exit of a process that imported it, kills every process whose
    mirakuru_uuid contains that process' pid; tools/executors.py turns that off, so a
    grading run that ends cannot take down another run's server."""
    code = (
        "import os, subprocess\n"
        "import shared_tests.servers, tools.redis_server\n"
        "env = dict(os.environ, mirakuru_uuid=f'{os.getpid()}:another-run')\n"
        "server = subprocess.Popen(['sleep', '30'], env=env, start_new_session=True,"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(server.pid)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True
    )
    pid = int(result.stdout.strip())
    try:
        os.kill(pid, 0)  # still there
    finally:
        os.kill(pid, 9)
