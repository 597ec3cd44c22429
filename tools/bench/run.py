"""`make bench`: measure the chat's stage servers under load, side by side.

Starts a private Redis and every server variant (tools/bench/plan.py), drives each with the
load client (tools/bench/load.py) run after run, samples stage 5 with py-spy, then prints
Markdown tables and writes results.json and PNG plots (default: docs/images/bench/).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from shared_tests.chat_client import chat_path, room_name
from shared_tests.servers import ServerFailed
from tools.bench.facts import load_average, machine_facts, redis_cpu_seconds
from tools.bench.load import LoadSpec, spec_to_json
from tools.bench.plan import FULL, QUICK, SCENARIOS, VARIANTS, Step, plan, select
from tools.bench.profile import ProfilerMissing, finish_sampling, start_sampling
from tools.bench.report import (
    deployed_verdict,
    list_tables,
    markdown_table,
    target_verdict,
)
from tools.bench.servers import BenchServers, Meter, ServerGone, live_pids
from tools.course import REPO
from tools.redis_server import PrivateRedis, RedisMissing

OUT = REPO / "docs" / "images" / "bench"
# A quick run's numbers are rougher: they never replace the full run's that the docs quote.
QUICK_OUT = Path(tempfile.gettempdir()) / "workshop-bench-quick"
LOAD_CLIENT = [sys.executable, "-m", "tools.bench.load"]
LOAD_TIMEOUT = 180  # seconds for one run of the load client, connections included
PROFILE_AFTER = 1.0  # seconds for the profiled run's sockets to open before sampling


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs")
    parser.add_argument(
        "--out", type=Path, help=f"default: {OUT} ({QUICK_OUT} with --quick)"
    )
    parser.add_argument(
        "--scenarios",
        default="",
        help=f"comma-separated subset of: {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--variants",
        default="",
        help=f"comma-separated subset of: {', '.join(VARIANTS)} (default: all)",
    )
    parser.add_argument(
        "--offered",
        default="",
        help="comma-separated offered deliveries/s: run the ladder only at these "
        "(default: at all of the mode's)",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    args = parser.parse_args(argv)
    try:
        args.offered = {int(rate) for rate in args.offered.split(",") if rate.strip()}
    except ValueError:
        parser.error(f"--offered takes whole numbers, not {args.offered!r}")
    args.scenarios = names_in(parser, args.scenarios, SCENARIOS, "scenario")
    args.variants = names_in(parser, args.variants, tuple(VARIANTS), "variant")
    args.out = args.out or (QUICK_OUT if args.quick else OUT)
    return args


def names_in(parser, text: str, known: tuple[str, ...], what: str) -> set[str]:
    names = {name.strip() for name in text.split(",") if name.strip()}
    for name in sorted(names - set(known)):
        parser.error(f"unknown {what} {name!r}: use {', '.join(known)}")
    return names


class Progress:
    """A one-line progress bar on stderr (a line per step when stderr is not a terminal)."""

    WIDTH = 30

    def __init__(self, total: int):
        self.total, self.done, self.started = total, 0, time.monotonic()
        self.live = sys.stderr.isatty()

    def show(self, what: str) -> None:
        filled = self.WIDTH * self.done // max(self.total, 1)
        elapsed = int(time.monotonic() - self.started)
        line = (
            f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done}/{self.total} "
            f"{elapsed // 60}:{elapsed % 60:02d}  {what}"
        )
        sys.stderr.write("\r\033[K" + line[:120] if self.live else line + "\n")
        sys.stderr.flush()

    def advance(self) -> None:
        self.done += 1

    def finish(self) -> None:
        self.show("done")
        if self.live:
            sys.stderr.write("\n")


def saturated(result: dict) -> bool:
    """Past what the server keeps up with: a higher load would only queue more."""
    offered = result["offered_per_s"]
    return (
        result["lost"] > 0
        or result["abnormal_closes"] > 0
        or (offered is not None and result["deliveries_per_s"] < 0.95 * offered)
        or (result["p99_ms"] or 0) > 500
    )


class Bench:
    def __init__(self, servers: BenchServers, redis_url: str, workdir: Path):
        self.servers, self.redis_url, self.workdir = servers, redis_url, workdir
        self.runs: list[dict] = []
        self.errors: list[dict] = []
        self.profiles: dict[str, dict] = {}  # by variant

    def spec(self, step: Step) -> LoadSpec:
        server, load = self.servers.servers[step.variant], step.load
        return LoadSpec(
            url=server.ws_url(chat_path(room_name("bench"))),
            origin=server.origin,
            clients=load.clients,
            messages=load.messages,
            rate=load.rate,
            idle_timeout=load.idle_timeout,
            cafile=str(server.certificate) if server.secure else None,
        )

    def measure(self, step: Step) -> dict:
        """One run of the load client against the step's server, with the server's costs
        (its workers' together; nginx's apart)."""
        pids, proxy_pids = live_pids(self.servers.servers[step.variant], step.variant)
        load_before, redis_before = load_average(), redis_cpu_seconds(self.redis_url)
        with Meter(pids) as meter, Meter(proxy_pids) as proxy:
            client = subprocess.Popen(
                [*LOAD_CLIENT, spec_to_json(self.spec(step))],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            if step.scenario == "profile":
                self.profile_during(pids[0], step)
            try:
                stdout, stderr = client.communicate(timeout=LOAD_TIMEOUT)
            except subprocess.TimeoutExpired:
                client.kill()
                client.communicate()
                raise
        if client.returncode != 0 or not stdout.strip():
            detail = (stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"the load client failed: {detail}")
        result = json.loads(stdout.strip().splitlines()[-1])
        result.update(
            scenario=step.scenario,
            variant=step.variant,
            repeat=step.repeat,
            server_cpu_s=meter.cpu_s,
            server_peak_rss_mb=meter.peak_rss_mb,
            proxy_cpu_s=proxy.cpu_s if proxy_pids else None,
            redis_cpu_s=round(redis_cpu_seconds(self.redis_url) - redis_before, 3),
            load_average=load_before,
        )
        return result

    def profile_during(self, pid: int, step: Step) -> None:
        """Sample the server while the step's messages flow (not while sockets open)."""
        time.sleep(PROFILE_AFTER)
        output = self.workdir / "profile.raw"
        try:
            sampler = start_sampling(pid, step.load.seconds - PROFILE_AFTER, output)
            found = finish_sampling(sampler, output)
        except ProfilerMissing as missing:  # the run is measured anyway
            self.profiles[step.variant] = {"error": str(missing)}
            return
        self.profiles[step.variant] = {"load": step.load.describe(), **found}

    def run(self, steps: list[Step], progress: Progress) -> None:
        stopped: set[tuple[str, int]] = set()  # ladders past their saturation point
        for step in steps:
            if step.ladder_key not in stopped:
                label = VARIANTS[step.variant].label
                progress.show(f"{step.scenario}: {label}, {step.load.describe()}")
                try:
                    result = self.measure(step)
                except (RuntimeError, psutil.Error, subprocess.TimeoutExpired) as error:
                    result = None
                    failure = f"{type(error).__name__}: {error}"
                    self.errors.append(
                        {
                            "scenario": step.scenario,
                            "variant": step.variant,
                            "error": failure,
                        }
                    )
                if result is not None:
                    self.runs.append(result)
                if step.ladder_key and (result is None or saturated(result)):
                    stopped.add(step.ladder_key)
            progress.advance()


