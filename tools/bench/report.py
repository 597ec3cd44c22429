"""The benchmark's tables in Markdown, from docs/images/bench/results.json (what `make bench`
wrote last) or from results passed in. Numbers and short English column heads only, so the
English and the Chinese docs can both quote them (tools/docs.py fills <!-- bench: NAME -->).

    markdown_table("sync-vs-async")  ->  "| C | offered/s | ..."
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from tools.course import REPO

RESULTS = REPO / "docs" / "images" / "bench" / "results.json"


@dataclass(frozen=True)
class Goal:
    """What stage 5 must sustain: 4000 deliveries/s to 50 clients, p99 under 150 ms."""

    clients: int = 50
    offered: int = 4000
    p99_ms: float = 150


GOAL = Goal()
NONE = "–"
# Stage 9 as deployed (tools/bench/plan.py), and what issue 13 asks of it: at the goal's crowd,
# hold at least this many times the load stage 5 holds (p99 under GOAL.p99_ms, nothing lost).
DEPLOYED = ("stage9-1w", "stage9-2w", "stage9-3w")
DEPLOYED_FACTOR = 2


def load_results(path: Path = RESULTS) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: `make bench` writes it")
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------- helpers
def table(heads: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def cell(value) -> str:
    if value is None:
        return NONE
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


def runs_of(results: dict, scenario: str, variants: tuple[str, ...] = ()) -> list[dict]:
    return [
        run
        for run in results.get("runs", [])
        if run["scenario"] == scenario and (not variants or run["variant"] in variants)
    ]


def label(results: dict, variant: str) -> str:
    return results.get("variants", {}).get(variant, {}).get("label", variant)


def crowd(run: dict) -> str:
    """ "50 x 20": clients, and messages each of them sent."""
    return f"{run['clients']} x {run['messages'] // run['clients']}"


def cpu_per_delivery(run: dict) -> float | None:
    """Server CPU microseconds per delivery: what one message to one client costs."""
    return run["server_cpu_s"] * 1e6 / run["delivered"] if run["delivered"] else None


def sustained(run: dict) -> bool:
    """Kept up with the offered load, within the latency goal, losing nothing."""
    return (
        run["lost"] == 0
        and run["abnormal_closes"] == 0
        and run["deliveries_per_s"] >= 0.95 * run["offered_per_s"]
        and (run["p99_ms"] or 0) < GOAL.p99_ms
    )


def median_run(runs: list[dict]) -> dict:
    """The run with the median p99 (of two, the worse one)."""
    return sorted(runs, key=lambda run: run["p99_ms"] or 0)[len(runs) // 2]


def mark(flag: bool) -> str:
    return "✓" if flag else "✗"


def ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 2) if value and base else None


def per_delivery(run: dict, key: str) -> float | None:
    """CPU microseconds per delivery of one process group (key: its CPU seconds)."""
    seconds = run.get(key)
    return (
        seconds * 1e6 / run["delivered"]
        if seconds is not None and run["delivered"]
        else None
    )


def ladder_by_crowd(results: dict, variants: tuple[str, ...]) -> dict:
    """(variant, clients) -> that variant's ladder runs at that crowd size."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for run in runs_of(results, "ladder", variants):
        groups.setdefault((run["variant"], run["clients"]), []).append(run)
    return groups


def held(runs: list[dict]) -> dict | None:
    """The run at the highest offered load sustained (see sustained()), if any."""
    return max(
        (r for r in runs if sustained(r)),
        key=lambda r: r["offered_per_s"],
        default=None,
    )


def busiest(runs: list[dict]) -> dict:
    """The run that delivered the most per second."""
    return max(runs, key=lambda r: r["deliveries_per_s"])


# ------------------------------------------------------------------------------- tables
def side_by_side(
    results: dict, variants: dict[str, str], clients: int | None = None
) -> str:
    """Ladder runs of some variants at the same loads, next to each other, and each later
    variant's deliveries as a ratio to the first's; variants maps each name to its heading."""
    ladder = [
        r
        for r in runs_of(results, "ladder", tuple(variants))
        if clients is None or r["clients"] == clients
    ]
    by_key = {(r["variant"], r["clients"], r["offered_per_s"]): r for r in ladder}
    points = sorted({(r["clients"], r["offered_per_s"]) for r in ladder})
    first, *others = variants
    rows = []
    for crowd_size, offered in points:
        row = [crowd_size, offered]
        runs = [by_key.get((variant, crowd_size, offered)) for variant in variants]
        for run in runs:
            row += (
                [run["deliveries_per_s"], run["p50_ms"], run["p99_ms"], run["lost"]]
                if run
                else [NONE] * 4  # not run: a lower load already saturated it
            )
        base = runs[0]["deliveries_per_s"] if runs[0] else 0
        row += [
            round(run["deliveries_per_s"] / base, 2) if run and base else NONE
            for run in runs[1:]
        ]
        rows.append(row)
    heads = ["C", "offered/s"]
    for heading in variants.values():
        heads += [f"{heading}: deliveries/s", "p50 ms", "p99 ms", "lost"]
    heads += [f"deliveries, {other} / {first}" for other in others]
    return table(heads, rows)


