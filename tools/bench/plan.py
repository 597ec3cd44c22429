"""What `make bench` measures: the server variants and, in order, every run of every
scenario, for a full run (about 6 minutes on 2 cores, of which stage 9's 35 runs behind nginx
take about 80 s) and a quick one (about 1 minute, 5 s of it stage 9's).

Runs of different variants at the same load follow each other (and take turns going first)
so that the machine's noise falls on all of them alike and their ratios stay fair.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tools.bench.report import DEPLOYED, GOAL  # stage 9 with 1, 2 and 3 workers
from tools.bench.servers import Variant

SLOW_SECONDS = 0.05  # the slow handler's work per message
SCENARIOS = ("ladder", "slow-handler", "before-after", "burst", "profile")


def _variant(
    name: str, label: str, stage: int | None, bench_asgi=False, **env
) -> Variant:
    return Variant(name, label, stage, tuple(env.items()), bench_asgi)


def _deployed(workers: int) -> Variant:
    """Stage 9 as `make step9 WORKERS=n` serves it: production settings (DEBUG off, its own
    channel layer), n daphne workers behind nginx, the clients on wss:// through nginx."""
    label = f"stage 9, {workers} worker{'s' if workers > 1 else ''} behind nginx"
    return Variant(f"stage9-{workers}w", label, 9, workers=workers)


VARIANTS = {
    v.name: v
    for v in (
        _variant("stage4", "stage 4 (sync)", 4),
        _variant("stage5", "stage 5 (async)", 5),
        _variant("stage7", "stage 7 (names + history)", 7),
        _variant(
            "stage5-pubsub", "stage 5, RedisPubSubChannelLayer", 5, BENCH_LAYER="pubsub"
        ),
        _variant(
            "stage5-memory", "stage 5, InMemoryChannelLayer", 5, BENCH_LAYER="memory"
        ),
        _variant("ceiling", "raw websockets server", None),
        _variant(
            "stage4-tutorial",
            "stage 4, tutorial CONFIG",
            4,
            BENCH_LAYER_CONFIG="tutorial",
        ),
        _variant(
            "stage5-tutorial",
            "stage 5, tutorial CONFIG",
            5,
            BENCH_LAYER_CONFIG="tutorial",
        ),
        _variant(
            "stage5-expiry",
            "stage 5, expiry 5 s",
            5,
            BENCH_LAYER_CONFIG='{"expiry": 5}',
        ),
        _variant(
            "stage4-slow",
            "stage 4 + 50 ms time.sleep()",
            4,
            True,
            BENCH_SLOW_SECONDS=str(SLOW_SECONDS),
        ),
        _variant(
            "stage5-slow",
            "stage 5 + 50 ms asyncio.sleep()",
            5,
            True,
            BENCH_SLOW_SECONDS=str(SLOW_SECONDS),
        ),
        _variant(
            "stage5-gc-freeze",
            "stage 5 + gc.freeze() (what-if)",
            5,
            True,
            BENCH_WHAT_IF="gc-freeze",
        ),
        _variant(
            "stage5-no-db-close",
            "stage 5, no per-message DB check (what-if)",
            5,
            True,
            BENCH_WHAT_IF="no-db-close",
        ),
        _variant(
            "stage7-kept-db",
            "stage 7, connection kept + WAL (what-if)",
            7,
            True,
            BENCH_WHAT_IF="kept-db",
        ),
        *(_deployed(workers) for workers in (1, 2, 3)),
    )
}


@dataclass(frozen=True)
class Load:
    clients: int
    messages: int  # over all clients
    rate: float | None  # messages per second over all clients; None: a burst
    idle_timeout: float  # seconds without a delivery that end a run

    @classmethod
    def paced(cls, clients: int, offered: int, seconds: float, idle: float) -> Load:
        """`offered` deliveries per second (messages/s x recipients) for `seconds`."""
        rate = offered / clients
        return cls(clients, max(1, round(rate * seconds)), rate, idle)

    @classmethod
    def burst(cls, clients: int, each: int, idle: float) -> Load:
        return cls(clients, clients * each, None, idle)

    @property
    def seconds(self) -> float:
        """How long a paced load sends for (a burst: no time at all)."""
        return self.messages / self.rate if self.rate else 0.0

    @property
    def offered(self) -> float | None:
        return self.rate * self.clients if self.rate else None

    def describe(self) -> str:
        if self.rate is None:
            return f"C={self.clients}, burst of {self.messages // self.clients} each"
        return f"C={self.clients}, {self.offered:.0f}/s"