def run_bench(args: argparse.Namespace) -> dict:
    steps = select(
        plan(QUICK if args.quick else FULL), args.scenarios, args.variants, args.offered
    )
    if not steps:
        raise SystemExit(
            "Nothing to run: none of those scenarios uses those variants (at those loads)."
        )
    names = list(dict.fromkeys(step.variant for step in steps))
    progress = Progress(len(steps))
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="workshop-bench-") as tmp,
        PrivateRedis() as redis_server,
    ):
        redis_url = redis_server.url()
        results = {"meta": machine_facts("quick" if args.quick else "full", redis_url)}
        servers = BenchServers(Path(tmp), redis_url)
        try:
            progress.show(f"starting {len(names)} servers")
            servers.start([VARIANTS[name] for name in names])
            results["variants"] = {
                name: {**VARIANTS[name].describe(), **servers.layer_of(VARIANTS[name])}
                for name in names
            }
            bench = Bench(servers, redis_url, Path(tmp))
            bench.run(steps, progress)
        finally:
            servers.stop_all()
    progress.finish()
    results["meta"].update(
        seconds=round(time.monotonic() - started, 1), load_average_end=load_average()
    )
    results.update(runs=bench.runs, errors=bench.errors, profiles=bench.profiles)
    results["target"] = target_verdict(results)
    results["target_deployed"] = deployed_verdict(results)
    return results


def deployed_summary(verdict: dict) -> str:
    """One line: did stage 9 hold `factor` times the load stage 5 held, and each worker
    count's ratios to stage 5 in this run (the load held, the most delivered)."""
    each = ", ".join(
        f"{name} held x{found['held_ratio'] or 0:g} and delivered at most "
        f"x{found['max_ratio'] or 0:g}"
        for name, found in verdict["variants"].items()
    )
    base = verdict["stage5_held_offered_per_s"]
    return (
        f"Stage 9 vs stage 5 at C={verdict['clients']}: {each}; the target "
        f"({verdict['factor']}x the {base or 0:.0f}/s stage 5 held) is "
        f"{'met' if verdict['met'] else 'NOT met'}."
    )


def write_outputs(results: dict, out: Path, plots: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=1, ensure_ascii=False) + "\n"
    (out / "results.json").write_text(text, encoding="utf-8")
    if plots:
        from tools.bench.plots import draw_all  # matplotlib: only when plotting

        draw_all(results, out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        results = run_bench(args)
    except (RedisMissing, ServerFailed, ServerGone) as error:
        print(error, file=sys.stderr)
        return 1
    write_outputs(results, args.out, plots=not args.no_plots)
    for name in list_tables(results):
        print(f"\n### {name}\n\n{markdown_table(name, results)}")
    if results["target_deployed"] and not (args.quick or args.offered):
        print("\n" + deployed_summary(results["target_deployed"]))
    for error in results["errors"]:
        print(f"\nfailed: {error['scenario']} on {error['variant']}: {error['error']}")
    print(f"\nWrote {args.out / 'results.json'} in {results['meta']['seconds']} s.")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