def sync_vs_async(results: dict) -> str:
    return side_by_side(results, {"stage4": "stage 4 sync", "stage5": "stage 5 async"})


def storing(results: dict) -> str:
    """What storing every message costs: stage 7 next to stage 5 at the goal's crowd, and
    stage 7 with the database settings it does not use (what-if)."""
    return side_by_side(
        results,
        {
            "stage5": "stage 5",
            "stage7": "stage 7 (stores each message)",
            "stage7-kept-db": "stage 7, connection kept + WAL (what-if)",
        },
        GOAL.clients,
    )


def workers(results: dict) -> str:
    """Stage 9 as deployed (1, 2, 3 workers behind nginx) next to stage 5, per crowd: the
    highest load held and the most delivered, each also as a ratio to stage 5's in the same
    run; in the run that delivered the most, the CPU each delivery cost (the daphne workers
    together, nginx, Redis) and how many of the machine's cores were busy (everything on it,
    the load client too) from the first message sent to the last one delivered."""
    names = ("stage5", *DEPLOYED)
    groups = ladder_by_crowd(results, names)
    rows = []
    for clients in sorted({c for name, c in groups if name in DEPLOYED}):
        base = groups.get(("stage5", clients))
        base_held = held(base) if base else None
        base_max = busiest(base)["deliveries_per_s"] if base else None
        for name in names:
            runs = groups.get((name, clients))
            if not runs:
                continue
            best, most = held(runs), busiest(runs)
            rows.append(
                [
                    label(results, name), clients,
                    best["offered_per_s"] if best else NONE,
                    ratio(best and best["offered_per_s"],
                          base_held and base_held["offered_per_s"]),
                    most["deliveries_per_s"], ratio(most["deliveries_per_s"], base_max),
                    cpu_per_delivery(most), per_delivery(most, "proxy_cpu_s"),
                    per_delivery(most, "redis_cpu_s"), most.get("machine_busy_cores"),
                ]
            )  # fmt: skip
    heads = [
        "server", "C", f"held offered/s (p99<{GOAL.p99_ms:.0f} ms, 0 lost)",
        "held, × stage 5", "max deliveries/s", "max, × stage 5",
        "CPU µs/delivery: daphne", "nginx", "Redis", "busy cores",
    ]  # fmt: skip
    return table(heads, rows)


def workers_ladder(results: dict) -> str:
    """Every ladder run of stage 5 and stage 9 as deployed, the runs at one load next to
    each other, with each one's deliveries as a ratio to stage 5's at that load."""
    names = ("stage5", *DEPLOYED)
    order = {name: i for i, name in enumerate(names)}
    crowds = {r["clients"] for r in runs_of(results, "ladder", DEPLOYED)}
    runs = sorted(
        (r for r in runs_of(results, "ladder", names) if r["clients"] in crowds),
        key=lambda r: (r["clients"], r["offered_per_s"], order[r["variant"]]),
    )
    base = {
        (r["clients"], r["offered_per_s"]): r["deliveries_per_s"]
        for r in runs
        if r["variant"] == "stage5"
    }
    rows = [
        [
            r["clients"], r["offered_per_s"], label(results, r["variant"]),
            r["deliveries_per_s"], r["p50_ms"], r["p99_ms"], r["lost"],
            cpu_per_delivery(r), per_delivery(r, "proxy_cpu_s"),
            r.get("machine_busy_cores"),
            ratio(r["deliveries_per_s"], base.get((r["clients"], r["offered_per_s"]))),
        ]
        for r in runs
    ]  # fmt: skip
    heads = [
        "C", "offered/s", "server", "deliveries/s", "p50 ms", "p99 ms", "lost",
        "CPU µs/delivery: daphne", "nginx", "busy cores", "deliveries, × stage 5",
    ]  # fmt: skip
    return table(heads, rows)


