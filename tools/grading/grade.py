"""`make grade STEP=N DIR=path`: grade a student's project as stage N with the shared tests.
`make check DIR=path`: run the stages in order against it and say how far it gets.

The project is never written to: the tests run on a private copy, in the sandbox, with the
workshop's pinned packages (a requirements.txt in the project is ignored) and a private Redis
that the project's own channel-layer settings are pointed at (tools/overlay/workshop_settings.py).
How a run is made trustworthy: tools/grading/harness.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

from tools.course import REPO, behaviour_argument, load_course
from tools.grading.harness import (
    EXIT_UNUSABLE,
    RUN_TIME_LIMIT,
    RunOptions,
    clear_reports,
    grade_project,
)
from tools.grading.project import NO_FOLDER, Project, ProjectError, find_project
from tools.grading.report import Report, selected_behaviours
from tools.grading.sandbox import LIMITS, sandbox_problem
from tools.pins import pinned_requirements

REPORTS_ROOT = REPO / "grade-report"
EXIT_PASSED, EXIT_FAILED = 0, 1


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True, help="the folder holding manage.py")
    parser.add_argument("--stage", type=int, help="grade as this stage")
    parser.add_argument("--check", action="store_true", help="run every stage in order")
    parser.add_argument("--strict", action="store_true", help="robustness counts too")
    parser.add_argument(
        "--report-dir", help="default: grade-report/<the project's folder name>"
    )
    parser.add_argument(
        "--behaviour",
        action="append",
        default=[],
        type=behaviour_argument,
        help="grade only this behaviour",
    )
    parser.add_argument(
        "--kind", choices=("core", "robustness"), help="grade only core or robustness"
    )
    parser.add_argument(
        "--unsandboxed",
        action="store_true",
        help="grade without the sandbox where bwrap cannot run (the report says so)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=RUN_TIME_LIMIT,
        help="seconds one stage's run may take",
    )
    parser.add_argument(
        "--until",
        type=int,
        default=0,
        help="(check) stop at this stage; exit 1 if it is not reached",
    )
    parser.add_argument(
        "--load-time-limit",
        type=float,
        default=LIMITS.load_seconds,
        help="seconds the project may take to load its settings and ASGI application",
    )
    parser.add_argument(
        "--tests-time-limit",
        type=float,
        default=LIMITS.tests_seconds,
        help="(stage 6) seconds one run of the project's own tests may take",
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


def default_report_dir(folder: str) -> Path:
    """grade-report/<folder name>: two projects graded one after the other keep both."""
    name = Path(folder).expanduser().resolve().name or "project"
    return REPORTS_ROOT / name


def options_from(args, project: Project, stage: int, behaviours=()) -> RunOptions:
    return RunOptions(
        label=str(project.root),
        stage=stage,
        strict=args.strict,
        kind=args.kind,
        behaviours=tuple(behaviours or args.behaviour),
        sandbox="none" if args.unsandboxed else "bwrap",
        time_limit=args.time_limit,
        load_time_limit=args.load_time_limit,
        tests_time_limit=args.tests_time_limit,
    )


def refusal(args) -> str | None:
    """Why grading cannot start here (no student code has run yet), or None."""
    if args.unsandboxed:
        return None
    problem = sandbox_problem()
    if problem:
        return (
            f"the sandbox cannot run here: {problem}. Grading runs the student's code; "
            "pass UNSANDBOXED=1 to grade without the sandbox (the report will say so)"
        )
    return None


def cannot_grade(args, report_dir: Path, stage: int | None, reason: str) -> int:
    """One line, and reports that score 0 and say why (each behaviour failed, not checked)."""
    print(f"Cannot grade {args.project}: {reason}")
    course = load_course()
    stages = [stage] if stage in [s.number for s in course.stages] else []
    report = Report(course, stages, args.strict, str(args.project))
    report.cannot_grade = reason
    for number in stages:
        behaviours = selected_behaviours(course, number, args.kind, args.behaviour)
        report.fail_all(behaviours, number, f"not checked: {reason}")
    report.write(report_dir)
    return EXIT_UNUSABLE


def grade(args) -> int:
    report_dir = (
        Path(args.report_dir) if args.report_dir else default_report_dir(args.project)
    ).resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    clear_reports(report_dir)
    try:
        project = find_project(args.project)
    except ProjectError as error:
        return cannot_grade(args, report_dir, args.stage, str(error))
    problem = refusal(args)
    if problem:
        return cannot_grade(args, report_dir, args.stage, problem)
    stage = load_course().stage(args.stage)
    print(f"Grading {project.root} as stage {stage.number} ({stage.title}) ...")
    print(environment_note(project), flush=True)
    with tempfile.TemporaryDirectory(prefix="workshop-grade-") as scratch:
        try:
            copy = project.copy_to(Path(scratch) / project.root.name)
        except ProjectError as error:
            return cannot_grade(args, report_dir, args.stage, str(error))
        run = grade_project(copy, options_from(args, project, stage.number), report_dir)
    print()
    print((report_dir / "report.txt").read_text(encoding="utf-8"))
    print("Reports:")
    for name in ("report.txt", "results.json", "junit.xml"):
        if (report_dir / name).is_file():
            print(f"  {report_dir / name}")
    if run.void:
        print(run.results["output"], file=sys.stderr)
    return run.exit_code


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
    """Which stages the project has reached, and what comes next. Exit 0 when it ran (a
    stage not reached yet is the answer, not an error); 2 when the project cannot be
    checked; 1 only with --until N and stage N not reached.

    One run does it: a behaviour a stage checks in its final form is the same check at every
    stage that has it, so the project is graded once as the last stage on every such
    behaviour, and stage N is reached when all of stage N's pass."""
    try:
        project = find_project(args.project)
        problem = refusal(args)
    except ProjectError as error:
        problem = str(error)
    if problem:
        print(f"Cannot check {args.project}: {problem}")
        return EXIT_UNUSABLE
    course = load_course()
    stages = [s for s in course.stages if not args.until or s.number <= args.until]
    final = course.stages[-1].number
    wanted = sorted(
        {b for s in stages for b in settled_behaviours(course, s.number, None)}
    )
    print(f"Checking {project.root}, stage by stage.")
    print(environment_note(project), flush=True)
    with tempfile.TemporaryDirectory(prefix="workshop-check-") as scratch:
        try:
            copy = project.copy_to(Path(scratch) / project.root.name)
        except ProjectError as error:
            print(f"Cannot check {args.project}: {error}")
            return EXIT_UNUSABLE
        # Stage by stage: once a stage is not reached, the later stages' checks are skipped.
        options = dataclasses.replace(
            options_from(args, project, final, wanted), stop_at_unreached_stage=True
        )
        run = grade_project(copy, options, Path(scratch) / "report")
    if run.exit_code == EXIT_UNUSABLE or run.void:
        print(f"Cannot check {args.project}: {run.results['output']}")
        return run.exit_code
    tests = {test["behaviour"]: test for test in run.results["tests"]}
    kind = None if args.strict else "core"
    reached = 0
    for stage in stages:
        needed = settled_behaviours(course, stage.number, kind)
        failing = [tests[b] for b in needed if tests[b]["status"] != "passed"]
        if not failing:
            print(f"  stage {stage.number}  passed  {stage.title}")
            reached = stage.number
            continue
        print(f"  stage {stage.number}  not yet  {stage.title}")
        print(f"           {failing[0]['name'].split('] ', 1)[-1]}")
        for line in failing[0]["output"].splitlines():
            print(f"           {line}")
        break
    say_where_the_student_is(args, course, reached, tests)
    if args.until and reached < args.until:
        print(f"Stage {args.until} is not reached yet (UNTIL={args.until}).")
        return EXIT_FAILED
    return EXIT_PASSED


def say_where_the_student_is(args, course, reached: int, tests: dict) -> None:
    total = len(course.stages)
    robustness = settled_behaviours(course, reached, "robustness") if reached else []
    failing = [b for b in robustness if tests[b]["status"] != "passed"]
    if failing and not args.strict:
        count = f"{len(failing)} of {len(robustness)}"
        print(
            f"At stage {reached}, {count} robustness checks fail (beyond the tutorial, "
            f"not needed to pass): `make check DIR={args.project} STRICT=1` shows them."
        )
    if reached == total:
        print(f"You are at stage {reached} of {total}: every stage passes. Well done!")
        return
    nxt = course.stage(reached + 1)
    where = (
        f"at stage {reached} of {total}" if reached else f"at the start (0 of {total})"
    )
    print(f"You are {where}. Next: docs/en/{nxt.docs} (stage {nxt.number}).")


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # `make grade` without DIR=: nothing to grade or report on.
    if not args.project.strip():
        print(NO_FOLDER)
        return EXIT_UNUSABLE
    return check(args) if args.check else grade(args)


if __name__ == "__main__":
    sys.exit(main())
