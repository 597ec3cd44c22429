"""Grading stage 6, a student's own tests: tests that check nothing catch nothing, tests that
react to the planting itself earn nothing, and the tutorial's Part 4 tests, exactly as written
(a visible Chrome, 2 s waits), run in the grader as on the student's laptop."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from shared_tests.graded_projects import COURSE, copy_stage, edit, grade
from tools.course import REPO
from tools.grading import student_tests
from tools.grading.project import find_project
from tools.grading.sandbox import Sandbox
from tools.grading.student_tests import MutationRuns, mistake_code, source_reading_lines

pytestmark = pytest.mark.repository
PLANTED = [behaviour.id for behaviour in COURSE.behaviours if behaviour.plant]
# Grading only what stage 6 adds (the chat's behaviours are graded as at stage 5 elsewhere).
OWN_TESTS_ONLY = [
    option for b in ["own_tests_pass", *PLANTED] for option in ("--behaviour", b)
]
PART4_TESTS = REPO / "shared_tests" / "fixtures" / "part4_tests.py"

HOLLOW_TESTS = """
import time

from django.test import SimpleTestCase


class HollowTests(SimpleTestCase):
    def test_nothing(self):
        pass

    def test_sleeps_instead_of_checking(self):
        time.sleep(0.5)
"""

# Passes on the project as submitted, fails on any copy whose consumers.py changed.
FILE_WATCHING_TESTS = """
import hashlib
from pathlib import Path

from django.test import SimpleTestCase


class FileWatchingTests(SimpleTestCase):
    def test_consumers_py_is_as_submitted(self):
        text = (Path(__file__).parent / "consumers.py").read_bytes()
        self.assertEqual(hashlib.sha256(text).hexdigest(), "{digest}")
"""


def stage6_with_tests(tmp_path: Path, tests: str) -> Path:
    project = copy_stage(6, tmp_path)
    (project / "chat" / "tests.py").write_text(tests, encoding="utf-8")
    return project


def test_an_empty_test_module_scores_nothing(tmp_path):
    """startapp's empty tests.py: no test runs, so the tests do not pass, and no mistake can
    count as caught (the report says the tests must pass on the project first)."""
    empty = "from django.test import TestCase\n\n# Create your tests here.\n"
    graded = grade(stage6_with_tests(tmp_path, empty), 6, tmp_path, *OWN_TESTS_ONLY)
    own = graded.outcome("own_tests_pass")
    assert own["status"] == "failed" and "no test ran" in own["output"], own
    for behaviour_id in PLANTED:
        outcome = graded.outcome(behaviour_id)
        assert outcome["status"] == "failed", behaviour_id
        assert "must pass on your own project first" in outcome["output"], outcome


def test_tests_that_watch_the_files_earn_nothing(tmp_path):
    """Tests that fail whenever consumers.py changes would "catch" every planted mistake; the
    grader first plants harmless code, sees them fail there, and counts no mistake."""
    consumers = COURSE.stage(6).path / "chat" / "consumers.py"
    digest = hashlib.sha256(consumers.read_bytes()).hexdigest()
    tests = FILE_WATCHING_TESTS.replace("{digest}", digest)
    graded = grade(stage6_with_tests(tmp_path, tests), 6, tmp_path, *OWN_TESTS_ONLY)
    assert graded.outcome("own_tests_pass")["status"] == "passed", graded.report
    for behaviour_id in PLANTED:
        outcome = graded.outcome(behaviour_id)
        assert outcome["status"] == "failed", behaviour_id
        assert "only looks changed" in outcome["output"], outcome["output"]


def test_part4_tests_as_written_run_and_catch_what_they_check(tmp_path):
    """The tutorial's tests, to the letter (a visible webdriver.Chrome(), no driver path): the
    grader gives them a virtual display and Debian's Chromium, without a download. They catch
    one room's messages leaking into another and miss a forgotten group_discard. The room
    view's argument has a name of the student's own: the planted view code copes."""
    project = stage6_with_tests(tmp_path, PART4_TESTS.read_text(encoding="utf-8"))
    # A student's own name for the room view's argument: the planted view code copes.
    edit(project, "chat/urls.py", "(?P<room_name>", "(?P<name>")
    edit(
        project,
        "chat/views.py",
        "def room(request, room_name):",
        "def room(request, name):\n    room_name = name",
    )
    graded = grade(
        project,
        6,
        tmp_path,
        *("--behaviour", "own_tests_pass"),
        *("--behaviour", "catches_one_group"),
        *("--behaviour", "catches_page_ignores_room"),
        *("--behaviour", "catches_no_group_discard"),
    )
    assert graded.outcome("own_tests_pass")["status"] == "passed", graded.report
    assert graded.outcome("catches_one_group")["status"] == "passed", graded.report
    assert graded.outcome("catches_page_ignores_room")["status"] == "passed"
    missed = graded.outcome("catches_no_group_discard")
    assert missed["status"] == "failed" and "nothing caught it" in missed["output"]
    assert graded.returncode == 0, graded.output[-2000:]  # group_discard is robustness
    assert "your tests caught 2 of 3 planted mistakes (2 of the 2 core ones)" in (
        graded.report
    )


HANGING_TESTS = """
import time

