"""`make autograder STEP=N`: dist/autograder-stepN.zip for Gradescope, and what it runs there.

The zip holds, at its root, the two files Gradescope looks for, and the suite and tools:
  setup.sh         run once, as root, when Gradescope builds the image: Redis, Chromium, its
                   driver and bubblewrap from the system's packages, and a virtualenv with
                   the pinned packages grading needs
  run_autograder   run for each submission: grades /autograder/submission as stage N and
                   writes /autograder/results/results.json (Gradescope's format)
AUTOGRADER_ROOT points both at another folder than /autograder: that is how the tests run the
zip end to end without Docker.

Inside Gradescope's container the student's code runs in the bubblewrap sandbox when the
container allows it, else (kind "user") as a user of its own with the same limits, which is
Gradescope's own advice; the report says which.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from tools.course import REPO, load_course
from tools.grading.harness import RunOptions, grade_project
from tools.grading.project import ProjectError, find_project, ignored
from tools.grading.report import Report, selected_behaviours
from tools.grading.submissions import locate_project

DIST = REPO / "dist"
# What the zip carries besides setup.sh and run_autograder (the fixtures are the repository's
# own test projects: grading never uses them).
PACKED = ("shared_tests", "tools", "pyproject.toml")
LEFT_OUT = ("shared_tests/fixtures",)

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image.
set -euo pipefail
cd "${AUTOGRADER_ROOT:-/autograder}/source"
# The newest system Python 3.11+ (Debian 12 and Ubuntu 24.04 have one; Ubuntu 22.04 gets
# python3.11 from its universe packages).
python=""
for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "/usr/bin/$candidate" >/dev/null 2>&1 &&
    "/usr/bin/$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    python="/usr/bin/$candidate"; break
  fi
done
if [ -z "$python" ]; then
  apt-get update -qq && apt-get install -y -qq python3.11 python3.11-venv >/dev/null
  python=/usr/bin/python3.11
fi
# Redis, Chromium and its driver, nginx (stage 9), bubblewrap, Xvfb; CI=true: a missing one
# fails the build.
CI=true PYTHON="$python" bash tools/require.sh python redis browser nginx sandbox display
"$python" -m venv .venv
"$python" tools/pins.py grade > .venv/requirements.txt
.venv/bin/pip install --quiet --disable-pip-version-check -r .venv/requirements.txt
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission: grade /autograder/submission as stage {stage}
# and write /autograder/results/results.json.
cd "${{AUTOGRADER_ROOT:-/autograder}}/source" || exit 1
exec .venv/bin/python -m tools.grading.autograder run --stage {stage} \\
  --root "${{AUTOGRADER_ROOT:-/autograder}}" "$@"
"""


# ---------------------------------------------------------------------------- building
def packed_files() -> list[Path]:
    files = []
    for name in PACKED:
        top = REPO / name
        for path in [top] if top.is_file() else sorted(top.rglob("*")):
            relative = path.relative_to(REPO).as_posix()
            if not path.is_file() or relative.startswith(LEFT_OUT):
                continue
            if any(ignored(part) for part in path.relative_to(REPO).parts):
                continue
            files.append(path)
    return files


def executable(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o755 << 16
    return info


def build(stage: int, out: Path | None = None) -> Path:
    """Write the autograder zip for `stage` and return its path."""
    load_course().stage(stage)  # a stage that exists
    out = out or DIST / f"autograder-step{stage}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr(executable("setup.sh"), SETUP_SH)
        zipped.writestr(
            executable("run_autograder"), RUN_AUTOGRADER.format(stage=stage)
        )
        for path in packed_files():
            zipped.write(path, path.relative_to(REPO).as_posix())
    return out


# ---------------------------------------------------------------------------- running
def markdown_output(test: dict) -> str:
    """A test's output for Gradescope (Markdown): why, the hint, the section to read."""
    if test["status"] == "passed":
        return ""
    lines = []
    for line in test["output"].splitlines():
        if line.startswith("Hint: "):
            lines.append(f"**Hint:** {line.removeprefix('Hint: ')}")
        elif line.startswith("Read: "):
            lines.append(f"**Read:** `{line.removeprefix('Read: ')}`")
        else:
            lines.append(f"**Why:** {line}" if not lines else line)
    return "\n\n".join(lines)


def gradescope_results(results: dict, stage: int, seconds: float) -> dict:
    """Our results.json in Gradescope's richer form: Markdown output, tags, visibility,
    robustness as 0-point feedback, our own fields under extra_data."""
    title = load_course().stage(stage).title
    head = (
        f"**Stage {stage}: {title}**: {results['score']}/{results['max_score']} points"
    )
    notes = results.get("output", "")
    tests = [
        {
            "name": test["name"],
            "score": test["score"],
            "max_score": test["max_score"],
            "status": test["status"],
            "output": markdown_output(test),
            "tags": [test["name"].split("] ")[0].split(", ")[-1]],
            "visibility": "visible",
            "extra_data": {"behaviour": test["behaviour"], "scored": test["scored"]},
        }
        for test in results["tests"]
    ]
    return {
        "score": results["score"],
        "execution_time": round(seconds),
        "output": head + ("\n\n" + notes if notes else ""),
        "output_format": "md",
        "test_output_format": "md",
        "stdout_visibility": "hidden",
        "visibility": "visible",
        "tests": tests,
    }


def cannot_grade(stage: int, reason: str) -> dict:
    course = load_course()
    report = Report(course, [stage], strict=False, source="your submission")
    report.cannot_grade = reason
    report.fail_all(selected_behaviours(course, stage), stage, f"not checked: {reason}")
    return report.results()


def run(stage: int, root: Path, sandbox: str = "best") -> dict:
    """Grade root/submission as `stage`; write root/results/results.json."""
    started = time.monotonic()
    results_dir = root / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(results_dir, 0o700)  # the student's processes cannot reach it
    with tempfile.TemporaryDirectory(prefix="workshop-autograder-") as scratch:
        try:
            folder, note = locate_project(root / "submission")
            project = find_project(folder)
            copy = project.copy_to(Path(scratch) / "submission")
        except ProjectError as error:
            results = cannot_grade(stage, str(error))
        else:
            options = RunOptions(stage=stage, sandbox=sandbox, label="your submission")
            reports = Path(scratch) / "reports"
            results = grade_project(copy, options, reports).results
            if note:
                results["output"] = f"{note}\n{results.get('output', '')}".strip()
            print((reports / "report.txt").read_text(encoding="utf-8"))
    final = gradescope_results(results, stage, time.monotonic() - started)
    (results_dir / "results.json").write_text(
        json.dumps(final, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return final


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("build", "run"))
    parser.add_argument("--stage", type=int, required=True)
    parser.add_argument("--root", default="/autograder", help="(run) Gradescope's root")
    parser.add_argument(
        "--sandbox",
        choices=("best", "bwrap", "user"),
        default="best",
        help="(run) bwrap when the container allows it, else a user of its own",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.action == "build":
        print(f"Wrote {build(args.stage).relative_to(REPO)}")
        return 0
    run(args.stage, Path(args.root), args.sandbox)
    return 0  # the score is in results.json; a non-zero exit is Gradescope's "error"


if __name__ == "__main__":
    sys.exit(main())
