"""Stage 6's lesson is the student's own tests (the tutorial's Part 4): they pass on the project,
and they catch the mistakes course.toml lists when the grader plants them, one at a time, into
copies of the project (tools/grading/student_tests.py)."""

from __future__ import annotations

import pytest

from shared_tests.conftest import COURSE
from tools.grading.student_tests import MutationRuns, source_reading_lines

PLANTED = [behaviour for behaviour in COURSE.behaviours if behaviour.plant]


@pytest.fixture(scope="session")
def mutation_runs(request, tmp_path_factory, stages_under_test):
    """Stage number -> the MutationRuns of its project's tests (each run made once)."""
    cache = {}

    def get(number: int) -> MutationRuns:
        if number not in cache:
            stage = stages_under_test(number)
            selected = request.config.workshop_selected
            cache[number] = MutationRuns(
                stage.source,
                stage.facts,
                stage.asgi_target,
                stage.sandbox,
                stage.uses_redis,
                tmp_path_factory.mktemp(f"stage{number}-own-tests"),
                behaviours=[b for b in PLANTED if (b.id, number) in selected],
            )
            reading = source_reading_lines(stage.source)
            if reading:  # for the grader to review, not a failure
                request.config.workshop_report.notes.append(
                    "Read before trusting the stage-6 score: the project's tests or "
                    "code read code or files, which could recognise a planted copy:\n  "
                    + "\n  ".join(reading[:10])
                )
        return cache[number]

    yield get
    # After the runs: what they did differently the second time goes in the report.
    for runs in cache.values():
        note = runs.flaky_note()
        if note:
            request.config.workshop_report.notes.append(note)


@pytest.mark.behaviour("own_tests_pass")
def test_own_tests_run_and_pass_on_the_project(stage, mutation_runs):
    """`manage.py test chat` finds at least one test, and every test passes."""
    run = mutation_runs(stage).own
    assert run.passed, f"{run.describe()}:\n{run.last_lines()}"


def planted_mistake_test(behaviour):
    @pytest.mark.behaviour(behaviour.id)
    def test(stage, mutation_runs):
        runs = mutation_runs(stage)
        # The first of these tests runs every planted copy this session checks.
        assert runs.untrustworthy is None, runs.untrustworthy
        run = runs.planted(behaviour)
        assert run.returncode != 0, (
            f"with this mistake planted, {run.describe()}: nothing caught it"
        )

    test.__doc__ = f"The tests fail when the grader plants: {behaviour.title}."
    return test


for _behaviour in PLANTED:
    _name = f"test_tests_catch_{_behaviour.id.removeprefix('catches_')}"
    globals()[_name] = planted_mistake_test(_behaviour)
    globals()[_name].__name__ = _name


# Errors the planted code itself could raise (it must fail a test by what it does).
PLANTING_ERRORS = (
    "NameError",
    "SyntaxError",
    "IndentationError",
    "ImportError",
    "RecursionError",
)


@pytest.mark.repository
def test_each_planted_mistake_loads_and_fails_one_of_the_stage6_tests(mutation_runs):
    """On the workshop's stage 6 every planted mistake loads without an error of its own and
    makes a test fail: it is caught for what it does, not because its code crashed."""
    runs = mutation_runs(6)
    for behaviour in PLANTED:
        run = runs.planted(behaviour)
        assert run.tests_ran and run.failed_tests, (behaviour.id, run.describe())
        broken = [error for error in PLANTING_ERRORS if error in run.output]
        assert not broken, (behaviour.id, run.last_lines(30))
