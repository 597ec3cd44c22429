"""One suite, many stages: every test marked @behaviour("<id>") runs once per stage that
course.toml checks it at, against that stage's folder, or against a student's project
(`--project DIR --stage N`, which is what `make grade` runs)."""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from pathlib import Path

import pytest

from shared_tests.chat_client import room_name
from shared_tests.crowd import IdleCrowds
from shared_tests.report import BehaviourReport
from shared_tests.servers import ServerPool
from shared_tests.stage_under_test import StageUnderTest
from tools.course import load_course
from tools.grading.project import ProjectError, find_project, load_failure
from tools.grading.report import Report, selected_behaviours
from tools.grading.sandbox import LIMITS, SandboxUnavailable, make_sandbox

COURSE = load_course()
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
GRADING = False  # set by pytest_configure: a student's project is graded


def missing_prerequisite(message: str) -> None:
    """A missing Redis or browser: a failure in CI and when grading (a student must never
    lose points to the grader's machine without it saying so), a skip (never a pass) when
    running the workshop's own stages on a laptop."""
    if IN_CI or GRADING:
        why = "CI=true" if IN_CI else "grading"
        pytest.fail(f"{message} ({why}: missing prerequisites fail)", pytrace=False)
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
        "--stop-at-unreached-stage",
        action="store_true",
        help="(make check) run the behaviours in the order of the stage that settles them, "
        "and skip a later stage's once a behaviour that counts has failed",
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
    group.addoption(
        "--load-time-limit",
        type=float,
        default=LIMITS.load_seconds,
        help="seconds a project may take to load (settings and ASGI application)",
    )
    group.addoption(
        "--tests-time-limit",
        type=float,
        default=LIMITS.tests_seconds,
        help="(stage 6) seconds one run of the project's own tests may take",
    )
    group.addoption(
        "--source-label",
        default=None,
        help="how the report names the graded project (its original folder)",
    )
    group.addoption(
        "--sandbox",
        choices=("auto", "bwrap", "user", "none"),
        default="auto",
        help="run project processes in bubblewrap (auto: when it can run here; CI=true "
        "and --project need it), or as a user of their own without namespaces (user)",
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "behaviour(id): the course.toml behaviour this test checks"
    )
    config.addinivalue_line(
        "markers", "repository: checks this repository itself, not a stage's behaviour"
    )
    config.pluginmanager.register(BrokenPages(), "workshop-broken-pages")

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
    global GRADING
    GRADING = project is not None
    config.workshop_stages = sorted(set(stages))
    config.workshop_project = project
    config.workshop_sandbox = sandbox_for(config)
    report = Report(
        COURSE,
        stages=config.workshop_stages,
        strict=config.getoption("--strict-score"),
        source=(config.getoption("--source-label") or str(project.root))
        if project
        else "",
    )
    if project is not None:
        report.notes.append(config.workshop_sandbox.describe())
    config.workshop_report = report
    config.workshop_probe_facts = None
    config.workshop_selected = set()
    config.pluginmanager.register(
        BehaviourReport(report, config.getoption("--report-dir")), "workshop-report"
    )


def sandbox_for(config):
    """bwrap where it can run; required in CI and for a student's project (the grader says
    UNSANDBOXED=1 with --sandbox none)."""
    choice = config.getoption("--sandbox")
    if choice == "auto" and (IN_CI or config.getoption("--project")):
        choice = "bwrap"
    limits = dataclasses.replace(
        LIMITS,
        load_seconds=config.getoption("--load-time-limit"),
        tests_seconds=config.getoption("--tests-time-limit"),
    )
    try:
        return make_sandbox(choice, limits)
    except SandboxUnavailable as problem:
        raise pytest.UsageError(f"Cannot sandbox the projects: {problem}.") from None


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


IDLE_BEHAVIOURS = ("idle_sockets", "idle_through_proxy")


def behaviour_key(item) -> tuple[str, int] | None:
    """(behaviour id, stage) of a behaviour test; None for a repository check."""
    marker = item.get_closest_marker("behaviour")
    callspec = getattr(item, "callspec", None)
    if marker is None or callspec is None or not callspec.params.get("stage"):
        return None
    return marker.args[0], callspec.params["stage"]


# ---------------------------------------------------------------------------- workers
# Modules whose tests share one costly module fixture (a graded class, a benchmark run).
SHARED_FIXTURE_MODULES = (
    "test_bench.py",
    "test_class_grading.py",
    "test_autograder.py",
)
# Modules whose shared fixture is made once per stage: stage -> its own unit (a test with no
# stage uses the one named here).
PER_STAGE_FIXTURE_MODULES = {
    "test_student_tests.py": 6,  # the runs of a stage's own tests (not its server)
}
STAGE_IN_NODEID = re.compile(r"\[stage(\d+)[-\]]")


