"""The benchmark's plots (PNG, matplotlib's Agg backend: no display needed):
throughput.png and latency.png (stage 4 vs 5), layers.png (channel layers and the raw
`websockets` ceiling), slow-handler.png."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

from tools.bench.plan import SLOW_SECONDS  # noqa: E402
from tools.bench.report import GOAL, label, runs_of  # noqa: E402

STYLES = {  # variant: (colour, marker)
    "stage4": ("tab:orange", "o"),
    "stage5": ("tab:blue", "s"),
    "stage5-pubsub": ("tab:green", "^"),
    "stage5-memory": ("tab:purple", "v"),
    "ceiling": ("tab:gray", "D"),
    "stage4-slow": ("tab:orange", "o"),
    "stage5-slow": ("tab:blue", "s"),
}
STAGES = ("stage4", "stage5")
LAYERS = ("stage5", "stage5-pubsub", "stage5-memory", "ceiling")


def ladder_runs(results: dict, variant: str, clients: int) -> list[dict]:
    runs = [
        r for r in runs_of(results, "ladder", (variant,)) if r["clients"] == clients
    ]
    return sorted(runs, key=lambda r: r["offered_per_s"])


def crowds(results: dict, variants: tuple[str, ...]) -> list[int]:
    return sorted({r["clients"] for r in runs_of(results, "ladder", variants)})


def plot_ladder(axes, results, variants, clients, value, style="-", suffix="") -> None:
    for variant in variants:
        runs = ladder_runs(results, variant, clients)
        if runs:
            colour, marker = STYLES[variant]
            axes.plot(
                [r["offered_per_s"] for r in runs],
                [r[value] for r in runs],
                style,
                color=colour,
                marker=marker,
                label=label(results, variant) + suffix,
            )


def finish(axes, title: str, ylabel: str, log: bool = False) -> None:
    axes.set(title=title, xlabel="offered deliveries/s", ylabel=ylabel)
    if log:
        axes.set_yscale("log")
        axes.axhline(GOAL.p99_ms, color="red", linewidth=0.8, linestyle=":")
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)


def panels(count: int, height: float = 4):
    figure, grid = plt.subplots(1, count, figsize=(5 * count, height), squeeze=False)
    return figure, list(grid[0])


def throughput(results: dict, out: Path) -> Path:
    sizes = crowds(results, STAGES)
    figure, axes_list = panels(len(sizes))
    for axes, clients in zip(axes_list, sizes, strict=True):
        plot_ladder(axes, results, STAGES, clients, "deliveries_per_s")
        top = max(r["offered_per_s"] for r in runs_of(results, "ladder", STAGES))
        axes.plot([0, top], [0, top], "k:", linewidth=1, label="offered")
        finish(axes, f"{clients} clients in one room", "deliveries/s")
    return save(figure, out / "throughput.png")


def latency(results: dict, out: Path) -> Path:
    sizes = crowds(results, STAGES)
    figure, axes_list = panels(len(sizes))
    for axes, clients in zip(axes_list, sizes, strict=True):
        plot_ladder(axes, results, STAGES, clients, "p50_ms", ":", " p50")
        plot_ladder(axes, results, STAGES, clients, "p99_ms", "-", " p99")
        finish(axes, f"{clients} clients (red: p99 goal)", "latency ms", log=True)
    return save(figure, out / "latency.png")


def layers(results: dict, out: Path) -> Path:
    figure, (left, right) = panels(2)
    plot_ladder(left, results, LAYERS, 50, "deliveries_per_s")
    finish(left, "50 clients: throughput", "deliveries/s")
    plot_ladder(right, results, LAYERS, 50, "p99_ms")
    finish(right, "50 clients: p99 latency", "ms", log=True)
    return save(figure, out / "layers.png")


def slow_handler(results: dict, out: Path) -> Path:
    runs = runs_of(results, "slow-handler")
    names = [label(results, r["variant"]) for r in runs]
    colours = [STYLES[r["variant"]][0] for r in runs]
    figure, (left, right) = panels(2, height=3.5)
    left.barh(names, [r["seconds"] for r in runs], color=colours)
    sent = runs[0]["sent"]
    left.axvline(
        sent * SLOW_SECONDS,
        color="k",
        linestyle=":",
        label=f"{sent} x {SLOW_SECONDS * 1000:.0f} ms, one after another",
    )
    left.set(title="until every message reached everyone", xlabel="seconds")
    left.legend(fontsize=8, loc="upper right")
    for offset, percentile in ((-0.2, "p50_ms"), (0.2, "p99_ms")):
        right.barh(
            [i + offset for i in range(len(runs))],
            [r[percentile] for r in runs],
            height=0.4,
            label=percentile[:3],
        )
    right.set(title="latency per message", xlabel="ms", yticks=range(len(runs)))
    right.set_yticklabels(names)
    right.legend()
    return save(figure, out / "slow-handler.png")


def save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def draw_all(results: dict, out: Path) -> list[Path]:
    """Draw every plot the results have data for; return their paths."""
    drawn = []
    if runs_of(results, "ladder", STAGES):
        drawn += [throughput(results, out), latency(results, out)]
    if runs_of(results, "ladder", LAYERS[1:]):
        drawn.append(layers(results, out))
    if runs_of(results, "slow-handler"):
        drawn.append(slow_handler(results, out))
    return drawn
