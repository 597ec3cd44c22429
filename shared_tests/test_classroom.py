"""`make classroom STEP=N`: the GitHub Classroom workflow parses as GitHub reads it, gives each
behaviour its points, and its commands, run here the way the runner runs them, grade a
student's project and report each behaviour."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from shared_tests.graded_projects import COURSE, append_to_settings, copy_stage
from tools.course import REPO
from tools.grading.classroom import workflow

pytestmark = pytest.mark.repository
STAGE = 1  # the workflow is the same for every stage; stage 1 grades quickest


def steps_of(text: str) -> list[dict]:
    return yaml.safe_load(text)["jobs"]["run-autograding-tests"]["steps"]


def test_the_workflow_gives_each_behaviour_its_points():
    """One step per behaviour of the stage, worth its points (robustness: 0), and the
    reporter reads every one of them."""
    document = yaml.safe_load(workflow(STAGE, "someone/channels-chat-workshop"))
    assert set(document["on"]) == {"push", "repository_dispatch"}
    steps = document["jobs"]["run-autograding-tests"]["steps"]
    graders = [s for s in steps if "autograding-command-grader" in s.get("uses", "")]
    expected = {
        b.id.replace("_", "-"): (b.points if b.kind == "core" else 0)
        for b in COURSE.behaviours
        if b.checked_at(STAGE)
    }
    assert {s["id"]: s["with"]["max-score"] for s in graders} == expected
    reporter = steps[-1]
    assert reporter["uses"].startswith(
        "classroom-resources/autograding-grading-reporter"
    )
    assert reporter["with"]["runners"].split(",") == list(expected)
    for step_id in expected:
        assert (
            f"steps.{step_id}.outputs.result"
            in reporter["env"][f"{step_id.upper()}_RESULTS"]
        )


def run_like_the_runner(command: str, workspace, **env) -> subprocess.CompletedProcess:
    chromium = shutil.which("chromium") or ""
    driver = shutil.which("chromedriver") or ""
    return subprocess.run(
        ["bash", "-c", command],
        cwd=workspace,
        env={
            **os.environ,
            "GITHUB_WORKSPACE": str(workspace),
            "STUDENT_PROJECT": ".",
            "MAKEFLAGS": "",
            "MAKELEVEL": "",
            # This machine's Chromium where the runner has Google Chrome.
            "CHROME_BIN": chromium,
            "CHROMEWEBDRIVER": os.path.dirname(driver),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("broken", [False, True], ids=["pristine", "broken"])
def test_its_commands_grade_the_project_and_report_each_behaviour(tmp_path, broken):
    """The runner's layout (the student's repository in submission/, the workshop in
    workshop/), the grading step, then every behaviour's step: all pass for a pristine
    stage; for a project whose settings raise, each fails saying why."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    project = copy_stage(STAGE, workspace, "submission")
    if broken:
        append_to_settings("raise RuntimeError('settings exploded')")(project)
    (workspace / "workshop").symlink_to(REPO)
    steps = steps_of(workflow(STAGE, "someone/channels-chat-workshop"))
    grade_step = next(s for s in steps if s["name"].startswith("Grade the project"))
    graded = run_like_the_runner(grade_step["run"], workspace)
    assert (workspace / "grade-report" / "results.json").is_file(), graded.stdout[
        -2000:
    ]
    for step in steps:
        if "autograding-command-grader" not in step.get("uses", ""):
            continue
        check = run_like_the_runner(step["with"]["command"], workspace)
        if broken:
            assert check.returncode == 1 and "settings exploded" in check.stdout
        else:
            assert check.returncode == 0, (step["id"], check.stdout)


def test_make_classroom_writes_the_file_and_says_where_it_goes(tmp_path):
    out = tmp_path / "classroom.yml"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.grading.classroom",
            "workflow",
            "--stage",
            str(STAGE),
            "--repository",
            "someone/channels-chat-workshop",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert ".github/workflows/classroom.yml" in result.stdout
    assert "someone/channels-chat-workshop" in out.read_text()