from django.test import SimpleTestCase


class HangingTests(SimpleTestCase):
    def test_waits_forever(self):
        time.sleep(10**6)
"""

EXITING_TESTS = """
import os

from django.test import SimpleTestCase


class ExitingTests(SimpleTestCase):
    def test_exits_with_success_before_anything_fails(self):
        os._exit(0)
"""


@pytest.mark.parametrize(
    ("tests", "says"),
    [
        pytest.param(HANGING_TESTS, "the tests were stopped after", id="hang"),
        pytest.param(EXITING_TESTS, "no test ran", id="exit-0-midway"),
    ],
)
def test_hostile_tests_end_in_bounded_time_and_score_nothing(tmp_path, tests, says):
    """A test that never returns is stopped at the time limit; one that exits the runner
    with code 0 before it reports counts as no test run. Neither earns a point."""
    graded = grade(
        stage6_with_tests(tmp_path, tests),
        6,
        tmp_path,
        "--tests-time-limit",
        "5",
        *OWN_TESTS_ONLY,
    )
    own = graded.outcome("own_tests_pass")
    assert own["status"] == "failed" and says in own["output"], own
    assert graded.results["score"] == 0, graded.report
    assert graded.seconds < 60, graded.seconds


# Fails only where a copy looks planted by its folder, its command line, its Redis database
# or the names planted code defines: the grader makes every copy look alike in those.
COPY_SNIFFING_TESTS = """
import os
import sys

from django.test import SimpleTestCase

from chat import consumers


class CopySniffingTests(SimpleTestCase):
    def test_this_copy_looks_like_the_submitted_one(self):
        folder = os.path.basename(os.getcwd())
        self.assertNotIn("catches_", folder)
        self.assertNotIn("harmless", folder)
        self.assertEqual(sys.argv.count("--failfast"), 1)
        self.assertFalse(os.environ.get("REDIS_URL", "").endswith(("/10", "/11")))
        self.assertFalse(any("_planted" in name for name in vars(consumers)))
