"""One grading run: the shared tests for one stage against a copy of a student's project.

What makes the score trustworthy:
- the test session runs in a network namespace of its own (only a loopback, shared with its
  servers, Redis and Chromium) and starts every student process in the sandbox
  (tools/grading/sandbox.py);
- the test process is hardened the way Python and pytest allow: isolated mode (`-I`: no
  PYTHON* variables, no user site, not the current folder on sys.path), no plugin autoload,
  no cache, conftest files only from shared_tests/, tests only from shared_tests/;
- it writes its results into a private folder; the report folder is cleared before the run
  and written by this process only after every student process is gone;
- the grader's own files are fingerprinted before and after: a run that changed them is void;
- the run has a wall-time limit; a run that cannot finish still ends in a report saying why.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.course import REPO, load_course
from tools.grading.integrity import (
    GRADER_PYCACHE,
    changed_files,
    drop_stale_bytecode,
    fingerprint,
)
from tools.grading.project import Project
from tools.grading.report import Report, selected_behaviours
from tools.grading.sandbox import (
    LIMITS,
    descendants,
    network_namespace,
    sandbox_problem,
    signal_quietly,
)

REPORT_FILES = ("results.json", "report.txt", "junit.xml", "pytest.log")
RUN_TIME_LIMIT = (
    600  # seconds for one stage's tests; a pristine stage 5 takes about one
)
EXIT_PASSED, EXIT_FAILED, EXIT_UNUSABLE, EXIT_VOID = 0, 1, 2, 3


@dataclass(frozen=True)
class RunOptions:
    stage: int
    strict: bool = False
    kind: str | None = None
    behaviours: tuple[str, ...] = ()
    # "bwrap"; "best" (bwrap, else a user of its own: the autograder); "none" (UNSANDBOXED=1)
    sandbox: str = "bwrap"
    time_limit: float = RUN_TIME_LIMIT
    load_time_limit: float = LIMITS.load_seconds
    tests_time_limit: float = LIMITS.tests_seconds
    label: str = ""  # the project as the report names it (its original folder)
    # `make check`: run the behaviours stage by stage, skip the later ones once one fails
    stop_at_unreached_stage: bool = False


@dataclass
class RunResult:
    results: dict
    seconds: float
    void: list[str] = field(default_factory=list)  # grader files the run changed

    @property
    def exit_code(self) -> int:
        if self.void:
            return EXIT_VOID
        if self.results.get("cannot_grade"):
            return EXIT_UNUSABLE
        return EXIT_PASSED if self.results["passed"] else EXIT_FAILED


def clear_reports(report_dir: Path) -> None:
    """Remove every report file an earlier run left: none can survive into this one."""
    for name in REPORT_FILES:
        (report_dir / name).unlink(missing_ok=True)
    shutil.rmtree(report_dir / "screenshots", ignore_errors=True)


def behaviour_mark(behaviour_id: str) -> str:
    """The text that marks the test of a behaviour (test_student_tests.py makes one test per
    planted mistake, all marked by the same line)."""
    if load_course().behaviour(behaviour_id).plant:
        return "mark.behaviour(behaviour.id)"
    return f'mark.behaviour("{behaviour_id}")'


def behaviour_modules(only=()) -> list[Path]:
    """The test modules that check behaviours (the others check this repository), or only
    those of the behaviours in `only`: grading collects just these, which spares each run
    importing the rest."""
    wanted = [behaviour_mark(b) for b in only] or ["@pytest.mark.behaviour("]
    return [
        path
        for path in sorted((REPO / "shared_tests").glob("test_*.py"))
        if any(mark in path.read_text(encoding="utf-8") for mark in wanted)
    ]


def pytest_command(project: Project, options: RunOptions, work: Path) -> list[str]:
    command = [
        sys.executable,
        "-I",  # isolated: no PYTHON* variables, no user site, no current folder
        "-X",
        f"pycache_prefix={GRADER_PYCACHE}",  # never the checkout's bytecode
        "-m",
        "pytest",
        *map(str, behaviour_modules(options.behaviours)),
        f"--rootdir={REPO}",
        "-c",
        str(REPO / "pyproject.toml"),
        f"--confcutdir={REPO / 'shared_tests'}",
        "-o",
        "addopts=",
        "-p",
        "no:cacheprovider",
        f"--basetemp={work / 'tmp'}",
        "-q",
        "--tb=short",
        "--project",
        str(project.root),
        "--stage",
        str(options.stage),
        "--report-dir",
        str(work / "results"),
        f"--junitxml={work / 'results' / 'junit.xml'}",
        "--sandbox",
        options.sandbox,
        f"--load-time-limit={options.load_time_limit:g}",
        f"--tests-time-limit={options.tests_time_limit:g}",
    ]
    command += ["--source-label", options.label] if options.label else []
    command += ["--strict-score"] if options.strict else []
    command += ["--stop-at-unreached-stage"] if options.stop_at_unreached_stage else []
    command += ["--kind", options.kind] if options.kind else []
    for behaviour in options.behaviours:
        command += ["--behaviour", behaviour]
    # Only bwrap can give the session a network of its own.
    return network_namespace(command) if options.sandbox == "bwrap" else command


def run_session(command: list[str], log_path: Path, time_limit: float) -> str | None:
    """Run the test session; None when it ended by itself, else why it was stopped."""
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    with open(log_path, "wb") as log:
        session = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one process group: stopped as one
        )
        try:
            session.wait(time_limit)
            return None
        except subprocess.TimeoutExpired:
            stop_family(session)
            return f"the run did not finish within its time limit ({time_limit:g} s)"


def stop_family(session: subprocess.Popen) -> None:
    """Kill the session's process group and every process it started: some left the group
    (mirakuru starts its servers in sessions of their own), and a Redis the tests had
    stopped (SIGSTOP) would otherwise stay behind, stopped, for good. The family is stopped
    first, so that none of it starts another process between the look and the kill."""
    os.killpg(session.pid, signal.SIGSTOP)
    family = descendants(session.pid)
    signal_quietly(family, signal.SIGSTOP)
    family += [p for p in descendants(session.pid) if p not in family]
    os.killpg(session.pid, signal.SIGKILL)
    signal_quietly(family, signal.SIGKILL)
    session.wait()


def last_line(log_path: Path) -> str:
    lines = [
        line
        for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        if line.strip()
    ]
    return lines[-1].strip()[:300] if lines else "no output"


def unfinished_report(project: Project, options: RunOptions, reason: str) -> Report:
    """The report of a run that could not finish: each behaviour failed, saying why."""
    course = load_course()
    label = options.label or str(project.root)
    report = Report(course, [options.stage], options.strict, label)
    behaviours = selected_behaviours(
        course, options.stage, options.kind, options.behaviours
    )
    report.fail_all(behaviours, options.stage, f"not checked: {reason}")
    report.notes.append(f"The run was stopped: {reason}.")
    return report


def own_tests_budget(options: RunOptions) -> float:
    """Stage 6, where mistakes are planted: the worst case of the runs of a project's own
    tests, on top of the time limit: the project as submitted (twice, when it fails), then
    the harmless and planted copies two at a time, twice over (a second round for the
    harmless copy when it fails and for each mistake nothing caught), each run at most
    tests_time_limit."""
    course = load_course()
    planted = [
        b
        for b in selected_behaviours(
            course, options.stage, options.kind, options.behaviours
        )
        if b.plant
    ]
    if not planted:
        return 0.0
    batches = -(-(len(planted) + 1) // 2)  # the harmless copy too, two at a time
    return (2 + 2 * batches) * options.tests_time_limit


def grade_project(project: Project, options: RunOptions, report_dir: Path) -> RunResult:
    """Grade `project` (already a private copy) as options.stage; write the reports into
    report_dir (cleared first) and return the results."""
    if options.sandbox == "best":  # decided here: the session's network depends on it
        kind = "bwrap" if sandbox_problem() is None else "user"
        options = dataclasses.replace(options, sandbox=kind)
    report_dir.mkdir(parents=True, exist_ok=True)
    clear_reports(report_dir)
    started = time.monotonic()
    drop_stale_bytecode()
    before = fingerprint()
    with tempfile.TemporaryDirectory(prefix="workshop-run-") as scratch:
        work = Path(scratch)
        (work / "results").mkdir()
        log_path = work / "pytest.log"
        stopped = run_session(
            pytest_command(project, options, work),
            log_path,
            options.time_limit + own_tests_budget(options),
        )
        results_file = work / "results" / "results.json"
        if stopped is None and results_file.is_file():
            results = json.loads(results_file.read_text(encoding="utf-8"))
            finished = work / "results"
        else:
            reason = stopped or f"the test session ended early ({last_line(log_path)})"
            unfinished_report(project, options, reason).write(work / "results")
            results = json.loads(results_file.read_text(encoding="utf-8"))
            finished = work / "results"
        void = changed_files(before, fingerprint())
        if void:
            results = void_results(results, void)
            results_file.write_text(json.dumps(results, indent=2) + "\n")
            with open(finished / "report.txt", "a", encoding="utf-8") as text:
                text.write("\n" + results["output"] + "\n")
        for path in finished.iterdir():
            destination = report_dir / path.name
            if path.is_dir():
                shutil.copytree(path, destination)
            else:
                shutil.copyfile(path, destination)
        shutil.copyfile(log_path, report_dir / "pytest.log")
    return RunResult(results, time.monotonic() - started, void)


def void_results(results: dict, changed: list[str]) -> dict:
    shown = ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else "")
    message = (
        f"VOID: the grader's own files changed during this run ({shown}). No score "
        "counts; restore them (git checkout -- shared_tests tools) before grading again."
    )
    return {**results, "score": 0, "passed": False, "output": message, "void": changed}
