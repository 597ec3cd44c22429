"""The benchmark tool (`make bench`, tools/bench/run.py) in its quickest mode against stage 5 and
stage 9 as deployed: it measures real deliveries, it reports loss where a configuration drops
messages, and its tables render. Speed itself is the benchmark's to report, never asserted
here."""

import json
import subprocess
import sys

import pytest

from shared_tests.chat_client import chat_socket, next_reply, room_name, send_message
from shared_tests.conftest import missing_prerequisite
from tools.bench.plan import VARIANTS
from tools.bench.report import list_tables, markdown_table
from tools.bench.servers import BenchServers
from tools.course import REPO
from tools.deployment.nginx import NginxMissing, nginx_program

pytestmark = pytest.mark.repository
BENCH_TIMEOUT = 120


def nginx_missing() -> str | None:
    try:
        nginx_program()
    except NginxMissing as missing:
        return str(missing)
    return None


@pytest.fixture(scope="module")
def bench(redis_server, tmp_path_factory):
    """One quick run: stage 5, and stage 9 as deployed with 2 workers behind nginx (when
    nginx is here), paced at the lowest rate; and 50 x 20 bursts on stage 5 as it is and with
    the tutorial's CONFIG (capacity 100). Returns (results, output folder, stdout).
    `redis_server` only makes a missing redis-server skip (or fail in CI) like elsewhere."""
    out = tmp_path_factory.mktemp("bench")
    variants = "stage5,stage5-tutorial" + ("" if nginx_missing() else ",stage9-2w")
    completed = subprocess.run(
        [
            sys.executable, "-m", "tools.bench", "--quick", "--out", str(out),
            "--scenarios", "ladder,burst", "--variants", variants, "--offered", "2000",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT,
    )  # fmt: skip
    assert completed.returncode == 0, (
        f"`python -m tools.bench --quick` failed:\n{completed.stdout}{completed.stderr}"
    )
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return results, out, completed.stdout


def run_of(results: dict, scenario: str, variant: str) -> dict:
    runs = [
        run
        for run in results["runs"]
        if run["scenario"] == scenario and run["variant"] == variant
    ]
    assert runs, f"results.json has no {scenario} run of {variant}"
    return min(runs, key=lambda run: run["offered_per_s"] or 0)


def test_stage_5_at_a_low_rate_delivers_everything(bench):
    """At the lowest paced rate every client receives every message, and no socket closes."""
    results, _, _ = bench
    run = run_of(results, "ladder", "stage5")
    assert run["delivered"] > 0, f"no message was delivered: {run}"
    assert run["lost"] == 0, (
        f"stage 5 lost {run['lost']} of {run['expected']} deliveries "
        f"at {run['offered_per_s']:.0f}/s offered"
    )
    assert run["abnormal_closes"] == 0, f"sockets closed: {run['close_codes']}"
    assert run["p99_ms"] is not None and run["deliveries_per_s"] > 0


def test_stage_9_behind_nginx_delivers_everything(bench):
    """Stage 9's copy served by two daphne workers behind nginx, the clients on wss://
    through nginx (trusting its self-signed certificate): at the lowest rate every client
    receives every message, no socket closes, and nginx's CPU is measured apart."""
    missing = nginx_missing()
    if missing:
        missing_prerequisite(missing)
    results, _, _ = bench
    assert results["variants"]["stage9-2w"]["workers"] == 2
    run = run_of(results, "ladder", "stage9-2w")
    assert run["delivered"] > 0, f"no message was delivered through nginx: {run}"
    assert run["lost"] == 0, (
        f"stage 9 behind nginx lost {run['lost']} of {run['expected']} deliveries "
        f"at {run['offered_per_s']:.0f}/s offered"
    )
    assert run["abnormal_closes"] == 0, (
        f"sockets closed: {run['close_codes']} {run['connect_failures']}"
    )
    assert run["error_frames"] == 0, "stage 9 refused some of the load's messages"
    assert run["proxy_cpu_s"] is not None, "nginx's CPU was not measured"
    assert "workers" in list_tables(results), "no stage-9 table for these results"


def test_burst_of_50_by_20_loses_nothing_on_stage_5(bench):
    """50 clients sending 20 messages each at once: all 50 x 1000 deliveries arrive."""
    results, _, _ = bench
    run = run_of(results, "burst", "stage5")
    assert run["expected"] == 50 * 50 * 20, f"the burst was not 50 x 20: {run}"
    assert run["lost"] == 0, (
        f"stage 5 lost {run['lost']} of {run['expected']} deliveries in a 50 x 20 "
        f"burst ({run['clients_missing_messages']} clients missed messages)"
    )


def test_loss_is_reported_for_the_tutorial_capacity(bench):
    """With the tutorial's CONFIG (capacity 100) the same burst loses messages, and the
    benchmark counts them, client by client."""
    results, _, stdout = bench
    run = run_of(results, "burst", "stage5-tutorial")
    assert run["lost"] > 0, (
        "the tutorial's capacity of 100 should drop part of a 50 x 20 burst, "
        f"but the benchmark reported no loss: {run}"
    )
    assert run["lost"] == run["expected"] - run["delivered"]
    assert run["clients_missing_messages"] > 0
    assert f"| {run['lost']} |" in markdown_table("burst", results), (
        "the burst table does not show the loss"
    )
    assert "### burst" in stdout, "the printed report has no burst table"


def test_results_record_the_machine_hiredis_tables_and_plots(bench):
    """results.json names the machine and versions; the servers parse Redis replies with
    hiredis; every table renders; the throughput and latency plots are drawn."""
    results, out, _ = bench
    meta = results["meta"]
    for key in ("date", "cpu_model", "cores", "python", "packages", "redis_server"):
        assert meta.get(key), f"results.json meta lacks {key!r}"
    assert meta["packages"]["channels"], (
        "results.json does not record channels' version"
    )
    parser = results["variants"]["stage5"]["redis_parser"]
    assert parser == "_AsyncHiredisParser", f"the servers use {parser}, not hiredis"
    assert {"sync-vs-async", "burst"} <= set(list_tables(results))
    for name in list_tables(results):
        assert markdown_table(name, results).startswith("| "), f"table {name} is empty"
    for plot in ("throughput.png", "latency.png"):
        assert (out / plot).stat().st_size > 1000, f"{plot} was not drawn"


def test_committed_results_render_every_table():
    """The docs' tables come from docs/images/bench/results.json: each renders, and an
    unknown table name says which names exist."""
    names = list_tables()
    for name in (
        "sync-vs-async", "slow-handler", "layers", "ceiling", "before-after", "workers",
    ):  # fmt: skip
        assert name in names, f"the committed results have no {name!r} table"
    for name in names:
        assert markdown_table(name).count("\n") >= 2, f"table {name} has no rows"
    with pytest.raises(KeyError, match="the tables are"):
        markdown_table("no-such-table")


def test_the_kept_connection_what_if_keeps_one_and_a_write_ahead_log(
    redis_server, tmp_path
):
    """The what-if that the storing table puts next to stage 7 is what its label says: after
    messages are stored, its server still holds the SQLite file open (stage 7 itself holds
    it nowhere: test_the_server_keeps_no_database_connection_open), and SQLite keeps its
    write-ahead log beside it."""
    servers = BenchServers(tmp_path, redis_server.url(0))
    try:
        servers.start([VARIANTS["stage7-kept-db"]])
        server = servers.servers["stage7-kept-db"]
        with chat_socket(server, room_name("kept")) as socket:
            for number in range(3):
                send_message(socket, f"stored {number}")
                reply = next_reply(socket, "the message")
                assert reply.get("message") == f"stored {number}", reply
        database = servers.copy_of(7).root / "db.sqlite3"
        assert server.handles_on(database) == 1, (
            "the what-if did not keep its connection"
        )
        assert database.with_name("db.sqlite3-wal").exists(), "no write-ahead log"
    finally:
        servers.stop_all()


def test_stage_7s_profile_names_the_database_work(redis_server, tmp_path):
    """`make bench` samples stage 7's server with py-spy, and its table names the two costs
    stage 5 does not have: a new database connection per message, and the INSERT with its
    commit (stage 7's page quotes them). Sampled as long as `make bench` does (not --quick):
    the connection's few percent of 2 s of samples on a busy machine can be none."""
    completed = subprocess.run(
        [
            sys.executable, "-m", "tools.bench", "--out", str(tmp_path),
            "--scenarios", "profile", "--variants", "stage7", "--no-plots",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    profile = results["profiles"]["stage7"]
    assert "error" not in profile, profile
    costs = {cost["cost"] for cost in profile["costs"]}
    assert "database: the INSERT and its commit" in costs, costs
    assert "database: a new connection per message, and closing it" in costs, costs
    assert "profile-stage7" in list_tables(results)


# What a variant's server process has changed once bench_asgi has loaded (its what-ifs).
WHAT_IF_EFFECTS = """
import gc, json
import bench_asgi, channels.consumer
print(json.dumps({
    "db_check_skipped": channels.consumer.aclose_old_connections is bench_asgi._no_db_close,
    "frozen": gc.get_freeze_count() > 0,
}))
"""


@pytest.fixture(scope="module")
def bench_servers(redis_server, tmp_path_factory):
    """The benchmark's stage copies, for tests that look at a variant's server process."""
    return BenchServers(tmp_path_factory.mktemp("bench-servers"), redis_server.url(0))


@pytest.mark.parametrize(
    "variant, expected",
    [
        ("stage5", {"db_check_skipped": False, "frozen": False}),
        ("stage5-no-db-close", {"db_check_skipped": True, "frozen": False}),
        ("stage5-gc-freeze", {"db_check_skipped": False, "frozen": True}),
    ],
)
def test_each_what_if_changes_what_its_label_says(bench_servers, variant, expected):
    """The before-after table's what-if rows run the stage with one change each: skipping
    Channels' per-handler database check, or gc.freeze() once loaded; the stage itself has
    neither."""
    printed = bench_servers.run_python(VARIANTS[variant], WHAT_IF_EFFECTS)
    assert json.loads(printed.strip().splitlines()[-1]) == expected
