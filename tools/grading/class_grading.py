"""`make grade-class STEP=N DIR=submissions/ [JOBS=k] [FRESH=1]`: grade a whole class.

Every sub-folder or .zip of DIR is one student (tools/grading/submissions.py). Each is graded
like `make grade` (its own copy, sandbox, Redis, ports and time limit), k at a time, with a
progress line. Writes, under the report folder (default grade-report/):
  <student>/report.txt, results.json, junit.xml   the usual reports, one folder per student
  class.csv                                       one row per student
  index.html                                      students x behaviours, sortable, offline
A student whose submission and the suite are unchanged since the last run is not graded again
(FRESH=1 grades everyone).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tools.course import REPO, behaviour_argument, load_course
from tools.grading.harness import RUN_TIME_LIMIT, RunOptions, grade_project
from tools.grading.integrity import HASHED
from tools.grading.project import ProjectError, find_project
from tools.grading.report import Report, selected_behaviours
from tools.grading.sandbox import LIMITS, sandbox_problem
from tools.grading.submissions import (
    ClassFolderError,
    Submission,
    find_submissions,
    fingerprint_submission,
    locate_project,
    unpack,
)
from tools.grading.summary import write_summary

KEY_FILE = ".graded-with"  # in each student's folder: what the grade was made from
CSV_COLUMNS = (
    "student",
    "score",
    "max_score",
    "passed",
    "seconds",
    "first_failing_behaviour",
    "note",
)


@dataclass
class StudentGrade:
    student: str
    results: dict
    seconds: float
    note: str = ""
    reused: bool = False

    @property
    def first_failure(self) -> str:
        for test in self.results.get("tests", []):
            if test.get("scored") and test["status"] != "passed":
                return test["behaviour"]
        return ""

    def row(self) -> dict:
        return {
            "student": self.student,
            "score": self.results.get("score", 0),
            "max_score": self.results.get("max_score", 0),
            "passed": self.results.get("passed", False),
            "seconds": round(self.seconds, 1),
            "first_failing_behaviour": self.first_failure,
            "note": self.note or self.results.get("cannot_grade", ""),
        }


SUITE_CHANGED = (
    "not graded: the grader's own files changed during this class run; restore them "
    "(git checkout -- shared_tests tools) and grade the class again"
)
EXIT_VOID = 3  # as `make grade` exits when its run is void


def default_jobs() -> int:
    """How many students at once: the cores plus one (much of a grade is waiting on
    sockets), at most one per 1.5 GB of memory (a run with its browser peaks near 1 GB)."""
    cores = os.cpu_count() or 1
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    return max(1, min(cores + 1, int(memory_gb / 1.5)))


def suite_key() -> str:
    """What grading depends on besides the submission: the suite, the tools, the pins."""
    digest = hashlib.sha256()
    for name in HASHED:
        top = REPO / name
        for path in [top] if top.is_file() else sorted(top.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(REPO)).encode() + path.read_bytes())
    return digest.hexdigest()


def grade_key(submission: Submission, options: RunOptions, suite: str) -> str:
    settings = json.dumps(
        [options.stage, options.strict, options.kind, list(options.behaviours)]
    )
    parts = [fingerprint_submission(submission), suite, settings]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def previous_grade(folder: Path, key: str) -> dict | None:
    """The results of the last run, when they were made from the same key."""
    key_file, results_file = folder / KEY_FILE, folder / "results.json"
    if not (key_file.is_file() and results_file.is_file()):
        return None
    if key_file.read_text(encoding="utf-8").strip() != key:
        return None
    return json.loads(results_file.read_text(encoding="utf-8"))


def cannot_grade(submission: Submission, options: RunOptions, folder: Path, why: str):
    course = load_course()
    report = Report(course, [options.stage], options.strict, submission.student)
    report.cannot_grade = why
    behaviours = selected_behaviours(
        course, options.stage, options.kind, options.behaviours
    )
    report.fail_all(behaviours, options.stage, f"not checked: {why}")
    report.write(folder)
    return report.results()


def grade_student(
    submission: Submission, options: RunOptions, report_root: Path, suite: str, fresh
) -> StudentGrade:
    folder = report_root / submission.student
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        key = grade_key(submission, options, suite)
    except OSError as error:  # an unreadable submission: no key, graded as it cannot be
        why = f"the submission cannot be read ({error})"
        return StudentGrade(
            submission.student, cannot_grade(submission, options, folder, why), 0.0
        )
    if not fresh and (results := previous_grade(folder, key)) is not None:
        return StudentGrade(submission.student, results, 0.0, reused=True)
    (folder / KEY_FILE).unlink(missing_ok=True)
    # An earlier run changed the grader's files: it is not trusted now.
    if suite_key() != suite:
        results = cannot_grade(submission, options, folder, SUITE_CHANGED)
        return StudentGrade(submission.student, {**results, "void": True}, 0.0)
    note = ""
    with tempfile.TemporaryDirectory(prefix="workshop-class-") as scratch:
        try:
            source = submission.path
            if submission.is_zip:
                source = unpack(submission.path, Path(scratch) / "unpacked")
            project_dir, note = locate_project(source)
            project = find_project(project_dir)
            copy = project.copy_to(Path(scratch) / submission.student)
        except ProjectError as error:
            results = cannot_grade(submission, options, folder, str(error))
        except Exception as error:  # noqa: BLE001 - one submission never stops the class
            why = f"the grader failed on this submission ({type(error).__name__}: {error})"
            results = cannot_grade(submission, options, folder, why)
        else:
            labelled = RunOptions(**{**options.__dict__, "label": submission.student})
            results = grade_project(copy, labelled, folder).results
    if note:
        results.setdefault("output", "")
        results["output"] = (note + "\n" + results["output"]).strip()
        (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    # A void grade is never reused: the next run grades again.
    if not results.get("void"):
        (folder / KEY_FILE).write_text(key + "\n", encoding="utf-8")
    return StudentGrade(submission.student, results, time.monotonic() - started, note)


class Progress:
    """Students done / total, with an estimate of the time left, on one line (a terminal)
    or a line per student (a log)."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.done, self.stream = total, 0, stream
        self.started = time.monotonic()
        self.tty = stream.isatty()
        self._lock = threading.Lock()

    def advance(self, grade: StudentGrade) -> None:
        with self._lock:
            self.done += 1
            elapsed = time.monotonic() - self.started
            left = elapsed / self.done * (self.total - self.done)
            width = 20
            filled = round(width * self.done / self.total)
            bar = "#" * filled + "-" * (width - filled)
            score = (
                f"{grade.results.get('score', 0)}/{grade.results.get('max_score', 0)}"
            )
            how = "unchanged" if grade.reused else f"{grade.seconds:.0f} s"
            line = (
                f"[{bar}] {self.done}/{self.total} students, ETA {clock(left)}"
                f"  {grade.student}: {score} ({how})"
            )
            if self.tty:
                self.stream.write("\r\033[K" + line)
                if self.done == self.total:
                    self.stream.write("\n")
            else:
                self.stream.write(line + "\n")
            self.stream.flush()


