"""A stage built the way a student builds it, in a folder of their own: the commands that
course.toml lists for the stage, then the files its lesson adds or changes.

tools/docs.py shows this as the "Build it yourself" section of each stage page (the block
`<!-- BEGIN build N -->`), and shared_tests/test_build_from_docs.py follows those pages from an
empty folder. The commands that write files (`django-admin startproject`, `manage.py startapp`)
run for real here, so every diff on the pages starts from exactly what those tools write.
Making a virtualenv and `pip install` are checked, not run: the Python running this (the
workshop's .venv) stands in for the student's.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tools.course import Stage, load_course
from tools.diff import code_files
from tools.pins import pinned_requirements

PINS = "{pins}"
SELENIUM = "{selenium}"
# startproject writes a new random key each time; a student keeps theirs.
# The key startproject draws at random (stage 9 replaces it with one from the environment).
SECRET_KEY = re.compile(r"^SECRET_KEY = ['\"]django-insecure-.*$", re.MULTILINE)


class BuildError(ValueError):
    """A step a student could not follow as written, or a lesson the stage folders contradict."""


def chat_pins() -> list[str]:
    """What the chat needs, exactly as pyproject.toml pins it (not the grader's tools)."""
    return pinned_requirements(extras=())


def selenium_pin() -> str:
    """Selenium, which stage 6's tests need, as pyproject.toml pins it for the grader."""
    return next(
        p for p in pinned_requirements(("grade",)) if p.startswith("selenium==")
    )


def commands(stage: Stage) -> list[str]:
    """The stage's commands as a student types them ({pins}, {selenium} spelled out)."""
    pins = " ".join(chat_pins())
    return [
        line.replace(PINS, pins).replace(SELENIUM, selenium_pin())
        for line in stage.commands
    ]


def same_secret_key(text: str, like: str) -> str:
    """`text` with the SECRET_KEY line of `like` (when both have one)."""
    key = SECRET_KEY.search(like)
    return SECRET_KEY.sub(lambda _: key.group(0), text) if key else text


# ---------------------------------------------------------------------------- the shell
class Shell:
    """Runs the few kinds of command a "Build it yourself" block holds, the way a student's
    shell would, starting in `folder`. Anything else is refused: a new kind of step is taught
    here before a page may use it, so the pages cannot ask for a step nobody checked."""

    def __init__(self, folder: Path, venv_active: bool = False):
        self.cwd = folder
        self.venv: Path | None = None
        self.active = venv_active

    def run(self, line: str) -> None:
        words = shlex.split(line, comments=True)
        match words:
            case []:
                return
            case ["mkdir", name]:
                (self.cwd / name).mkdir()
            case ["cd", name]:
                if not (self.cwd / name).is_dir():
                    raise BuildError(f"`{line}`: there is no folder {name} here")
                self.cwd = self.cwd / name
            case ["python3", "-m", "venv", name]:
                self.venv = self.cwd / name  # the workshop's .venv stands in for it
            case ["source", script]:
                if self.venv is None or self.cwd / script != self.venv / "bin/activate":
                    raise BuildError(f"`{line}`: no virtualenv was made at that path")
                self.active = True
            case ["pip", "install", *requirements]:
                self.need_venv(line)
                if sorted(requirements) not in (sorted(chat_pins()), [selenium_pin()]):
                    raise BuildError(
                        f"`{line}` does not install exactly the chat's pins in "
                        f"pyproject.toml: {' '.join(chat_pins())} (or {selenium_pin()})"
                    )
            case ["django-admin", *arguments]:
                self.need_venv(line)
                self.execute(line, [*django_admin(), *arguments])
            case ["python", "manage.py", *arguments]:
                self.need_venv(line)
                self.execute(line, [sys.executable, "manage.py", *arguments])
            case _:
                raise BuildError(
                    f"`{line}` is not a step tools/build.py knows how to run"
                )

    def need_venv(self, line: str) -> None:
        # Without the virtualenv active, `python` and `django-admin` are not the pinned ones.
        if not self.active:
            raise BuildError(f"`{line}` runs before a virtualenv is active")

    def execute(self, line: str, argv: list[str]) -> None:
        environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        # The project's manage.py sets its own; one inherited from a test run must not win.
        environment.pop("DJANGO_SETTINGS_MODULE", None)
        result = subprocess.run(
            argv, cwd=self.cwd, env=environment, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise BuildError(f"`{line}` failed:\n{result.stderr[-2000:]}")


def django_admin() -> list[str]:
    """The django-admin of the Python running this (the workshop's .venv)."""
    script = Path(sys.executable).with_name("django-admin")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "django"]


# ---------------------------------------------------------------------------- the lesson
@dataclass(frozen=True)
class FileStep:
    """One file the lesson writes: new (before is None) or changed."""

    name: str
    text: str
    before: str | None = None

    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                (self.before or "").splitlines(keepends=True),
                self.text.splitlines(keepends=True),
                fromfile=self.name,
                tofile=self.name,
            )
        )


