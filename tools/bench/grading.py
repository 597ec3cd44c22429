"""`make bench-grading [QUICK=1]`: how long grading takes now, next to how long it took with the
grader as it was (BASELINE: the commit before the sandbox and the class tools), measured in the
same run, one after the other, so that the machine's speed swings hit both alike.

Measured: one pristine project per stage (`make grade`), a class of 10 stage-5 projects (now:
`make grade-class` with JOBS=1 and with the default; before: one `make grade` after the other,
as a grader had to), and the whole suite (`make test`). Prints a table with the date and the
machine and writes docs/images/bench/grading.json (QUICK=1: a class of 3, no `make test`, and
its results go to /tmp so the docs keep the full run's).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.bench.facts import cpu_model, load_average
from tools.bench.report import table
from tools.course import REPO, load_course
from tools.grading.class_grading import default_jobs
from tools.grading.project import NOT_COPIED

BASELINE = "c1eb523"  # the grader before issue 8 (sandbox) and issue 9 (classes)
RESULTS = REPO / "docs" / "images" / "bench" / "grading.json"
QUICK_RESULTS = Path(tempfile.gettempdir()) / "workshop-bench-grading.json"
PYTHON = sys.executable


def timed(command: list[str], cwd: Path, env=None) -> float:
    """Seconds `command` took; it must succeed (a grade may fail its project: exit 1)."""
    started = time.monotonic()
    result = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if result.returncode not in (0, 1):
        raise RuntimeError(
            f"{' '.join(command[:4])} ... failed ({result.returncode}):\n"
            + (result.stdout + result.stderr)[-2000:]
        )
    return time.monotonic() - started


def worktree(commit: str, where: Path) -> Path:
    """The repository as it was at `commit`, checked out beside this one, sharing this
    one's virtualenv (its pins are a superset), marked up to date so make does not
    reinstall it."""
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--force", str(where), commit],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    (where / ".venv").symlink_to(REPO / ".venv")
    (REPO / ".venv" / ".installed").touch()
    return where


def grade_now(project: Path, stage: int, report: Path) -> list[str]:
    return [PYTHON, "-m", "tools.grading.grade", "--project", str(project)] + [
        "--stage", str(stage), "--report-dir", str(report),
    ]  # fmt: skip


def grade_before(project: Path, stage: int, report: Path) -> list[str]:
    return [PYTHON, "-m", "tools.grade", "--project", str(project)] + [
        "--stage", str(stage), "--report-dir", str(report),
    ]  # fmt: skip


def copy_project(stage: int, destination: Path) -> Path:
    shutil.copytree(
        load_course().stage(stage).path,
        destination,
        # As the grader copies: no caches, no databases (nor a journal a test is writing).
        ignore=shutil.ignore_patterns(*NOT_COPIED),
    )
    return destination


def measure(baseline: Path, scratch: Path, class_size: int, with_suite: bool) -> list:
    rows = []

    def row(what: str, before: float | None, now: float) -> None:
        ratio = f"{now / before:.2f}" if before else "–"
        shown = round(before) if before else "–"  # "–": the baseline had no such stage
        rows.append([what, shown, round(now), ratio])
        print(f"  {what}: before {shown} s, now {round(now)} s")

    known_before = load_course(baseline / "shared_tests" / "course.toml").stages
    for stage in load_course().stages:
        project = copy_project(stage.number, scratch / f"stage{stage.number}")
        before = None  # a stage the baseline did not have yet
        if stage.number <= len(known_before):
            before = timed(grade_before(project, stage.number, scratch / "r"), baseline)
        now = timed(grade_now(project, stage.number, scratch / "r"), REPO)
        row(f"grade one pristine stage-{stage.number} project", before, now)
    # What the sandbox itself costs: the same grade now, without and with it, twice each,
    # taking turns, and the faster of each pair (a swing of the machine hits one run).
    stage5 = scratch / "stage5"
    bare, boxed = [], []
    for _ in range(2):
        bare.append(
            timed(grade_now(stage5, 5, scratch / "r") + ["--unsandboxed"], REPO)
        )
        boxed.append(timed(grade_now(stage5, 5, scratch / "r"), REPO))
    bare, boxed = min(bare), min(boxed)
    rows.append(["stage 5 now: unsandboxed / sandboxed", round(bare), round(boxed)])
    rows[-1].append(f"{boxed / bare:.2f}")
    print(
        f"  the sandbox: stage 5 unsandboxed {round(bare)} s, sandboxed {round(boxed)} s"
    )

    submissions = scratch / "class"
    for index in range(class_size):
        copy_project(5, submissions / f"student{index:02d}")
    before = sum(
        timed(grade_before(p, 5, scratch / "r"), baseline)
        for p in sorted(submissions.iterdir())
    )
    for jobs in (1, default_jobs()):
        command = [PYTHON, "-m", "tools.grading.class_grading", "--stage", "5"] + [
            "--submissions", str(submissions), "--jobs", str(jobs), "--fresh",
            "--report-dir", str(scratch / f"class-report-{jobs}"),
        ]  # fmt: skip
        now = timed(command, REPO)
        row(f"grade a class of {class_size} stage-5 projects, JOBS={jobs}", before, now)

    if with_suite:
        suite = [PYTHON, "-m", "pytest", "shared_tests", "-q", "-p", "no:cacheprovider"]
        before = timed(suite, baseline)
        now = timed(suite + ["-n", os.environ.get("TEST_WORKERS", "4")], REPO)
        row("make test (every stage and the repository's checks)", before, now)
    return rows


def render(results: dict | None = None) -> str:
    """The table (what the docs quote), with when and on what it was measured."""
    results = results or json.loads(RESULTS.read_text(encoding="utf-8"))
    meta = results["meta"]
    heads = ["what", "before s", "now s", "now / before"]
    return (
        table(heads, results["rows"])
        + f"\n\nMeasured {meta['date'][:16].replace('T', ' ')} UTC on {meta['cpu_model']}"
        + f" ({meta['cores']} cores): {meta['now']} against {meta['baseline']}; the"
        + f" run took {meta['seconds']} s.\n"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a class of 3, no make test"
    )
    parser.add_argument("--baseline", default=BASELINE)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    meta = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_start": load_average(),
        "baseline": args.baseline,
        "now": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip(),
        "mode": "quick" if args.quick else "full",
    }
    print(
        f"Grading speed, {meta['now']} against {args.baseline}, on {meta['cpu_model']} "
        f"({meta['cores']} cores), {meta['date'][:16]} UTC"
    )
    with tempfile.TemporaryDirectory(prefix="workshop-bench-grading-") as scratch:
        baseline = worktree(args.baseline, Path(scratch) / "baseline")
        try:
            rows = measure(
                baseline,
                Path(scratch),
                class_size=3 if args.quick else 10,
                with_suite=not args.quick,
            )
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(baseline)],
                cwd=REPO,
                capture_output=True,
            )
    meta["seconds"] = round(time.monotonic() - started)
    results = {"meta": meta, "rows": rows}
    out = QUICK_RESULTS if args.quick else RESULTS
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print()
    print(render(results))
    print(f"\nWritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
