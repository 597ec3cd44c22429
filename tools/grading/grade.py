"""`make grade STEP=N DIR=path`: grade a student's project as stage N with the shared tests.
`make check DIR=path`: run the stages in order against it and say how far it gets.

The project is never written to: the tests run on a copy, with the workshop's pinned packages
(a requirements.txt in the project is ignored) and a private Redis that the project's own
channel-layer settings are pointed at (tools/overlay/workshop_settings.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.course import REPO, load_course
from tools.grading.project import Project, ProjectError, find_project, load_failure
from tools.pins import pinned_requirements

DEFAULT_REPORT_DIR = "grade-report"


class TestsDidNotRun(RuntimeError):
    """pytest ended without writing results.json; the message quotes its last line."""


EXIT_PASSED, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True, help="the folder holding manage.py")
    parser.add_argument("--stage", type=int, help="grade as this stage")
    parser.add_argument("--check", action="store_true", help="run every stage in order")
    parser.add_argument("--strict", action="store_true", help="robustness counts too")
    parser.add_argument("--report-dir", default=DEFAULT_REPORT_DIR)
    parser.add_argument(
        "--behaviour", action="append", default=[], help="grade only this behaviour"
    )
    parser.add_argument(
        "--kind", choices=("core", "robustness"), help="grade only core or robustness"
    )
    args = parser.parse_args(argv)
    if args.stage is None and not args.check:
        parser.error("give --stage N (grade) or --check (every stage)")
    return args


def environment_note(project: Project) -> str:
    pins = ", ".join(
        r
        for r in pinned_requirements(extras=())
        if r.split("==")[0].lower()
        in ("django", "channels", "channels-redis", "daphne")
    )
    note = f"Environment: the workshop's pinned packages ({pins})."
    if project.requirements_file.is_file():
        note += " The project's requirements.txt is ignored in favour of these."
    return note


def load_problem(project: Project) -> str | None:
    """Why the project cannot even load (settings or ASGI application), or None."""
    with tempfile.TemporaryDirectory(prefix="workshop-probe-") as scratch:
        facts = project.copy_to(Path(scratch) / "project").probe()
    return load_failure(facts)


def write_unusable(
    report_dir: Path, stage: int | None, reason: str, strict: bool
) -> None:
    """results.json for a project that could not be graded at all: zero, and why."""
    course = load_course()
    max_score = 0
    if stage is not None:
        max_score = sum(
            b.points
            for b in course.behaviours
            if b.checked_at(stage) and b.counts(strict)
        )
    report_dir.mkdir(parents=True, exist_ok=True)
    results = {
        "score": 0,
        "max_score": max_score,
        "passed": False,
        "output": f"Cannot grade: {reason}",
        "tests": [],
    }
    (report_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (report_dir / "report.txt").write_text(f"Cannot grade: {reason}\n")


def run_stage(
    project: Project, stage: int, report_dir: Path, args, kind=None, behaviours=()
) -> dict:
    """Run the shared tests for one stage against the project; return results.json."""
    report_dir.mkdir(parents=True, exist_ok=True)
    results_file = report_dir / "results.json"
    results_file.unlink(missing_ok=True)  # never report an earlier run's results
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(REPO / "shared_tests"),
        "--project",
        str(project.root),
        "--stage",
        str(stage),
        "--report-dir",
        str(report_dir),
        f"--junitxml={report_dir / 'junit.xml'}",
        "-o",
        "addopts=",
        "-q",
        "--tb=short",
        "-p",
        "no:cacheprovider",
        f"--rootdir={REPO}",
    ]
    command += ["--strict-score"] if args.strict else []
    command += ["--kind", kind] if kind else []
    for behaviour in behaviours or args.behaviour:
        command += ["--behaviour", behaviour]
    with open(report_dir / "pytest.log", "w", encoding="utf-8") as log:
        subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    if not results_file.is_file():
        tail = (
            (report_dir / "pytest.log").read_text(encoding="utf-8").strip().splitlines()
        )
        raise TestsDidNotRun(
            f"the tests did not run: {tail[-1] if tail else 'no output'}"
        )
    return json.loads(results_file.read_text(encoding="utf-8"))


def grade(args) -> int:
    report_dir = Path(args.report_dir).resolve()
    try:
        project = find_project(args.project)
        problem = load_problem(project)
    except ProjectError as error:
        project, problem = None, str(error)
    if problem:
        print(f"Cannot grade {args.project}: {problem}")
        write_unusable(report_dir, args.stage, problem, args.strict)
        return EXIT_UNUSABLE
    stage = load_course().stage(args.stage)
    print(f"Grading {project.root} as stage {stage.number} ({stage.title}) ...")
    print(environment_note(project), flush=True)
    results = run_stage(project, stage.number, report_dir, args, kind=args.kind)
    print()
    print((report_dir / "report.txt").read_text(encoding="utf-8"))
    print(f"Reports: {report_dir / 'results.json'}, {report_dir / 'junit.xml'}")
    return EXIT_PASSED if results["passed"] else EXIT_FAILED


def first_failure(results: dict) -> dict | None:
    return next(
        (t for t in results["tests"] if t["scored"] and t["status"] != "passed"), None
    )


def settled_behaviours(course, stage: int, kind: str | None) -> list[str]:
    """The behaviours a stage checks in their final form. A project further along has moved
    past the "not yet" ones (a 404 /chat/ page, an echo-only or sync consumer)."""
    last = course.stages[-1].number
    return [
        b.id
        for b in course.behaviours
        if b.checked_at(stage)
        and b.expected_at(stage) == b.expected_at(last)
        and (kind is None or b.kind == kind)
    ]


def check(args) -> int:
    """Every stage in order; stop at the first one the project does not pass."""
    try:
        project = find_project(args.project)
        problem = load_problem(project)
    except ProjectError as error:
        problem = str(error)
    if problem:
        print(f"Cannot check {args.project}: {problem}")
        return EXIT_UNUSABLE
    course = load_course()
    print(f"Checking {project.root}, stage by stage.")
    print(environment_note(project), flush=True)
    reached = 0
    with tempfile.TemporaryDirectory(prefix="workshop-check-") as scratch:
        for stage in course.stages:
            kind = None if args.strict else "core"
            results = run_stage(
                project,
                stage.number,
                Path(scratch) / f"stage{stage.number}",
                args,
                behaviours=settled_behaviours(course, stage.number, kind),
            )
            failure = first_failure(results)
            if failure is None:
                print(f"  stage {stage.number}  passed  {stage.title}")
                reached = stage.number
                continue
            print(f"  stage {stage.number}  FAILED  {stage.title}")
            print(f"           {failure['name'].split('] ', 1)[-1]}")
            for line in failure["output"].splitlines():
                print(f"           {line}")
            break
    if reached == len(course.stages):
        print(f"You are at stage {reached}: every stage passes. Well done!")
    elif reached == 0:
        print(f"You are at the start: read docs/en/{course.stage(1).docs} for stage 1.")
    else:
        nxt = course.stage(reached + 1)
        print(
            f"You are at stage {reached}. Next: docs/en/{nxt.docs} (stage {nxt.number})."
        )
    return EXIT_PASSED if reached == len(course.stages) else EXIT_FAILED


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return check(args) if args.check else grade(args)
    except TestsDidNotRun as error:
        print(f"Cannot grade {args.project}: {error} (full output: pytest.log)")
        return EXIT_UNUSABLE


if __name__ == "__main__":
    sys.exit(main())