"""


def test_tests_that_check_nothing_or_sniff_the_copy_catch_no_mistake(tmp_path):
    """Tests that pass without asserting anything (or only sleep) pass on the project, and
    every planted mistake gets past them. So do tests that sniff the folder name, the
    command line, the Redis database or the planted names: every copy looks alike in
    those. No point for any mistake, and the report lists the sniffing lines for the
    grader to read."""
    tests = HOLLOW_TESTS + COPY_SNIFFING_TESTS
    graded = grade(stage6_with_tests(tmp_path, tests), 6, tmp_path, *OWN_TESTS_ONLY)
    assert graded.outcome("own_tests_pass")["status"] == "passed", graded.report
    for behaviour_id in PLANTED:
        outcome = graded.outcome(behaviour_id)
        assert outcome["status"] == "failed", (behaviour_id, graded.report)
        assert "nothing caught it" in outcome["output"], (behaviour_id, outcome)
    assert graded.returncode == 1, graded.output[-2000:]
    assert f"your tests caught 0 of {len(PLANTED)} planted mistakes" in graded.report
    assert "Read before trusting the stage-6 score" in graded.report
    assert "os.getcwd()" in graded.report


def test_code_outside_the_tests_that_reads_the_project_is_listed(tmp_path):
    """settings.py or manage.py could tell a planted copy by reading its files and exit, so
    the grader lists such lines anywhere in the project, not only in the tests. The stages'
    own code has none: a pristine project gets no such note."""
    project = copy_stage(6, tmp_path)
    assert source_reading_lines(find_project(project)) == []
    with open(project / "mysite" / "settings.py", "a", encoding="utf-8") as settings:
        settings.write("\n_TELL = open('chat/consumers.py').read().count('_')\n")
    lines = source_reading_lines(find_project(project))
    assert len(lines) == 1 and lines[0].startswith("mysite/settings.py:"), lines


class ScriptedRuns(MutationRuns):
    """MutationRuns whose test runs are scripted: what a flaky test suite gives, to check
    what the grader makes of it (no project runs)."""

    def __init__(self, script: dict[str | None, list[int]]):
        mistakes = [COURSE.behaviour(b) for b in PLANTED]
        super().__init__(None, {}, "", Sandbox("none"), False, Path("."), mistakes)
        # behaviour id (None: the harmless copy) -> its return codes, run by run
        self.script = script
        # The tests passed on the project as submitted.
        self.__dict__["own"] = student_tests.TestRun(0, 2, (), 1.0, "")
        self.copies_run: list[str | None] = []

    def _run_on_copy(self, sandbox, plants, timeout):
        mistake = next((codes[1] for codes in plants.values() if len(codes) > 1), None)
        behaviour = next(
            (b.id for b in self.behaviours if mistake == mistake_code(b)), None
        )
        self.copies_run.append(behaviour)
        returncode = self.script[behaviour][self.copies_run.count(behaviour) - 1]
        failed = ("test_rooms",) if returncode else ()
        return student_tests.TestRun(returncode, 2, failed, 1.0, "")

    def outcome(self, behaviour_id: str) -> student_tests.TestRun:
        return self.planted(COURSE.behaviour(behaviour_id))


def test_a_mistake_let_through_once_is_run_again_and_missed_only_if_let_through_twice():
    """The tutorial's tests post a message before the other window's socket is open, so
    now and then they let the mistake they check through. A planted copy nothing caught
    gets a second run: caught then, it counts as caught; let through twice, it is missed and
    the report says so. A copy caught the first time, and a harmless copy that passed, run
    once. The report tells the student which results changed on the second run."""
    once, twice = "catches_one_group", "catches_no_group_discard"
    caught = [b for b in PLANTED if b not in (once, twice)]
    script = {None: [0], once: [0, 1], twice: [0, 0]} | {b: [1] for b in caught}
    runs = ScriptedRuns(script)
    runs.run_planted(runs.behaviours)
    assert sorted(runs.copies_run, key=str) == sorted([*script, once, twice], key=str)
    assert runs.outcome(once).returncode == 1
    assert runs.outcome(twice).returncode == 0
    assert runs.outcome(twice).describe() == "2 tests ran and passed, in each of 2 runs"
    assert all(runs.outcome(b).returncode == 1 for b in caught)
    note = runs.flaky_note()
    assert COURSE.behaviour(once).title in note, note
    assert COURSE.behaviour(twice).title not in note, note
    assert "step6-automated-tests.md#waiting" in note


def test_a_harmless_copy_that_fails_once_is_run_again_and_named_in_the_report():
    """A harmless copy that fails runs again, and the report says the tests gave two
    results when the second run passes; tests that never change give no such note."""
    flaky = ScriptedRuns({None: [1, 0]} | {b: [1] for b in PLANTED})
    flaky.run_planted(flaky.behaviours)
    assert flaky.copies_run.count(None) == 2
    assert "failed on the harmless copy, then passed" in flaky.flaky_note()
    steady = ScriptedRuns({None: [0]} | {b: [1] for b in PLANTED})
    steady.run_planted(steady.behaviours)
    assert len(steady.copies_run) == len(PLANTED) + 1
    assert steady.flaky_note() is None
