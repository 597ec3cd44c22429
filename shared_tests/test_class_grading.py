"""`make grade-class`: a folder of submissions graded in parallel, in the sandbox, into
class.csv, a report folder per student and a sortable index.html; a re-run grades only what
changed."""

from __future__ import annotations

import csv
import functools
import http.server
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from shared_tests.browser import repository_screenshot, save_side_by_side, wait_until
from shared_tests.graded_projects import (
    COURSE,
    consumer_method,
    copy_stage,
    edit,
    settings_sleep_forever,
)
from tools.course import REPO
from tools.grading import project as project_module
from tools.grading.class_grading import KEY_FILE, grade_student, suite_key
from tools.grading.harness import RunOptions
from tools.grading.project import ProjectError, copy_tree
from tools.grading.submissions import (
    Submission,
    find_submissions,
    locate_project,
    unpack,
)

pytestmark = pytest.mark.repository
STAGE = 3


def zip_folder(folder: Path, archive: Path, inside: str) -> None:
    """Zip `folder` as `inside/...` (one folder down, as students often hand in)."""
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in folder.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                zipped.write(path, f"{inside}/{path.relative_to(folder)}")


exits_in_receive = consumer_method("receive", "import os\nos._exit(0)")


def forget_origin_check(project: Path) -> None:
    edit(
        project,
        "mysite/asgi.py",
        "AllowedHostsOriginValidator(\n            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))\n        )",
        "AuthMiddlewareStack(URLRouter(websocket_urlpatterns))",
    )


def build_class(root: Path) -> Path:
    """Five students: one pristine, one who forgot the Origin check and handed in a zip
    with the project one folder down, a hostile one whose server exits in the middle of a
    test, one whose settings never finish loading, and a folder without a project."""
    submissions = root / "submissions"
    submissions.mkdir()
    copy_stage(STAGE, submissions, "ada")
    bo = copy_stage(STAGE, root, "bo")
    forget_origin_check(bo)
    zip_folder(bo, submissions / "bo.zip", "my-chat")
    exits_in_receive(copy_stage(STAGE, submissions, "dee"))
    settings_sleep_forever(copy_stage(STAGE, submissions, "eve"))
    (submissions / "fay").mkdir()
    (submissions / "fay" / "notes.txt").write_text("I will hand it in tomorrow")
    return submissions


