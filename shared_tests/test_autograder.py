"""`make autograder STEP=N`: the Gradescope zip, unpacked into a fake /autograder (a folder
and AUTOGRADER_ROOT, no Docker), set up by its own setup.sh and run by its own
run_autograder on a pristine stage, a broken one and a hostile one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest

from shared_tests.graded_projects import append_to_settings, copy_stage
from tools.grading.autograder import build

pytestmark = pytest.mark.repository
STAGE = 2  # the first stage with robustness behaviours (0-point feedback)


@pytest.fixture(scope="module")
def autograder_root():
    """/autograder as Gradescope lays it out: the zip in source/, set up by setup.sh. A
    folder every user may pass through (the "user" sandbox walks to its copy)."""
    root = Path(tempfile.mkdtemp(prefix="workshop-autograder-root-"))
    os.chmod(root, 0o755)
    archive = build(STAGE, root / "autograder.zip")
    with zipfile.ZipFile(archive) as zipped:
        assert {"setup.sh", "run_autograder"} <= set(zipped.namelist()), "not at root"
        for member in zipped.infolist():  # as Gradescope's unzip does, modes included
            path = Path(zipped.extract(member, root / "source"))
            if mode := member.external_attr >> 16 & 0o777:
                os.chmod(path, mode)
    setup = subprocess.run(
        ["bash", str(root / "source" / "setup.sh")],
        env={**os.environ, "AUTOGRADER_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert setup.returncode == 0, setup.stdout[-2000:] + setup.stderr[-2000:]
    yield root
    shutil.rmtree(root, ignore_errors=True)


def run_autograder(root: Path, submission: Path, *options: str) -> dict:
    """Put `submission` where Gradescope puts it, run run_autograder, read results.json."""
    shutil.rmtree(root / "submission", ignore_errors=True)
    shutil.rmtree(root / "results", ignore_errors=True)
    shutil.copytree(submission, root / "submission")
    run = subprocess.run(
        [str(root / "source" / "run_autograder"), *options],
        env={**os.environ, "AUTOGRADER_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return json.loads((root / "results" / "results.json").read_text())


def test_a_pristine_stage_gets_full_marks_in_gradescopes_format(
    autograder_root, tmp_path
):
    """Score, per-behaviour tests with points, Markdown output, robustness as 0-point
    feedback, the sandbox named in the output."""
    results = run_autograder(autograder_root, copy_stage(STAGE, tmp_path))
    tests = results["tests"]
    assert results["score"] == sum(t["max_score"] for t in tests) > 0
    assert results["output_format"] == results["test_output_format"] == "md"
    assert "Sandbox: bubblewrap" in results["output"]
    assert all(t["status"] == "passed" for t in tests)
    feedback = [t for t in tests if not t["extra_data"]["scored"]]
    assert feedback and all(t["max_score"] == 0 for t in feedback)
    assert {t["tags"][0] for t in tests} == {"core", "robustness"}


def test_a_broken_submission_scores_zero_with_the_reason_and_hints(
    autograder_root, tmp_path
):
    """A submission whose settings raise: every behaviour failed, saying why, with its hint."""
    project = copy_stage(STAGE, tmp_path)
    append_to_settings("raise RuntimeError('settings exploded')")(project)
    results = run_autograder(autograder_root, project)
    assert results["score"] == 0
    assert "settings exploded" in results["output"]
    assert results["tests"] and all(t["status"] == "failed" for t in results["tests"])
    assert all("**Hint:**" in t["output"] for t in results["tests"])


def test_without_namespaces_a_user_of_its_own_cannot_touch_the_results(
    autograder_root, tmp_path
):
    """Where the container forbids bwrap's namespaces, the autograder falls back to
    Gradescope's advice (a user of its own, limits): a project that tries to write the
    results gets a report saying it could not, and no points."""
    project = copy_stage(STAGE, tmp_path)
    results_file = autograder_root / "results" / "results.json"
    append_to_settings(
        f"import json\nwith open({str(results_file)!r}, 'w') as _forged:\n"
        "    json.dump({'score': 1000, 'tests': []}, _forged)"
    )(project)
    results = run_autograder(autograder_root, project, "--sandbox", "user")
    assert results["score"] == 0
    assert "Sandbox: as user" in results["output"]
    assert "PermissionError" in results["output"]
