"""This repository itself (not run when grading a student's project): stage folders are clean
snapshots, each differing from the one before by exactly its lesson's files."""

import subprocess
import sys

import pytest

from tools.course import REPO, load_course
from tools.diff import code_files

pytestmark = pytest.mark.repository
COURSE = load_course()
GENERATED_MARKERS = ("__pycache__/", ".pyc", "db.sqlite3")
PROJECT_FILES = {
    "manage.py",
    "mysite/__init__.py",
    "mysite/asgi.py",
    "mysite/settings.py",
    "mysite/urls.py",
    "mysite/wsgi.py",
}


def tracked_files() -> list[str]:
    result = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    )
    return result.stdout.splitlines()


def test_no_generated_file_is_tracked():
    """No __pycache__, .pyc or db.sqlite3 is committed anywhere."""
    generated = [
        path
        for path in tracked_files()
        if any(mark in path for mark in GENERATED_MARKERS)
    ]
    assert not generated, f"generated files are tracked by git: {generated}"


@pytest.mark.parametrize("stage", COURSE.stages, ids=lambda stage: stage.folder)
def test_stage_folder_is_a_complete_project(stage):
    """Every stage holds manage.py and mysite/; from stage 2 on, the chat app too."""
    files = set(code_files(stage.path))
    missing = PROJECT_FILES - files
    if stage.number >= 2:
        missing |= {"chat/__init__.py", "chat/views.py", "chat/urls.py"} - files
    assert not missing, f"{stage.folder} lacks {sorted(missing)}"


@pytest.mark.parametrize("stage", COURSE.stages[1:], ids=lambda stage: stage.folder)
def test_stage_changes_only_its_lesson_files(stage):
    """The files that differ from the previous stage are exactly the ones course.toml lists."""
    previous = COURSE.stage(stage.number - 1)
    before, after = code_files(previous.path), code_files(stage.path)
    changed = {
        name
        for name in before.keys() | after.keys()
        if name not in before
        or name not in after
        or before[name].read_bytes() != after[name].read_bytes()
    }
    assert changed == set(stage.changes), (
        f"{previous.folder} -> {stage.folder} changes {sorted(changed)}, "
        f"but course.toml lists {sorted(stage.changes)}"
    )


def test_code_is_formatted_and_lint_free():
    """ruff finds nothing to fix (lint and format) in the whole repository."""
    for command in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"ruff {' '.join(command)}:\n{result.stdout}"
