"""Stage 6 grades a student's own tests: they run (in the sandbox, the way the student runs them)
on the project as submitted, then on copies of it with one planted mistake each. A mistake is
caught when the tests fail on its copy: the share caught is the tests' mutation score.

The planted code (shared_tests/mistakes/) is appended to one file of the copy (`plant` in
course.toml) and replaces a method of the tutorial's ChatConsumer, a view or a setting. Before
any mistake counts, the tests must pass on a copy changed the same way but behaving the same
(shared_tests/mistakes/harmless/): tests that fail there react to the planting, not to a bug.
"""

from __future__ import annotations

import queue
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from tools.course import REPO, Behaviour
from tools.grading.project import OVERLAY, Project
from tools.grading.sandbox import Sandbox

MISTAKES = REPO / "shared_tests" / "mistakes"
HARMLESS = MISTAKES / "harmless"
TARGETS = ("consumers", "views", "settings", "asgi")
RAN = re.compile(r"^Ran (\d+) tests? in", re.MULTILINE)
FAILED = re.compile(r"^(?:FAIL|ERROR): (\w+)", re.MULTILINE)
# Planted copies tested at once, and the first Redis database they use (the stages'
# servers use databases 0-9).
PARALLEL_RUNS = 2
FIRST_PLANTED_DATABASE = 10


class PlantingError(Exception):
    """The project's layout leaves no place to plant a mistake; the message says why."""


@dataclass(frozen=True)
class TestRun:
    """One run of `manage.py test chat` in a project copy."""

    returncode: int | None  # None: stopped at the time limit
    tests_ran: int
    failed_tests: tuple[str, ...]
    seconds: float
    output: str  # its last lines

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and self.tests_ran > 0

    def describe(self) -> str:
        """One line: what the run showed."""
        if self.returncode is None:
            return f"the tests were stopped after {self.seconds:.0f} s"
        if self.tests_ran == 0:
            return "no test ran (Django found none in the chat app)"
        if self.returncode == 0:
            return f"{self.tests_ran} tests ran and passed"
        failed = ", ".join(self.failed_tests) or "see the output"
        return f"{self.tests_ran} tests ran; failed: {failed}"

    def last_lines(self, count: int = 12) -> str:
        return "\n".join(self.output.strip().splitlines()[-count:])


def chromedriver_env() -> dict[str, str]:
    """Selenium uses SE_CHROMEDRIVER instead of Selenium Manager, which would download a
    Chrome: `webdriver.Chrome()` then starts Debian's chromedriver and its Chromium."""
    driver = shutil.which("chromedriver")
    return {"SE_CHROMEDRIVER": driver} if driver else {}


def run_tests(
    project: Project, sandbox: Sandbox, redis_url: str | None, failfast: bool = False
) -> TestRun:
    """Run the project's tests in the sandbox, on a virtual display."""
    argv = [sys.executable, str(OVERLAY / "workshop_run_tests.py")]
    if failfast:
        argv.append("--failfast")  # one failure is enough to catch a mistake
    started = time.monotonic()
    completed = project.run(
        argv,
        sandbox,
        timeout=sandbox.limits.tests_seconds,
        redis_url=redis_url,
        extra_env=chromedriver_env(),
    )
    output = completed.stdout + completed.stderr
    ran = RAN.findall(output)
    return TestRun(
        returncode=completed.returncode,
        tests_ran=int(ran[-1]) if ran else 0,
        failed_tests=tuple(dict.fromkeys(FAILED.findall(output))),
        seconds=time.monotonic() - started,
        output=output[-4000:],
    )


def target_file(project: Project, asgi_target: str, target: str) -> Path:
    """The file of `project` that code for `target` is appended to."""
    modules = {
        "consumers": "chat.consumers",
        "views": "chat.views",
        "settings": project.settings_module,
        "asgi": asgi_target.partition(":")[0],
    }
    relative = Path(*modules[target].split("."))
    for candidate in (relative.with_suffix(".py"), relative / "__init__.py"):
        if (project.root / candidate).is_file():
            return project.root / candidate
    raise PlantingError(
        f"there is no {relative}.py to plant mistakes into (the tutorial's layout has it)"
    )


def check_plantable(project: Project, facts: dict) -> None:
    """Raise PlantingError unless the mistakes can go into this project: they replace
    methods of the tutorial's async ChatConsumer in chat/consumers.py."""
    consumers = project.root / "chat" / "consumers.py"
    if not consumers.is_file() or "class ChatConsumer" not in consumers.read_text(
        encoding="utf-8", errors="replace"
    ):
        raise PlantingError(
            "the mistakes are planted into chat/consumers.py's ChatConsumer, as the "
            "tutorial names it, and this project has none"
        )
    views = project.root / "chat" / "views.py"
    if not views.is_file() or "def room(" not in views.read_text(
        encoding="utf-8", errors="replace"
    ):
        raise PlantingError(
            "a mistake is planted into chat/views.py's room view, as the tutorial names "
            "it, and this project has none"
        )
    sync = [
        name for name, kind in facts.get("consumers", {}).items() if kind != "async"
    ]
    if sync:
        raise PlantingError(
            f"the mistakes are planted into an async consumer (stage 5's lesson); "
            f"{', '.join(sync)} is not one"
        )


def plant(project: Project, asgi_target: str, target: str, code: str) -> None:
    path = target_file(project, asgi_target, target)
    with path.open("a", encoding="utf-8") as file:
        file.write("\n\n" + code)