def work_unit(nodeid: str) -> str:
    """What pytest-xdist sends to one worker as a whole: all the tests of a stage (they
    share its server and its idle clients), a module with a shared fixture (per stage, when
    it is made per stage), or one test."""
    module = nodeid.split("::", 1)[0]
    stage = STAGE_IN_NODEID.search(nodeid)
    if module.endswith(SHARED_FIXTURE_MODULES):
        return module
    for name, default in PER_STAGE_FIXTURE_MODULES.items():
        if module.endswith(name):
            return f"{module}-stage{stage.group(1) if stage else default}"
    if stage:
        return f"stage{stage.group(1)}"
    return nodeid


# The work units that take longest, longest first: they start at once and the short ones
# fill the workers around them (a class graded, a benchmark, `make check`, two stages).
LONGEST_FIRST = (
    "test_class_grading.py",
    "test_bench.py",
    "test_autograder.py",
    "test_make_check",
    "idle-timeout-shorter-than-the-ping",  # a grade that waits 65 s for an idle socket
    "stage9",
    "stage8",
    "stage7",
    "stage6",
    "stage5",
    "stage4",
    "test_student_tests.py",
    "test_hostile_projects.py",
    "test_grader.py",
)


def start_order(item) -> int:
    unit = work_unit(item.nodeid)
    for rank, name in enumerate(LONGEST_FIRST):
        if name in unit:
            return rank
    return len(LONGEST_FIRST)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # keep the order start_order() gave
    return WorkUnitScheduling(config, log)


def settling_stage(item) -> int:
    """The stage that settles an item's behaviour (make check's order); 0 for the others."""
    key = behaviour_key(item)
    return (COURSE.settles_at(COURSE.behaviour(key[0])) or 0) if key else 0


def pytest_collection_modifyitems(config, items):
    keep = [item for item in items if wanted(config, item)]
    if config.getoption("--stop-at-unreached-stage"):
        keep.sort(key=settling_stage)
    # The idle-socket tests last: their wait then overlaps everything else (idle_crowds).
    keep.sort(key=lambda item: (behaviour_key(item) or ("",))[0] in IDLE_BEHAVIOURS)
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: longest units first
        keep.sort(key=start_order)
    config.workshop_selected = {behaviour_key(item) for item in keep} - {None}
    if config.workshop_project is not None and keep:
        problem = load_problem(config)
        if problem:  # nothing to run: every behaviour fails, saying why
            report, stage = config.workshop_report, config.workshop_stages[0]
            report.cannot_grade = problem
            report.fail_all(
                selected_behaviours(
                    COURSE,
                    stage,
                    config.getoption("--kind"),
                    config.getoption("--behaviour"),
                ),
                stage,
                "not checked: the project does not load",
            )
            keep = []
    if len(keep) < len(items):
        kept = set(keep)
        config.hook.pytest_deselected(
            items=[item for item in items if item not in kept]
        )
    items[:] = keep


def load_problem(config) -> str | None:
    """Load the graded project once, in the sandbox, before any test: why it cannot load, or
    None (its facts are then kept for the tests)."""
    sandbox = config.workshop_sandbox
    with tempfile.TemporaryDirectory(prefix="workshop-probe-") as scratch:
        copy = config.workshop_project.copy_to(Path(scratch) / "project")
        sandbox.prepare(copy.root)
        facts = copy.probe(sandbox)
    config.workshop_probe_facts = facts
    return load_failure(facts)


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def server_pool(request, tmp_path_factory):
    pool = ServerPool(
        tmp_path_factory.mktemp("server-logs"), request.config.workshop_sandbox
    )
    yield pool
    pool.stop_all()
    request.config.workshop_sandbox.end()
    request.config.workshop_report.notes.extend(pool.deaths)


def running_private_redis():
    """Start a PrivateRedis for a fixture to yield (a missing redis-server: fail or skip)."""
    from tools.redis_server import PrivateRedis, RedisMissing  # only runs that need it

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
def idle_crowds(request):
    """Ten idle clients per stage whose idle-sockets test this run has, opened by
    stages_under_test when the stage's server starts."""
    crowds = IdleCrowds(size=10)
    yield crowds
    crowds.close()


@pytest.fixture(scope="session")
def stages_under_test(request, tmp_path_factory, server_pool, idle_crowds):
    """Stage number -> StageUnderTest, each made (copied, probed, served) when first needed."""
    config = request.config

    def started(number: int, server) -> None:
        if ("idle_sockets", number) in config.workshop_selected:
            try:
                idle_crowds.open(number, server, room_name("idle"))
            except Exception:  # noqa: BLE001 - the idle test says it could not connect
                pass

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
                facts=config.workshop_probe_facts,
                on_start=started,
                migrate=COURSE.stage(number).migrate,
            )
        return cache[number]

    return get


