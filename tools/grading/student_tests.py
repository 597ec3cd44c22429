"""Stage 6 grades a student's own tests: they run (in the sandbox, the way the student runs them)
on the project as submitted, then on copies of it with one planted mistake each. A mistake is
caught when the tests fail on its copy: the share caught is the tests' mutation score.

The planted code (shared_tests/mistakes/) is appended to one file of the copy (`plant` in
course.toml) and replaces a method of the tutorial's ChatConsumer, a view or a setting. Before
any mistake counts, the tests must pass on a copy changed the same way but behaving the same
(shared_tests/mistakes/harmless/): tests that fail there react to the planting, not to a bug.

So that tests cannot tell a planted copy from the others except by what it does, every copy
gets the harmless code (a mistake's code comes after it), random names for what is planted
and for its folder, the same command line, a fresh Redis, and its turn in a random order.
"""

from __future__ import annotations

import queue
import re
import secrets
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from tools.course import REPO, Behaviour
from tools.grading.copy_files import (
    UnsafePath,
    is_file,
    python_files,
    read_text,
    write_text,
)
from tools.grading.project import OVERLAY, Project
from tools.grading.sandbox import Sandbox, claim_sandbox_user

MISTAKES = REPO / "shared_tests" / "mistakes"
HARMLESS = MISTAKES / "harmless"
TARGETS = ("consumers", "views", "settings", "asgi")
RAN = re.compile(r"^Ran (\d+) tests? in", re.MULTILINE)
FAILED = re.compile(r"^(?:FAIL|ERROR): (\w+)", re.MULTILINE)
PLANTED_NAME = "_planted"  # the prefix of every name planted code defines
COMMENT = re.compile(r"\s*#.*$")  # planted code has no "#" inside its strings
# Copies tested at once: most of a run is waiting (for a reply that never comes, for the
# browser), so two runs overlap well on two cores.
PARALLEL_RUNS = 2
# A planted copy may take this many times as long as the project as submitted (at least
# MIN_PLANTED_SECONDS, at most the sandbox's tests_seconds): a mistake may make tests wait.
PLANTED_TIME_FACTOR = 3
MIN_PLANTED_SECONDS = 60
# What a grader should read before trusting the score: tests that look at the code itself.
SOURCE_READING = re.compile(
    r"\b(inspect|getsource|__code__|co_code|hashlib|read_text|read_bytes|(?<![.\w])open\(|"
    r"__file__|sys\.argv|getcwd|_planted)"
)
# The same in the rest of the project (settings.py or manage.py could tell a planted copy
# and exit), without what every settings.py does (BASE_DIR from __file__).
CODE_READING = re.compile(
    r"\b(inspect|getsource|__code__|co_code|read_text|read_bytes|(?<![.\w])open\(|"
    r"glob|os\.walk|listdir|scandir|_planted)"
)


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
    # A planted copy nothing caught is run twice: its second run stands for both.
    runs: int = 1

    @property
    def passed(self) -> bool:
        """At least one test ran, and none failed."""
        return self.returncode == 0 and self.tests_ran > 0

    def describe(self) -> str:
        """One line: what the run showed."""
        if self.returncode is None:
            return f"the tests were stopped after {self.seconds:.0f} s"
        if self.tests_ran == 0:
            return "no test ran (Django found none in the chat app)"
        if self.returncode == 0:
            runs = f", in each of {self.runs} runs" if self.runs > 1 else ""
            return f"{self.tests_ran} tests ran and passed{runs}"
        failed = ", ".join(self.failed_tests) or "see the output"
        return f"{self.tests_ran} tests ran; failed: {failed}"

    def last_lines(self, count: int = 12) -> str:
        """The end of its output, where Django reports the failure."""
        return "\n".join(self.output.strip().splitlines()[-count:])


def chromedriver_env() -> dict[str, str]:
    """Selenium uses SE_CHROMEDRIVER instead of Selenium Manager, which would download a
    Chrome: `webdriver.Chrome()` then starts Debian's chromedriver and its Chromium."""
    driver = shutil.which("chromedriver")
    return {"SE_CHROMEDRIVER": driver} if driver else {}


