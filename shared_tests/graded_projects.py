"""Grading projects from the tests: run the grader (tools/grading/grade.py) as a grader would,
on copies of the stages with a mistake or something hostile planted in them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tools.course import REPO, load_course
from tools.grading.project import NOT_COPIED

COURSE = load_course()
TUTORIAL_PROJECT = REPO / "shared_tests" / "fixtures" / "tutorial_chat"


@dataclass
class Grading:
    returncode: int
    output: str  # what the grader printed
    results: dict  # results.json
    report: str  # report.txt
    seconds: float

    def outcome(self, behaviour_id: str) -> dict:
        for test in self.results["tests"]:
            if test["behaviour"] == behaviour_id:
                return test
        raise AssertionError(f"{behaviour_id} was not graded: {self.output[-2000:]}")


def grade(
    project: Path, stage: int, tmp_path: Path, *options: str, timeout: float = 600
) -> Grading:
    """`python -m tools.grading.grade --project ... --stage N`; reports in tmp_path/report."""
    report_dir = tmp_path / "report"
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.grading.grade",
            "--project",
            str(project),
            "--stage",
            str(stage),
        ]
        + ["--report-dir", str(report_dir), *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    results_file = report_dir / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    report_file = report_dir / "report.txt"
    report = report_file.read_text() if report_file.is_file() else ""
    return Grading(
        result.returncode,
        result.stdout + result.stderr,
        results,
        report,
        time.monotonic() - started,
    )


def copy_stage(number: int, tmp_path: Path, name: str = "student") -> Path:
    destination = tmp_path / name
    shutil.copytree(
        COURSE.stage(number).path,
        destination,
        # As the grader copies: no caches, no databases (nor a journal a test is writing).
        ignore=shutil.ignore_patterns(*NOT_COPIED),
    )
    return destination


def edit(project: Path, relative: str, old: str, new: str) -> None:
    """Plant a mistake: replace text that must be there (so the mistake stays real)."""
    path = project / relative
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{relative} no longer contains {old!r}: update this mistake"
    path.write_text(text.replace(old, new), encoding="utf-8")


def room_page_starting_with(project: Path, script: str) -> None:
    """Put `script` first in the room page's <body>, as a student's own script."""
    edit(
        project,
        "chat/templates/chat/room.html",
        "<body>",
        f"<body>\n    <script>\n        {script}\n    </script>",
    )


def take_file(project: Path, relative: str, from_stage: int) -> None:
    shutil.copy(COURSE.stage(from_stage).path / relative, project / relative)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
    }


# ---------------------------------------------------------------------------- hostile code
def append_to_settings(code: str) -> Callable[[Path], None]:
    def plant(project: Path) -> None:
        with open(
            project / "mysite" / "settings.py", "a", encoding="utf-8"
        ) as settings:
            settings.write("\n" + code.strip() + "\n")

    return plant


def consumer_method(method: str, body: str) -> Callable[[Path], None]:
    """Replace the first line of a stage-3 consumer method with `body`."""
    first_lines = {
        "connect": "    def connect(self):\n        self.accept()\n",
        "receive": "    def receive(self, text_data=None, bytes_data=None):\n",
    }

    def plant(project: Path) -> None:
        old = first_lines[method]
        head = old.splitlines()[0] + "\n"
        indented = "".join(f"        {line}\n" for line in body.strip().splitlines())
        edit(project, "chat/consumers.py", old, head + indented + old[len(head) :])

    return plant


def never_accepts(project: Path) -> None:
    """A stage-3 consumer that never accepts a socket."""
    edit(project, "chat/consumers.py", "        self.accept()\n", "        pass\n")


settings_sleep_forever = append_to_settings("import time\ntime.sleep(10**6)")