@dataclass(frozen=True)
class Step:
    scenario: str
    variant: str
    load: Load
    repeat: int = 0

    @property
    def ladder_key(self) -> tuple[str, int] | None:
        """Ladder runs of one variant and crowd size stop after the first saturated one."""
        return (self.variant, self.load.clients) if self.scenario == "ladder" else None


@dataclass(frozen=True)
class Scale:
    ladders: dict[int, tuple[int, ...]]  # clients -> offered deliveries/s, rising
    seconds: float  # of paced sending per run
    idle: float  # seconds without a delivery that end a run
    slow: tuple[int, int]  # clients, messages each
    burst: tuple[int, int]
    target_repeats: int
    profile_seconds: float
    target_variants: tuple[str, ...]
    burst_variants: tuple[str, ...]
    ladder_variants: dict[int, tuple[str, ...]] = field(default_factory=dict)

    def variants_at(self, clients: int) -> tuple[str, ...]:
        return self.ladder_variants.get(clients, ("stage4", "stage5"))


LAYER_AND_CEILING = ("stage4", "stage5", "stage5-pubsub", "stage5-memory", "ceiling")
# The stages that store their messages, next to stage 5 at the goal's crowd.
STORING = ("stage7",)
# What storing would cost with the database settings the lesson does not use (ladder only).
STORING_WHAT_IF = ("stage7-kept-db",)

FULL = Scale(
    ladders={
        10: (2000, 4000, 6000, 8000),
        50: (2000, 4000, 6000, 8000, 12000, 16000, 24000),
        200: (2000, 4000, 6000, 8000),
    },
    ladder_variants={
        50: LAYER_AND_CEILING + STORING + STORING_WHAT_IF + DEPLOYED,
        200: ("stage4", "stage5", *DEPLOYED),
    },
    seconds=2.5,
    idle=3.0,
    slow=(20, 10),
    burst=(50, 20),
    target_repeats=2,
    profile_seconds=6,
    target_variants=(
        "stage5-tutorial", "stage5", "stage5-gc-freeze", "stage5-no-db-close",
        "stage4-tutorial", "stage4", *STORING, "stage9-2w",
    ),
    burst_variants=(
        "stage4", "stage5", "stage4-tutorial", "stage5-tutorial", "stage5-expiry",
        "stage5-pubsub", "stage5-memory", *STORING,
    ),
)  # fmt: skip
QUICK = replace(
    FULL,
    ladders={50: (2000, 6000)},
    ladder_variants={
        50: LAYER_AND_CEILING + STORING + STORING_WHAT_IF + ("stage9-2w",)
    },
    seconds=1.2,
    idle=1.5,
    slow=(10, 4),
    target_repeats=1,
    profile_seconds=3,
    target_variants=("stage5-tutorial", "stage5", *STORING),
    burst_variants=("stage5", "stage5-tutorial", *STORING),
)


def taking_turns(names: tuple[str, ...], turn: int) -> tuple[str, ...]:
    """`names`, rotated by `turn`, so no variant always runs first."""
    turn %= len(names)
    return names[turn:] + names[:turn]


def plan(scale: Scale) -> list[Step]:
    steps: list[Step] = []
    for clients, offered_loads in scale.ladders.items():
        for turn, offered in enumerate(offered_loads):
            load = Load.paced(clients, offered, scale.seconds, scale.idle)
            for name in taking_turns(scale.variants_at(clients), turn):
                steps.append(Step("ladder", name, load))
    slow = Load.burst(*scale.slow, idle=scale.idle)
    steps += [
        Step("slow-handler", name, slow) for name in ("stage4-slow", "stage5-slow")
    ]
    target = Load.paced(GOAL.clients, GOAL.offered, scale.seconds, scale.idle)
    for repeat in range(scale.target_repeats):
        for name in taking_turns(scale.target_variants, repeat):
            steps.append(Step("before-after", name, target, repeat))
    burst = Load.burst(*scale.burst, idle=scale.idle)
    steps += [Step("burst", name, burst) for name in scale.burst_variants]
    profiled = Load.paced(GOAL.clients, GOAL.offered, scale.profile_seconds, scale.idle)
    steps += [Step("profile", name, profiled) for name in ("stage5", *STORING)]
    return steps


def select(
    steps: list[Step],
    scenarios: set[str],
    variants: set[str],
    offered: set[int] | None = None,
) -> list[Step]:
    """The steps of these scenarios on these variants, the ladder's only at these offered
    loads (an empty set or None: all of them)."""
    return [
        step
        for step in steps
        if (not scenarios or step.scenario in scenarios)
        and (not variants or step.variant in variants)
        and (
            not offered
            or step.scenario != "ladder"
            or round(step.load.offered or 0) in offered
        )
    ]