def long_ladder(results: dict, variants: tuple[str, ...]) -> str:
    runs = [
        r for r in runs_of(results, "ladder", variants) if r["clients"] == GOAL.clients
    ]
    order = {name: i for i, name in enumerate(variants)}
    runs.sort(key=lambda r: (order[r["variant"]], r["offered_per_s"]))
    heads = [
        "server", "offered/s", "deliveries/s", "p50 ms", "p99 ms", "lost",
        "server CPU µs/delivery", "Redis CPU s",
    ]  # fmt: skip
    rows = [
        [
            label(results, r["variant"]), r["offered_per_s"], r["deliveries_per_s"],
            r["p50_ms"], r["p99_ms"], r["lost"], cpu_per_delivery(r), r["redis_cpu_s"],
        ]
        for r in runs
    ]  # fmt: skip
    return table(heads, rows)


def layers(results: dict) -> str:
    return long_ladder(results, ("stage5", "stage5-pubsub", "stage5-memory"))


def ceiling(results: dict) -> str:
    return long_ladder(results, ("stage5", "ceiling"))


def best_sustained(results: dict) -> str:
    """Per server and crowd: the highest offered load held, and the most ever delivered."""
    groups = ladder_by_crowd(results, ())
    rows = []
    for (variant, clients), runs in sorted(groups.items(), key=lambda g: g[0][1]):
        best = held(runs)
        rows.append(
            [
                label(results, variant),
                clients,
                best["offered_per_s"] if best else NONE,
                best["p99_ms"] if best else NONE,
                max(r["deliveries_per_s"] for r in runs),
            ]
        )
    heads = [
        "server",
        "C",
        f"held offered/s (p99<{GOAL.p99_ms:.0f} ms, 0 lost)",
        "its p99 ms",
        "max deliveries/s",
    ]
    return table(heads, rows)


def slow_handler(results: dict) -> str:
    rows = [
        [
            label(results, r["variant"]),
            crowd(r),
            r["seconds"],
            round(r["sent"] / r["seconds"], 1) if r["seconds"] else None,
            r["p50_ms"],
            r["p99_ms"],
            r["lost"],
        ]
        for r in runs_of(results, "slow-handler")
    ]
    heads = [
        "server",
        "clients x messages",
        "all delivered in s",
        "messages/s",
        "p50 ms",
        "p99 ms",
        "lost",
    ]
    return table(heads, rows)


def before_after(results: dict) -> str:
    runs = runs_of(results, "before-after")
    variants = list(dict.fromkeys(r["variant"] for r in runs))
    rows = []
    for variant in variants:
        mine = [r for r in runs if r["variant"] == variant]
        run = median_run(mine)
        rows.append(
            [
                label(results, variant), len(mine), run["deliveries_per_s"],
                run["p50_ms"], run["p99_ms"], run["lost"], cpu_per_delivery(run),
                mark(sustained(run)),
            ]
        )  # fmt: skip
    heads = [
        f"server (C={GOAL.clients}, {GOAL.offered}/s offered)", "runs", "deliveries/s",
        "p50 ms", "p99 ms", "lost", "server CPU µs/delivery", "goal met",
    ]  # fmt: skip
    return table(heads, rows)


def burst(results: dict) -> str:
    rows = [
        [
            label(results, r["variant"]),
            crowd(r),
            r["expected"],
            r["delivered"],
            r["lost"],
            f"{100 * r['lost'] / r['expected']:.1f}%" if r["expected"] else NONE,
            r["p99_ms"],
            r["max_ms"],
            r["abnormal_closes"],
        ]
        for r in runs_of(results, "burst")
    ]
    heads = [
        "server", "clients x messages", "expected", "delivered", "lost", "lost %",
        "p99 ms", "max ms", "abnormal closes",
    ]  # fmt: skip
    return table(heads, rows)


def profile(results: dict, variant: str) -> str:
    """Where a server's time went while the goal's load ran (py-spy), largest share first."""
    found = (results.get("profiles") or {}).get(variant) or {}
    rows = [[c["cost"], f"{100 * c['share']:.0f}%"] for c in found.get("costs", [])]
    stage = variant.removeprefix("stage")
    return table([f"stage {stage} server time (py-spy samples)", "share"], rows)


