"""Read the course manifest (shared_tests/course.toml): the stages and the behaviours they show."""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "shared_tests" / "course.toml"
NOT_CHECKED = "-"


@dataclass(frozen=True)
class Stage:
    number: int
    folder: str
    title: str
    docs: str
    open: str  # the page `make stepN` suggests opening
    redis: bool  # whether the stage needs a Redis server
    # The files this stage's lesson adds or edits, in the order the tutorial writes them.
    changes: tuple[str, ...]
    # What a student types before writing them ({pins}: the chat's pins); tools/build.py.
    commands: tuple[str, ...] = ()
    # Whether its server needs the project's migrations applied first (it keeps data).
    migrate: bool = False
    # Whether it is served as deployed: daphne workers behind nginx (tools/deployment/).
    deploy: bool = False

    @property
    def path(self) -> Path:
        return REPO / self.folder


@dataclass(frozen=True)
class Behaviour:
    id: str
    title: str
    kind: str  # "core" or "robustness"
    points: int
    expect: tuple[str, ...]  # one word per stage, stage 1 first
    hint: str
    docs: str
    title_zh: str = ""  # the title in the Chinese docs' tables
    # A planted mistake (stage 6): the file its code is appended to (consumers, views,
    # settings or asgi); the code is shared_tests/mistakes/<id without "catches_">.py.
    plant: str = ""
    browser: bool = False  # checked in a real browser (Chromium)

    def expected_at(self, stage: int) -> str:
        return self.expect[stage - 1]

    def checked_at(self, stage: int) -> bool:
        return self.expected_at(stage) != NOT_CHECKED

    def counts(self, strict: bool) -> bool:
        """Whether this behaviour's points count towards the score."""
        return strict or self.kind == "core"


@dataclass(frozen=True)
class Course:
    stages: tuple[Stage, ...]
    behaviours: tuple[Behaviour, ...]

    def stage(self, number: int) -> Stage:
        for stage in self.stages:
            if stage.number == number:
                return stage
        known = ", ".join(str(s.number) for s in self.stages)
        raise KeyError(f"There is no stage {number}; the stages are {known}.")

    def settles_at(self, behaviour: Behaviour) -> int | None:
        """The first stage that checks `behaviour` in its final form (the last stage's), or
        None when no stage does: before it, a stage checks it another way or not at all."""
        final = behaviour.expected_at(self.stages[-1].number)
        return next(
            (
                s.number
                for s in self.stages
                if behaviour.checked_at(s.number)
                and behaviour.expected_at(s.number) == final
            ),
            None,
        )

    def behaviour(self, behaviour_id: str) -> Behaviour:
        for behaviour in self.behaviours:
            if behaviour.id == behaviour_id:
                return behaviour
        raise KeyError(f"course.toml has no behaviour {behaviour_id!r}")


def behaviour_argument(value: str) -> str:
    """An argparse type: `value` if course.toml has that behaviour, else a one-line error."""
    if not any(behaviour.id == value for behaviour in load_course().behaviours):
        raise argparse.ArgumentTypeError(
            f"course.toml has no behaviour {value!r} (see the ids in shared_tests/course.toml)"
        )
    return value


@cache
def load_course(path: Path = MANIFEST) -> Course:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    stages = tuple(
        Stage(
            **{
                **stage,
                "changes": tuple(stage["changes"]),
                "commands": tuple(stage.get("commands", ())),
            }
        )
        for stage in data["stages"]
    )
    behaviours = tuple(
        Behaviour(**{**entry, "expect": tuple(entry["expect"])})
        for entry in data["behaviours"]
    )
    for behaviour in behaviours:
        if len(behaviour.expect) != len(stages):
            raise ValueError(
                f"{path.name}: behaviour {behaviour.id!r} lists "
                f"{len(behaviour.expect)} expectations for {len(stages)} stages"
            )
        if behaviour.plant not in ("", "consumers", "views", "settings", "asgi"):
            raise ValueError(
                f"{path.name}: {behaviour.id!r} plants into {behaviour.plant!r}"
            )
        if behaviour.kind not in ("core", "robustness"):
            raise ValueError(
                f"{path.name}: {behaviour.id!r} has kind {behaviour.kind!r}"
            )
    return Course(stages, behaviours)