@pytest.fixture(scope="session")
def deployments(request, stages_under_test):
    """Stage number -> its Deployment (nginx and two workers, stage 9), started when first
    needed, with one idle socket opened through it for the idle test."""
    from shared_tests.deployment import Deployment
    from tools.deployment.nginx import NginxMissing, nginx_program

    cache = {}

    def get(number: int):
        if number not in cache:
            try:
                nginx_program()
            except NginxMissing as missing:
                missing_prerequisite(str(missing))
            deployment = Deployment(stages_under_test(number))
            cache[number] = deployment
            try:
                deployment.start()
            except AssertionError as failure:
                deployment.failure = failure
            else:
                if ("idle_through_proxy", number) in request.config.workshop_selected:
                    deployment.open_idle_socket()
        if cache[number].failure is not None:
            raise cache[number].failure
        return cache[number]

    yield get
    for deployment in cache.values():
        deployment.stop()


@pytest.fixture
def deployment(deployments, stage):
    """The stage as deployed; a dead nginx or worker fails the test at once, saying why."""
    deployment = deployments(stage)
    death = deployment.death()
    if death:
        pytest.fail(death, pytrace=False)
    return deployment


# ------------------------------------------------------------------- make check's early stop
def pytest_runtest_setup(item):
    """Once a stage is not reached, a later stage's behaviours are not worth waiting for."""
    unreached = getattr(item.config, "workshop_unreached", None)
    if unreached is not None and settling_stage(item) > unreached:
        pytest.skip(f"not checked: stage {unreached} is not reached yet")


def pytest_runtest_logreport(report):
    """A failed behaviour that counts marks its stage (and so every later one) unreached."""
    config = getattr(report, "workshop_config", None)
    key = getattr(report, "workshop_key", None)
    if not report.failed or config is None or key is None:
        return
    behaviour = COURSE.behaviour(key[0])
    if behaviour.counts(config.getoption("--strict-score")):
        stage = COURSE.settles_at(behaviour) or 0
        config.workshop_unreached = min(
            getattr(config, "workshop_unreached", stage), stage
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if item.config.getoption("--stop-at-unreached-stage"):
        outcome.get_result().workshop_config = item.config


@pytest.fixture(autouse=True)
def server_log_marks(request):
    """Where the servers' logs stand when a behaviour test starts, so that its failure can
    quote the exception a server logged meanwhile (the report's "cause")."""
    if request.node.get_closest_marker("behaviour") is None:
        yield
        return
    pool = request.getfixturevalue("server_pool")
    marks = pool.log_marks()
    request.node.workshop_cause = lambda: pool.cause_since(marks)
    yield


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
    """The stage's daphne server (one per stage for the whole session). A server that died
    fails the test at once, saying why, instead of after every client's timeout."""
    server = stage_project.server
    death = server.death()
    if death:
        pytest.fail(death, pytrace=False)
    return server


@pytest.fixture
def own_redis():
    """A private Redis for one test, which may stop and restart it."""
    yield from running_private_redis()


@pytest.fixture(scope="session")
def browser_keeper(request):
    """One headless Chromium for the session (starting one costs seconds of CPU)."""
    from shared_tests.browser import BrowserKeeper  # only runs that need it

    keeper = BrowserKeeper(request.config.workshop_sandbox)
    yield keeper
    keeper.stop()


@pytest.fixture
def browser(browser_keeper):
    """The session's Chromium (a new one if a page froze or crashed the last); each test
    opens the windows it needs and closes them."""
    from shared_tests.browser import NoBrowser

    try:
        return browser_keeper.get()
    except NoBrowser as missing:
        missing_prerequisite(str(missing))


class BrokenPages:
    """A page that froze or crashed the browser's tab fails its test (in its setup, call or
    teardown) with a sentence that says so, and the browser is started again for the next
    test."""

    @staticmethod
    def _fail_clearly(item):
        try:
            return (yield)
        except Exception as error:
            keeper = item.funcargs.get("browser_keeper")
            if keeper is None:
                raise
            from shared_tests.browser import page_failure

            sentence = page_failure(error)
            if sentence is None:
                raise
            keeper.broken = True
            raise AssertionError(sentence) from None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item):
        return (yield from self._fail_clearly(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        return (yield from self._fail_clearly(item))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item):
        return (yield from self._fail_clearly(item))


@pytest.fixture(scope="session")
def screenshot_path(request, tmp_path_factory):
    """name -> where the browser tests save that screenshot: repository_screenshot() for
    this repository's stages; the report folder (or a temporary one) when grading a
    student's project."""
    if request.config.workshop_project is None:
        from shared_tests.browser import repository_screenshot

        return repository_screenshot
    report_dir = request.config.getoption("--report-dir")
    if report_dir:
        folder = Path(report_dir).resolve() / "screenshots"
    else:
        folder = tmp_path_factory.mktemp("screenshots")
    return lambda name: folder / name