def machine(results: dict) -> str:
    """When, on what and with which versions the numbers were measured."""
    meta, packages = results["meta"], results["meta"]["packages"]
    heads = [
        "measured",
        "mode",
        "CPU",
        "Python",
        "Django",
        "channels",
        "channels-redis",
    ]
    heads += ["daphne", "redis-py", "Redis server", "took s"]
    row = [
        meta["date"][:16].replace("T", " ") + " UTC", meta["mode"],
        f"{meta['cpu_model']}, {meta['cores']} cores", meta["python"],
        packages["Django"], packages["channels"], packages["channels-redis"],
        packages["daphne"], packages["redis"], meta["redis_server"], meta.get("seconds"),
    ]  # fmt: skip
    return table(heads, [row])


def target_verdict(results: dict) -> dict | None:
    """Whether stage 5 met the GOAL (and lost nothing), judged on its median
    before-after run."""
    runs = runs_of(results, "before-after", ("stage5",))
    if not runs:
        return None
    run = median_run(runs)
    keys = ("deliveries_per_s", "p50_ms", "p99_ms", "lost", "abnormal_closes")
    return {
        "goal": asdict(GOAL),
        "met": sustained(run),
        "runs": len(runs),
        "median_run": {key: run[key] for key in keys},
    }


def deployed_verdict(results: dict) -> dict | None:
    """Whether stage 9 as deployed held DEPLOYED_FACTOR times the load stage 5 held, at the
    goal's crowd, in the same run's ladder (p99 under GOAL.p99_ms, nothing lost)."""
    groups = ladder_by_crowd(results, ("stage5", *DEPLOYED))
    base_runs = groups.get(("stage5", GOAL.clients))
    deployed = {
        n: groups[(n, GOAL.clients)] for n in DEPLOYED if (n, GOAL.clients) in groups
    }
    if not base_runs or not deployed:
        return None
    base = held(base_runs)
    base_rate = base["offered_per_s"] if base else None
    found = {}
    for name, runs in deployed.items():
        best = held(runs)
        rate = best["offered_per_s"] if best else None
        found[name] = {
            "held_offered_per_s": rate,
            "held_ratio": ratio(rate, base_rate),
            "max_ratio": ratio(
                busiest(runs)["deliveries_per_s"],
                busiest(base_runs)["deliveries_per_s"],
            ),
        }
    return {
        "clients": GOAL.clients,
        "factor": DEPLOYED_FACTOR,
        "stage5_held_offered_per_s": base_rate,
        "variants": found,
        "met": bool(base_rate)
        and any((v["held_ratio"] or 0) >= DEPLOYED_FACTOR for v in found.values()),
    }


# name: (what renders it, the runs it needs: scenario and variants, or "profile" and one)
TABLES: dict[str, tuple[Callable[[dict], str], tuple]] = {
    "machine": (machine, ("meta",)),
    "sync-vs-async": (sync_vs_async, ("ladder", ("stage4", "stage5"))),
    "sustained": (best_sustained, ("ladder",)),
    "slow-handler": (slow_handler, ("slow-handler",)),
    "layers": (layers, ("ladder", ("stage5-pubsub", "stage5-memory"))),
    "ceiling": (ceiling, ("ladder", ("ceiling",))),
    "storing": (storing, ("ladder", ("stage7",))),
    "workers": (workers, ("ladder", DEPLOYED)),
    "workers-ladder": (workers_ladder, ("ladder", DEPLOYED)),
    "before-after": (before_after, ("before-after",)),
    "burst": (burst, ("burst",)),
    "profile": (partial(profile, variant="stage5"), ("profile", "stage5")),
    "profile-stage7": (partial(profile, variant="stage7"), ("profile", "stage7")),
}


def has_data(results: dict, needs: tuple) -> bool:
    if needs[0] == "profile":
        return bool(((results.get("profiles") or {}).get(needs[1]) or {}).get("costs"))
    if needs == ("meta",):
        return bool(results.get("meta"))
    return bool(runs_of(results, *needs))


def list_tables(results: dict | None = None) -> list[str]:
    """The names of the tables the results have data for."""
    results = load_results() if results is None else results
    return [name for name, (_, needs) in TABLES.items() if has_data(results, needs)]


def markdown_table(name: str, results: dict | None = None) -> str:
    """The table `name` (see list_tables()) in Markdown."""
    if name not in TABLES:
        raise KeyError(f"no bench table {name!r}; the tables are {', '.join(TABLES)}")
    results = load_results() if results is None else results
    return TABLES[name][0](results)