def clock(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def write_csv(grades: list[StudentGrade], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for grade in grades:
            writer.writerow(grade.row())


def grade_class(
    submissions: list[Submission],
    options: RunOptions,
    report_root: Path,
    jobs: int,
    fresh: bool = False,
) -> list[StudentGrade]:
    """Grade every submission, `jobs` at a time; write class.csv and index.html."""
    report_root.mkdir(parents=True, exist_ok=True)
    suite = suite_key()
    progress = Progress(len(submissions))
    grades: dict[str, StudentGrade] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [
            pool.submit(grade_student, s, options, report_root, suite, fresh)
            for s in submissions
        ]
        for future in as_completed(futures):
            grade = future.result()
            grades[grade.student] = grade
            progress.advance(grade)
    ordered = [grades[s.student] for s in submissions]
    write_csv(ordered, report_root / "class.csv")
    write_summary(ordered, options, report_root / "index.html")
    return ordered


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", type=int, required=True)
    parser.add_argument(
        "--submissions", required=True, help="one sub-folder or .zip each"
    )
    parser.add_argument(
        "--jobs", type=int, default=0, help="students at once (0: auto)"
    )
    parser.add_argument("--fresh", action="store_true", help="grade everyone again")
    parser.add_argument("--strict", action="store_true", help="robustness counts too")
    parser.add_argument("--report-dir", default=str(REPO / "grade-report"))
    parser.add_argument("--unsandboxed", action="store_true")
    parser.add_argument(
        "--behaviour", action="append", default=[], type=behaviour_argument
    )
    parser.add_argument("--time-limit", type=float, default=RUN_TIME_LIMIT)
    parser.add_argument("--load-time-limit", type=float, default=LIMITS.load_seconds)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        submissions = find_submissions(args.submissions)
    except ClassFolderError as error:
        print(error, file=sys.stderr)
        return 2
    if not args.unsandboxed and (problem := sandbox_problem()):
        print(
            f"Cannot grade the class: the sandbox cannot run here: {problem}. Pass "
            "UNSANDBOXED=1 to grade without it (every report will say so).",
            file=sys.stderr,
        )
        return 2
    stage = load_course().stage(args.stage)
    jobs = args.jobs or default_jobs()
    options = RunOptions(
        stage=stage.number,
        strict=args.strict,
        behaviours=tuple(args.behaviour),
        sandbox="none" if args.unsandboxed else "bwrap",
        time_limit=args.time_limit,
        load_time_limit=args.load_time_limit,
    )
    report_root = Path(args.report_dir).resolve()
    print(
        f"Grading {len(submissions)} submissions in {args.submissions} as stage "
        f"{stage.number} ({stage.title}), {jobs} at a time ...",
        flush=True,
    )
    grades = grade_class(submissions, options, report_root, jobs, args.fresh)
    passed = sum(1 for g in grades if g.results.get("passed"))
    reused = sum(1 for g in grades if g.reused)
    print(f"{passed} of {len(grades)} students pass every scored behaviour", end="")
    print(
        f" ({reused} unchanged since the last run, not graded again)."
        if reused
        else "."
    )
    print(f"Class: {report_root / 'class.csv'}")
    print(f"Summary: {report_root / 'index.html'}")
    void = [g.student for g in grades if g.results.get("void")]
    if void:
        print(
            f"VOID for {len(void)} students ({', '.join(void[:5])}"
            f"{' ...' if len(void) > 5 else ''}): the grader's own files changed during "
            "this run. Restore them (git checkout -- shared_tests tools) and grade again.",
            file=sys.stderr,
        )
        return EXIT_VOID
    return 0


if __name__ == "__main__":
    sys.exit(main())