@dataclass(frozen=True)
class Lesson:
    stage: Stage
    commands: tuple[str, ...]
    kept: tuple[str, ...]  # files the commands write that the lesson leaves alone
    files: tuple[FileStep, ...]  # in course.toml's order (the tutorial's)


def read_texts(folder: Path) -> dict[str, str]:
    return {
        name: path.read_text(encoding="utf-8")
        for name, path in code_files(folder).items()
    }


@cache
def lesson(number: int) -> Lesson:
    """Stage `number` as a student builds it on top of the stage before (stage 1: an empty
    folder): run the commands, then compare with the stage folder."""
    course = load_course()
    stage = course.stage(number)
    previous = read_texts(course.stage(number - 1).path) if number > 1 else {}
    with tempfile.TemporaryDirectory(prefix="workshop-build-") as tmp:
        shell = Shell(Path(tmp), venv_active=number > 1)
        for name, text in previous.items():
            (shell.cwd / name).parent.mkdir(parents=True, exist_ok=True)
            (shell.cwd / name).write_text(text, encoding="utf-8")
        for line in commands(stage):
            shell.run(line)
        before = read_texts(shell.cwd)
    after = read_texts(stage.path)
    return Lesson(
        stage, tuple(commands(stage)), *compare(stage, previous, before, after)
    )


def compare(
    stage: Stage,
    previous: dict[str, str],
    before: dict[str, str],
    after: dict[str, str],
) -> tuple[tuple[str, ...], tuple[FileStep, ...]]:
    """From the files of the stage before, those after the commands and the stage's own: the
    files the commands wrote that the lesson keeps, and the files the lesson writes."""
    if gone := sorted(before.keys() - after.keys()):
        raise BuildError(f"{stage.folder} lacks {gone}, which the student has by now")
    changed = {
        name
        for name, text in after.items()
        if name not in before or same_secret_key(before[name], text) != text
    }
    written = before.keys() - previous.keys()
    if unlisted := sorted(changed - set(stage.changes)):
        raise BuildError(f"course.toml does not list {unlisted} for {stage.folder}")
    if idle := sorted(set(stage.changes) - changed - written):
        raise BuildError(
            f"course.toml lists {idle} for {stage.folder}: nothing writes them"
        )
    steps = []
    for name in stage.changes:
        if name not in changed:
            continue
        text = after[name]
        # A code block shows a file that ends with one newline, byte for byte.
        if not text.endswith("\n") or text.endswith("\n\n"):
            raise BuildError(f"{stage.folder}/{name} must end with exactly one newline")
        old = same_secret_key(before[name], text) if name in before else None
        steps.append(FileStep(name, text, old))
    kept = tuple(name for name in sorted(written) if name not in changed)
    return kept, tuple(steps)