def grade_class(submissions: Path, report: Path, *options: str):
    return subprocess.run(
        [sys.executable, "-m", "tools.grading.class_grading", "--stage", str(STAGE)]
        + ["--submissions", str(submissions), "--report-dir", str(report), *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )


def read_csv(path: Path) -> dict[str, dict]:
    with open(path, encoding="utf-8") as file:
        return {row["student"]: row for row in csv.DictReader(file)}


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """The class graded once, two at a time (eve's settings sleep past a 15 s load limit,
    so the class also shows that one slow submission does not hold the others up)."""
    root = tmp_path_factory.mktemp("class")
    submissions = build_class(root)
    result = grade_class(
        submissions, root / "report", "--jobs", "2", "--load-time-limit", "15"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return submissions, root / "report", result


def test_every_student_gets_a_row_and_a_report_folder(graded_class):
    """class.csv has a row per student with score, max, passed, seconds and the first
    failing behaviour; each student's folder has the usual reports."""
    _, report, result = graded_class
    rows = read_csv(report / "class.csv")
    assert list(rows) == ["ada", "bo", "dee", "eve", "fay"]
    full = rows["ada"]["max_score"]
    assert rows["ada"]["score"] == full and rows["ada"]["passed"] == "True"
    assert "one folder down, in my-chat/" in rows["bo"]["note"]
    assert rows["bo"]["first_failing_behaviour"] == "origin_check"
    for student in ("bo", "dee", "eve", "fay"):
        assert rows[student]["passed"] == "False"
        assert int(rows[student]["score"]) < int(full)
    assert rows["dee"][
        "first_failing_behaviour"
    ]  # its server died: the first check fails
    assert "still loading after 15 s" in rows["eve"]["note"]
    assert "no manage.py" in rows["fay"]["note"]
    for student in rows:
        assert (report / student / "results.json").is_file()
        assert (report / student / "report.txt").is_file()
    assert "students, ETA" in result.stderr  # the progress line


def progress_of(result) -> dict[str, str]:
    """student -> how it was graded ("unchanged" or "12 s"), from the progress lines."""
    found = {}
    for line in result.stderr.replace("\r", "\n").splitlines():
        if "students, ETA" in line:
            student, _, rest = line.split("  ", 1)[1].partition(": ")
            found[student] = rest.rsplit("(", 1)[1].rstrip(")")
    return found


def test_a_rerun_grades_only_what_changed(graded_class):
    """Nothing changed: nobody is graded again. One submission changed (fay handed in a
    manage.py): only that one."""
    submissions, report, _ = graded_class
    again = grade_class(submissions, report, "--load-time-limit", "15")
    assert set(progress_of(again).values()) == {"unchanged"}, again.stderr
    (submissions / "fay" / "manage.py").write_text("# handed in late, still empty\n")
    changed = progress_of(grade_class(submissions, report, "--load-time-limit", "15"))
    assert changed.pop("fay") != "unchanged"
    assert set(changed.values()) == {"unchanged"}


def test_fresh_grades_everyone_again(tmp_path):
    """FRESH=1 (--fresh) grades a student whose submission did not change."""
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    copy_stage(1, submissions, "gus")
    options = ("--behaviour", "manage_check")
    grade_class(submissions, tmp_path / "report", *options)
    assert progress_of(grade_class(submissions, tmp_path / "report", *options)) == {
        "gus": "unchanged"
    }
    fresh = grade_class(submissions, tmp_path / "report", *options, "--fresh")
    assert progress_of(fresh)["gus"] != "unchanged"


@pytest.fixture
def served(graded_class):
    """The report folder over HTTP on the loopback (the test browser runs in the sandbox,
    which cannot read files outside it)."""
    _, report, _ = graded_class
    handler = functools.partial(QuietHandler, directory=str(report))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
        httpd.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_the_summary_page_sorts_and_shows_every_behaviour(served, browser):
    """index.html lists students x behaviours; clicking "score" sorts by it. Its screenshot
    goes to the docs."""
    browser.switch_to.new_window("window")
    browser.set_window_size(1100, 640)
    browser.get(f"{served}/index.html")
    headings = [th.text for th in browser.find_elements(By.TAG_NAME, "th")]
    behaviours = [b.id for b in COURSE.behaviours if b.checked_at(STAGE)]
    assert headings[:3] == ["student", "score", "max"] and behaviours == headings[3:-1]

    def students(driver):
        return [row.find_element(By.TAG_NAME, "td").text for row in rows_of(driver)]

    browser.find_elements(By.TAG_NAME, "th")[1].click()
    wait_until(browser, lambda d: students(d)[-1] == "ada", "not sorted by score")
    scores = [int(r.find_elements(By.TAG_NAME, "td")[1].text) for r in rows_of(browser)]
    assert scores == sorted(scores)
    save_side_by_side(
        browser,
        [browser.current_window_handle],
        ["make grade-class: grade-report/index.html"],
        repository_screenshot("class-summary.png"),
    )
    browser.close()
    browser.switch_to.window(browser.window_handles[0])


def rows_of(driver):
    return driver.find_element(By.TAG_NAME, "tbody").find_elements(By.TAG_NAME, "tr")


def test_a_folder_that_is_not_a_class_is_one_line(tmp_path):
    result = grade_class(tmp_path / "nowhere", tmp_path / "report")
    assert result.returncode == 2 and "no such folder of submissions" in result.stderr
    (tmp_path / "empty").mkdir()
    result = grade_class(tmp_path / "empty", tmp_path / "report")
    assert result.returncode == 2 and "holds no sub-folder or .zip" in result.stderr


def test_a_malformed_zip_gets_a_row_and_the_class_goes_on(tmp_path):
    """A zip that cannot be unpacked (a member that is both a file and a folder; a damaged
    member) gets a row saying so and a zero; the other students are graded as usual."""
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    with zipfile.ZipFile(submissions / "file-and-folder.zip", "w") as zipped:
        zipped.writestr("chat", "a file")
        zipped.writestr("chat/views.py", "a file inside the file")
    with zipfile.ZipFile(submissions / "damaged.zip", "w") as zipped:
        zipped.writestr("manage.py", "print('hi')" * 100)
    damaged = bytearray((submissions / "damaged.zip").read_bytes())
    damaged[40] ^= 0xFF  # inside the member's data: its checksum no longer matches
    (submissions / "damaged.zip").write_bytes(bytes(damaged))
    copy_stage(STAGE, submissions, "ada")
    result = grade_class(
        submissions, tmp_path / "report", "--behaviour", "manage_check"
    )
    assert result.returncode == 0, result.stderr
    rows = read_csv(tmp_path / "report" / "class.csv")
    for student in ("file-and-folder", "damaged"):
        assert "is not a readable zip" in rows[student]["note"], rows[student]
        assert rows[student]["score"] == "0"
    assert rows["ada"]["score"] == rows["ada"]["max_score"] != "0"


def test_once_the_grader_changed_no_student_is_graded_by_it(tmp_path):
    """When the grader's files differ from those the class run started with (a run changed
    them), the next student is not graded by them: "not graded", a zero, marked void, and
    nothing kept for the next run to reuse."""
    submission = Submission("ada", copy_stage(STAGE, tmp_path, "ada"))
    options = RunOptions(stage=STAGE, behaviours=("manage_check",), sandbox="none")
    grade = grade_student(
        submission, options, tmp_path / "report", "the old suite", False
    )
    assert grade.results["void"] and grade.results["score"] == 0
    assert "the grader's own files changed during this class run" in grade.row()["note"]
    assert not (tmp_path / "report" / "ada" / KEY_FILE).exists()


def test_a_submission_past_the_size_caps_is_refused(tmp_path, monkeypatch):
    """A zip that would unpack to more than 100 MB (a zip bomb) is refused before its file
    is written, and so is a folder of more files than the cap (a virtualenv inside?)."""
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("manage.py", bytes(project_module.MAX_PROJECT_BYTES + 1))
    with pytest.raises(ProjectError, match="unpacks to more than 100 MB"):
        unpack(bomb, tmp_path / "unpacked")
    assert not (tmp_path / "unpacked" / "manage.py").exists()

    monkeypatch.setattr(project_module, "MAX_PROJECT_FILES", 3)
    with pytest.raises(ProjectError, match="a virtualenv or data inside the project"):
        copy_tree(copy_stage(STAGE, tmp_path), tmp_path / "copy")


def test_a_linked_folder_is_not_taken_for_the_students_project(tmp_path):
    """A submission holding only a link to another student's project is not graded as that
    project: links are never followed out of a submission."""
    bob = copy_stage(STAGE, tmp_path, "bob")
    alice = tmp_path / "alice"
    alice.mkdir()
    (alice / "project").symlink_to(bob)
    with pytest.raises(ProjectError, match="has no manage.py"):
        locate_project(alice)


def test_no_student_takes_the_name_of_the_class_report_files(tmp_path):
    """A submission named index.html or class.csv gets a folder of another name: the
    class's summary page and table sit beside the students' folders."""
    for name in ("index.html", "class.csv", "ada"):
        (tmp_path / name).mkdir()
    students = [s.student for s in find_submissions(tmp_path)]
    assert students == ["ada", "class.csv_", "index.html_"]


def test_a_file_name_that_is_not_utf8_does_not_stop_the_class(tmp_path):
    """A file name that is not UTF-8 is hashed as bytes: the student is graded as usual."""
    submission = Submission("ada", copy_stage(STAGE, tmp_path, "ada"))
    (submission.path / os.fsdecode(b"\xff.py")).write_text("")
    options = RunOptions(stage=STAGE, behaviours=("manage_check",), sandbox="none")
    grade = grade_student(submission, options, tmp_path / "report", suite_key(), False)
    assert grade.results["score"] == grade.results["max_score"] > 0, grade.results


def test_a_zip_that_escapes_its_folder_is_refused(tmp_path):
    """A zip entry like ../../evil.py is refused (zip slip), a link inside is left out."""
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    with zipfile.ZipFile(submissions / "mallory.zip", "w") as zipped:
        zipped.writestr("../../escaped.py", "print('out')")
        zipped.writestr("manage.py", "print('hi')")
    result = grade_class(
        submissions, tmp_path / "report", "--behaviour", "manage_check"
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "escaped.py").exists()
    assert (
        "a path outside the project"
        in read_csv(tmp_path / "report" / "class.csv")["mallory"]["note"]
    )
