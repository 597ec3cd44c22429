"""One suite, many stages: every test marked @behaviour("<id>") runs once per stage that
course.toml checks it at, against that stage's folder, or against a student's project
(`--project DIR --stage N`, which is what `make grade` runs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared_tests.browser import NoBrowser, start_browser
from shared_tests.report import BehaviourReport
from shared_tests.servers import ServerPool
from shared_tests.stage_under_test import StageUnderTest
from tools.course import REPO, load_course
from tools.grading.project import ProjectError, find_project
from tools.redis_server import PrivateRedis, RedisMissing

COURSE = load_course()
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_prerequisite(message: str) -> None:
    """A missing Redis or browser: a failure in CI, a skip (never a pass) elsewhere."""
    if IN_CI:
        pytest.fail(
            f"{message} (CI=true: missing prerequisites fail the run)", pytrace=False
        )
    pytest.skip(message)


# ---------------------------------------------------------------------------- options & modes
def pytest_addoption(parser):
    group = parser.getgroup("workshop", "channels-chat-workshop")
    group.addoption(
        "--stage",
        action="append",
        type=int,
        default=[],
        help="check only this stage (repeat for several); default: every stage",
    )
    group.addoption(
        "--project",
        default=None,
        help="grade this folder (the one holding manage.py) as the single --stage",
    )
    group.addoption(
        "--strict-score",
        action="store_true",
        help="count robustness behaviours in the score",
    )
    group.addoption(
        "--report-dir",
        default=None,
        help="write results.json (Gradescope format) and report.txt here",
    )
    group.addoption(
        "--behaviour",
        action="append",
        default=[],
        help="check only this course.toml behaviour (repeat for several)",
    )
    group.addoption(
        "--kind",
        choices=("core", "robustness"),
        default=None,
        help="check only core (tutorial) or only robustness behaviours",
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "behaviour(id): the course.toml behaviour this test checks"
    )
    config.addinivalue_line(
        "markers", "repository: checks this repository itself, not a stage's behaviour"
    )
    known = [stage.number for stage in COURSE.stages]
    stages = config.getoption("--stage") or known
    for number in stages:
        if number not in known:
            raise pytest.UsageError(
                f"There is no stage {number}; the stages are {known}."
            )
    project_dir = config.getoption("--project")
    project = None
    if project_dir is not None:
        if len(stages) != 1:
            raise pytest.UsageError(
                "--project needs exactly one --stage to grade it as."
            )
        try:
            project = find_project(project_dir)
        except ProjectError as error:
            raise pytest.UsageError(str(error)) from None
    for behaviour_id in config.getoption("--behaviour"):
        try:
            COURSE.behaviour(behaviour_id)
        except KeyError as error:
            raise pytest.UsageError(error.args[0]) from None
    config.workshop_stages = sorted(set(stages))
    config.workshop_project = project
    config.pluginmanager.register(
        BehaviourReport(
            COURSE,
            stages=config.workshop_stages,
            strict=config.getoption("--strict-score"),
            report_dir=config.getoption("--report-dir"),
            project=project,
        ),
        "workshop-report",
    )


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("behaviour")
    if marker is None or "stage" not in metafunc.fixturenames:
        return
    behaviour = COURSE.behaviour(marker.args[0])
    stages = [s for s in metafunc.config.workshop_stages if behaviour.checked_at(s)]
    # None marks "not checked at any selected stage"; such items are deselected below.
    metafunc.parametrize(
        "stage", stages or [None], ids=[f"stage{s}" for s in stages] or ["none"]
    )


def wanted(config, item) -> bool:
    """Whether an item survives --stage/--project (no repository checks), --behaviour, --kind."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("stage", 0) is None:
        return False  # its behaviour is not checked at any selected stage
    marker = item.get_closest_marker("behaviour")
    if marker is None:  # a repository check: only in a full run of this repository
        return not (
            config.workshop_project is not None
            or config.getoption("--stage")
            or config.getoption("--behaviour")
            or config.getoption("--kind")
        )
    behaviour = COURSE.behaviour(marker.args[0])
    only, kind = config.getoption("--behaviour"), config.getoption("--kind")
    return (not only or behaviour.id in only) and (
        kind is None or behaviour.kind == kind
    )


def pytest_collection_modifyitems(config, items):
    keep = [item for item in items if wanted(config, item)]
    if len(keep) < len(items):
        config.hook.pytest_deselected(
            items=[item for item in items if item not in keep]
        )
        items[:] = keep


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def server_pool(tmp_path_factory):
    pool = ServerPool(tmp_path_factory.mktemp("server-logs"))
    yield pool
    pool.stop_all()


def running_private_redis():
    """Start a PrivateRedis for a fixture to yield (a missing redis-server: fail or skip)."""
    try:
        redis = PrivateRedis()
    except RedisMissing as missing:
        missing_prerequisite(str(missing))
    with redis:
        yield redis


@pytest.fixture(scope="session")
def redis_server():
    """The suite's private Redis (a real redis-server on a free port)."""
    yield from running_private_redis()


@pytest.fixture(scope="session")
def stages_under_test(request, tmp_path_factory, server_pool):
    """Stage number -> StageUnderTest, each made (copied, probed, served) when first needed."""
    config = request.config

    def redis_url(db: int) -> str:
        return request.getfixturevalue("redis_server").url(db)

    cache = {}

    def get(number: int) -> StageUnderTest:
        if number not in cache:
            source = config.workshop_project or find_project(COURSE.stage(number).path)
            cache[number] = StageUnderTest(
                number,
                source,
                workdir=tmp_path_factory.mktemp(f"stage{number}"),
                pool=server_pool,
                redis_url=redis_url,
            )
        return cache[number]

    return get


@pytest.fixture
def behaviour(request):
    marker = request.node.get_closest_marker("behaviour")
    assert marker is not None, "this fixture is for tests marked @pytest.mark.behaviour"
    return COURSE.behaviour(marker.args[0])


@pytest.fixture
def expect(behaviour, stage):
    """What `stage` should do for the test's behaviour: "yes", "404", "refused", ..."""
    return behaviour.expected_at(stage)


@pytest.fixture
def stage_project(stages_under_test, stage) -> StageUnderTest:
    return stages_under_test(stage)


@pytest.fixture
def server(stage_project):
    """The stage's daphne server (one per stage for the whole session)."""
    return stage_project.server


@pytest.fixture
def own_redis():
    """A private Redis for one test, which may stop and restart it."""
    yield from running_private_redis()


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module; tests open the windows they need."""
    try:
        driver = start_browser()
    except NoBrowser as missing:
        missing_prerequisite(str(missing))
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def screenshot_dir(request, tmp_path_factory) -> Path:
    """Where the browser tests save screenshots: the docs' image folder for this repository's
    stages; the report folder (or a temporary one) when grading a student's project."""
    if request.config.workshop_project is None:
        return REPO / "docs" / "images" / "screenshots"
    report_dir = request.config.getoption("--report-dir")
    if report_dir:
        return Path(report_dir).resolve() / "screenshots"
    return tmp_path_factory.mktemp("screenshots")