def mistake_code(behaviour: Behaviour) -> str:
    return (MISTAKES / f"{behaviour.id.removeprefix('catches_')}.py").read_text(
        encoding="utf-8"
    )


class MutationRuns:
    """The runs of one project's tests, each made when first asked for, once."""

    def __init__(
        self,
        source: Project,
        facts: dict,
        asgi_target: str,
        sandbox: Sandbox,
        redis_url: str | None,
        workdir: Path,
    ):
        self.source = source
        self.facts = facts
        self.asgi_target = asgi_target
        self.sandbox = sandbox
        self.redis_url = redis_url
        self.workdir = workdir
        self._planted: dict[str, TestRun] = {}

    def _run_on_copy(
        self, name: str, plants: dict[str, str], failfast: bool, redis_url=None
    ) -> TestRun:
        # No sandbox.end() here: the sandbox's user also runs the stage's server; the
        # session ends them all (and bwrap's PID namespace ends with each run).
        copy = self.source.copy_to(self.workdir / name)
        for target, code in plants.items():
            plant(copy, self.asgi_target, target, code)
        self.sandbox.prepare(copy.root)
        return run_tests(copy, self.sandbox, redis_url or self.redis_url, failfast)

    @cached_property
    def own(self) -> TestRun:
        """The tests on the project as submitted."""
        return self._run_on_copy("own", {}, failfast=False)

    @cached_property
    def untrustworthy(self) -> str | None:
        """Why failures on planted copies would prove nothing (None: they count). The
        harmless copy is tested while the project as submitted is (its own database)."""
        try:
            check_plantable(self.source, self.facts)
            harmless = {t: (HARMLESS / f"{t}.py").read_text("utf-8") for t in TARGETS}
            problem = None
        except PlantingError as error:
            harmless, problem = None, f"no mistake could be planted: {error}"
        with ThreadPoolExecutor(2) as pool:
            own = pool.submit(lambda: self.own)
            if harmless is not None:
                url = with_database(self.redis_url, FIRST_PLANTED_DATABASE)
                run = pool.submit(self._run_on_copy, "harmless", harmless, False, url)
        if not own.result().passed:
            return f"your tests must pass on your own project first ({self.own.describe()})"
        if problem:
            return problem
        if not run.result().passed:
            return (
                "your tests fail on a copy of your project that behaves the same and only "
                f"looks changed ({run.result().describe()}), so their failures on planted "
                "mistakes prove nothing: test what the chat does, not its files.\n"
                + run.result().last_lines()
            )
        return None

    def planted(self, behaviour: Behaviour) -> TestRun:
        """The tests on a copy with `behaviour`'s mistake planted."""
        if behaviour.id not in self._planted:
            self.run_planted([behaviour])
        return self._planted[behaviour.id]

    def run_planted(self, behaviours: list[Behaviour]) -> None:
        """Run the tests on the planted copies not run yet, PARALLEL_RUNS at a time: most
        of a run is waiting (for a reply that never comes, for the browser), so runs
        overlap well. Each has a Redis database of its own: their rooms never meet."""
        todo = [b for b in behaviours if b.id not in self._planted]
        free_databases = queue.SimpleQueue()
        for index in range(PARALLEL_RUNS):
            free_databases.put(FIRST_PLANTED_DATABASE + index)

        def run(behaviour: Behaviour) -> TestRun:
            database = free_databases.get()
            try:
                plants = {behaviour.plant: mistake_code(behaviour)}
                url = with_database(self.redis_url, database)
                return self._run_on_copy(behaviour.id, plants, True, url)
            finally:
                free_databases.put(database)

        with ThreadPoolExecutor(PARALLEL_RUNS) as pool:
            for behaviour, result in zip(todo, pool.map(run, todo), strict=True):
                self._planted[behaviour.id] = result


def with_database(redis_url: str | None, database: int) -> str | None:
    """`redis_url` with another database number (None stays None: no Redis layer)."""
    if redis_url is None:
        return None
    return f"{redis_url.rsplit('/', 1)[0]}/{database}"


def main(argv=None) -> int:
    """`make step6-test`: a project's own tests, run the way the grader runs them."""
    import argparse
    import tempfile

    from tools.grading.project import ProjectError, find_project
    from tools.grading.sandbox import SandboxUnavailable, make_sandbox
    from tools.redis_server import PrivateRedis, RedisMissing

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--project", required=True, help="the folder with manage.py")
    parser.add_argument(
        "--unsandboxed", action="store_true", help="run as yourself (no bwrap)"
    )
    args = parser.parse_args(argv)
    try:
        project = find_project(args.project)
        sandbox = make_sandbox("none" if args.unsandboxed else "bwrap")
        redis = PrivateRedis()
    except (ProjectError, SandboxUnavailable, RedisMissing) as problem:
        print(f"Cannot run the tests of {args.project}: {problem}")
        return 2
    print(f"Running `manage.py test chat` in {project.root} ({sandbox.describe()})")
    with redis, tempfile.TemporaryDirectory(prefix="workshop-own-tests-") as scratch:
        copy = project.copy_to(Path(scratch) / project.root.name)
        sandbox.prepare(copy.root)
        try:
            run = run_tests(copy, sandbox, redis.url(0))
        finally:
            sandbox.end()
    print(run.output.rstrip())
    print(f"\n{run.describe()} ({run.seconds:.0f} s)")
    return 0 if run.passed else 1


if __name__ == "__main__":
    sys.exit(main())