def run_tests(
    project: Project, sandbox: Sandbox, redis_url: str | None, timeout: float
) -> TestRun:
    """Run the project's tests in the sandbox, on a virtual display, stopping at the first
    failure (every run the same way: the command line tells no copy from another)."""
    argv = [sys.executable, str(OVERLAY / "workshop_run_tests.py"), "--failfast"]
    started = time.monotonic()
    completed = project.run(
        argv,
        sandbox,
        timeout=timeout,
        redis_url=redis_url,
        extra_env=chromedriver_env(),
        starts_chromium=True,
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
    """The file of `project` (relative to it) that code for `target` is appended to."""
    modules = {
        "consumers": "chat.consumers",
        "views": "chat.views",
        "settings": project.settings_module,
        "asgi": asgi_target.partition(":")[0],
    }
    relative = Path(*modules[target].split("."))
    for candidate in (relative.with_suffix(".py"), relative / "__init__.py"):
        if is_file(project.root, candidate):  # not through a link: nothing outside
            return candidate
    raise PlantingError(
        f"there is no {relative}.py to plant mistakes into (the tutorial's layout has it)"
    )


def check_plantable(project: Project, facts: dict, asgi_target: str) -> None:
    """Raise PlantingError unless the mistakes can go into this project: its four target
    files exist, and the code replaces methods of the tutorial's async ChatConsumer and its
    room view."""
    files = {t: target_file(project, asgi_target, t) for t in TARGETS}
    if "class ChatConsumer" not in read_text(project.root, files["consumers"]):
        raise PlantingError(
            "the mistakes are planted into chat/consumers.py's ChatConsumer, as the "
            "tutorial names it, and this project has none"
        )
    if "def room(" not in read_text(project.root, files["views"]):
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


def planted_text(code: str, prefix: str) -> str:
    """Code as it goes into a copy: without its comments (they are for readers of this
    repository), and with a random prefix for the names it defines."""
    lines = [COMMENT.sub("", line) for line in code.splitlines()]
    code = "\n".join(line for line in lines if line.strip())
    return code.replace(PLANTED_NAME, prefix) + "\n"


def plant(project: Project, asgi_target: str, plants: dict[str, list[str]]) -> None:
    """Append each target's code (harmless first, then a mistake) to its file. Each block
    gets a prefix of its own: a mistake's names must not rebind the harmless code's."""
    for target, codes in plants.items():
        blocks = [planted_text(code, f"_{secrets.token_hex(4)}") for code in codes]
        relative = target_file(project, asgi_target, target)
        write_text(project.root, relative, "".join(f"\n\n{b}" for b in blocks), True)


def harmless_code() -> dict[str, str]:
    return {t: (HARMLESS / f"{t}.py").read_text("utf-8") for t in TARGETS}


def mistake_code(behaviour: Behaviour) -> str:
    """The code planted for a `catches_*` behaviour."""
    name = behaviour.id.removeprefix("catches_")
    return (MISTAKES / f"{name}.py").read_text(encoding="utf-8")


def source_reading_lines(project: Project) -> list[str]:
    """Lines of the project that read code or files, or look at how they were run:
    legitimate tests and code rarely need to, and a project that does could recognise a
    planted copy (its tests, or its settings.py or manage.py, failing only there)."""
    found = []
    for path in python_files(project.root, "."):
        is_test = path.parts[:1] == ("chat",) and (
            path.name.startswith("tests") or path.parts[1:2] == ("tests",)
        )
        if "migrations" in path.parts:
            continue
        try:
            text = read_text(project.root, path)
        except UnsafePath as unsafe:  # a link or a huge file: say so, read nothing
            found.append(f"{path}: not read ({unsafe})")
            continue
        pattern = SOURCE_READING if is_test else CODE_READING
        for number, line in enumerate(text.splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path}:{number}: {line.strip()[:100]}")
    return found


class MutationRuns:
    """The runs of one project's tests: on the project as submitted, on the harmless copy
    and on each planted copy, all made at once when first asked for, once."""

    def __init__(
        self,
        source: Project,
        facts: dict,
        asgi_target: str,
        sandbox: Sandbox,
        uses_redis: bool,
        workdir: Path,
        behaviours: list[Behaviour] = (),
    ):
        self.source = source
        self.behaviours = list(behaviours)  # the planted mistakes to run, all at once
        self.facts = facts
        self.asgi_target = asgi_target
        self.sandbox = sandbox
        self.uses_redis = uses_redis  # each run then gets a fresh Redis of its own
        self.workdir = workdir
        self._planted: dict[str, TestRun] = {}
        self._harmless: TestRun | None = None
        # What the same code did differently on a second run (for the report).
        self.changed_on_a_second_run: list[str] = []

    # -- one run --------------------------------------------------------------------------
    def _sandbox_for_a_run(self) -> Sandbox:
        """A user of its own for each parallel run where the grader can (root), so that
        ending a run's leftovers ends nothing else (the stage's server, the other run)."""
        if self.sandbox.uid is None:
            return self.sandbox
        return replace(self.sandbox, uid=claim_sandbox_user())

    def _run_on_copy(
        self, sandbox: Sandbox, plants: dict[str, list[str]], timeout: float
    ) -> TestRun:
        copy = self.source.copy_to(self.workdir / secrets.token_hex(6))
        plant(copy, self.asgi_target, plants)
        sandbox.prepare(copy.root)
        with ExitStack() as stack:
            redis_url = None
            if self.uses_redis:  # a fresh Redis: no run can leave anything for the next
                from tools.redis_server import PrivateRedis

                redis_url = stack.enter_context(PrivateRedis()).url(0)
            try:
                return run_tests(copy, sandbox, redis_url, timeout)
            finally:
                sandbox.end()

    # -- the runs -------------------------------------------------------------------------
    @cached_property
    def own(self) -> TestRun:
        """The tests on the project as submitted (a second chance if they fail: flaky
        tests, such as the tutorial's 2 s waits on a loaded machine)."""
        sandbox = self._sandbox_for_a_run()
        limit = self.sandbox.limits.tests_seconds
        run = self._run_on_copy(sandbox, {}, limit)
        if run.passed:
            return run
        second = self._run_on_copy(sandbox, {}, limit)
        if second.passed:
            self.changed_on_a_second_run.append("failed on your project, then passed")
        return second

    @cached_property
    def untrustworthy(self) -> str | None:
        """Why failures on planted copies would prove nothing (None: they count)."""
        if not self.own.passed:
            return f"your tests must pass on your own project first ({self.own.describe()})"
        try:
            check_plantable(self.source, self.facts, self.asgi_target)
        except (PlantingError, UnsafePath) as error:
            return f"no mistake could be planted: {error}"
        self.run_planted(self.behaviours)
        if not self._harmless.passed:
            return (
                "your tests fail on a copy of your project that behaves the same and only "
                f"looks changed ({self._harmless.describe()}), so their failures on "
                "planted mistakes prove nothing: test what the chat does, not its files.\n"
                + self._harmless.last_lines()
            )
        return None

    def flaky_note(self) -> str | None:
        """For the report: where the same code gave the tests two different results (a test
        that races the page, such as the tutorial's), else None."""
        if not self.changed_on_a_second_run:
            return None
        return (
            "Your tests gave two results on the same code (the second one counted):\n  "
            + "\n  ".join(self.changed_on_a_second_run)
            + "\n  A test that sends before the page's socket is open, or waits a fixed "
            "time, races the page: wait for the page's state instead "
            "(docs/en/step6-automated-tests.md#waiting)."
        )

    def planted(self, behaviour: Behaviour) -> TestRun:
        """The tests on a copy with `behaviour`'s mistake planted."""
        if behaviour.id not in self._planted:
            self.run_planted([behaviour])
        return self._planted[behaviour.id]

    def planted_time_limit(self) -> float:
        limit = max(MIN_PLANTED_SECONDS, PLANTED_TIME_FACTOR * self.own.seconds)
        return min(limit, self.sandbox.limits.tests_seconds)

    def run_planted(self, behaviours: list[Behaviour]) -> None:
        """Run the planted copies not run yet, and the harmless copy, PARALLEL_RUNS at a
        time and in a random order (so that a test counting its runs cannot tell which is
        harmless). Then a second round, in a random order too: the harmless copy again if
        it failed, and each planted copy nothing caught (a test that races the page, such
        as the tutorial's, misses a mistake now and then, and the score must not hang on
        that)."""
        todo = [b for b in behaviours if b.id not in self._planted]
        if self._harmless is None:
            todo.append(None)  # None: the harmless copy
        first = self._run_round(todo)
        again = [b for b, run in first if self._worth_a_second_run(b, run)]
        second = dict(self._run_round(again))  # Behaviour is frozen: a key
        for behaviour, run in first:
            if behaviour in second:
                run = self._second_result(behaviour, second[behaviour])
            if behaviour is None:
                self._harmless = run
            else:
                self._planted[behaviour.id] = run

    @staticmethod
    def _worth_a_second_run(behaviour: Behaviour | None, run: TestRun) -> bool:
        """The harmless copy when it failed; a planted copy when nothing caught it."""
        return not run.passed if behaviour is None else run.returncode == 0

    def _second_result(self, behaviour: Behaviour | None, run: TestRun) -> TestRun:
        """A copy's second run, the one that counts; noted when it changed the result."""
        if behaviour is None:
            if run.passed:
                self.changed_on_a_second_run.append(
                    "failed on the harmless copy, then passed"
                )
            return run
        if run.returncode != 0:
            self.changed_on_a_second_run.append(
                f"let a planted mistake through, then caught it: {behaviour.title}"
            )
            return run
        return replace(run, runs=2)  # nothing caught it either time

    def _run_round(
        self, todo: list[Behaviour | None]
    ) -> list[tuple[Behaviour | None, TestRun]]:
        """One run of each copy in `todo` (None: the harmless one), in a random order,
        PARALLEL_RUNS at a time."""
        if not todo:
            return []
        todo = list(todo)
        secrets.SystemRandom().shuffle(todo)
        harmless = harmless_code()
        slots = queue.SimpleQueue()
        for _ in range(PARALLEL_RUNS):
            slots.put(self._sandbox_for_a_run())
        limit = self.planted_time_limit()

        def run(behaviour: Behaviour | None) -> TestRun:
            plants = {target: [code] for target, code in harmless.items()}
            if behaviour is not None:
                plants[behaviour.plant].append(mistake_code(behaviour))
            sandbox = slots.get()
            try:
                return self._run_on_copy(sandbox, plants, limit)
            finally:
                slots.put(sandbox)

        with ThreadPoolExecutor(PARALLEL_RUNS) as pool:
            return list(zip(todo, pool.map(run, todo), strict=True))


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
            run = run_tests(copy, sandbox, redis.url(0), sandbox.limits.tests_seconds)
        finally:
            sandbox.end()
    print(run.output.rstrip())
    print(f"\n{run.describe()} ({run.seconds:.0f} s)")
    return 0 if run.passed else 1


if __name__ == "__main__":
    sys.exit(main())
