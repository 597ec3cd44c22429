"""Hostile and broken projects, graded for real in the sandbox: each ends in bounded time with a
report that says what happened, its grade is not raised, the grader's own files are unchanged,
and the next project is graded normally."""

from __future__ import annotations

import json
import marshal
import py_compile
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from shared_tests.graded_projects import (
    COURSE,
    append_to_settings,
    consumer_method,
    copy_stage,
    edit,
    grade,
    never_accepts,
    room_page_starting_with,
    take_file,
)
from tools.course import REPO
from tools.grading import integrity
from tools.grading.harness import run_session
from tools.grading.integrity import (
    GRADER_PYCACHE,
    changed_files,
    drop_stale_bytecode,
    fingerprint,
)
from tools.grading.project import REPORT_MARK

pytestmark = pytest.mark.repository
GRACE = 60  # seconds for the grader's own work around a run (start-up, reports)


def echo_only_stage4_writing_a_pytest_hook(project: Path) -> None:
    """The attack from the issue: an echo-only stage-4 project (it must fail) whose settings
    find the checkout from sys.executable and append a hook that passes every test."""
    take_file(project, "chat/consumers.py", from_stage=3)
    append_to_settings(
        """
import sys as _sys
from pathlib import Path as _Path
_conftest = _Path(_sys.executable).parents[2] / "shared_tests" / "conftest.py"
with open(_conftest, "a") as _hook:
    _hook.write("\\nimport pytest\\n@pytest.hookimpl(hookwrapper=True)\\n"
                "def pytest_runtest_makereport(item, call):\\n"
                "    outcome = yield\\n    outcome.get_result().outcome = 'passed'\\n")
"""
    )(project)


DJANGO_APPS = [
    f"django.contrib.{app}"
    for app in ("admin", "auth", "contenttypes", "sessions", "messages", "staticfiles")
]
# What the probe reports for stages 5 to 7, every fact of it.
PROBED_FACTS = {
    "ok": True,
    "asgi_application": "mysite.asgi.application",
    "installed_apps": ["daphne", "chat", *DJANGO_APPS],
    "channel_layers": {"default": "channels_redis.core.RedisChannelLayer"},
    "database": {"engine": "django.db.backends.sqlite3", "name": "db.sqlite3"},
    "static_root": "",
    "consumers": {"chat.consumers.ChatConsumer": "async"},
}


def settings_reporting(facts: dict, when: str) -> str:
    """Settings code that prints the probe's report line with `facts`: while loading, when
    the process exits, or in the probe only, ending it before the probe's own report
    ("instead")."""
    line = repr(REPORT_MARK + json.dumps(facts))
    return {
        "loading": f"print({line})",
        "exit": f"import atexit\natexit.register(print, {line})",
        "instead": (
            "import os, sys\n"
            "if sys.argv[0].endswith('workshop_probe.py'):\n"
            f"    print({line}, flush=True)\n"
            "    os._exit(0)"
        ),
    }[when]


def sync_consumer_printing_an_async_report(when: str) -> Callable[[Path], None]:
    """A stage-5 project still on stage 4's sync consumer, whose settings print the report
    the grader's probe would print for an async one (see settings_reporting)."""

    def plant(project: Path) -> None:
        take_file(project, "chat/consumers.py", from_stage=4)
        append_to_settings(settings_reporting(PROBED_FACTS, when))(project)

    return plant


def blocking_writes_behind_a_decoy_database(project: Path) -> None:
    """A stage-7 consumer that writes with the sync ORM (allowed by DJANGO_ALLOW_ASYNC_UNSAFE,
    so it blocks the event loop), whose settings report an empty decoy file as the database:
    the file the test locks, while the server writes elsewhere."""
    edit(
        project,
        "chat/consumers.py",
        "await Message.objects.acreate(",
        "Message.objects.create(",
    )
    decoy = {**PROBED_FACTS["database"], "name": "decoy.sqlite3"}
    append_to_settings(
        'os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"\n'
        'open(BASE_DIR / "decoy.sqlite3", "a").close()\n'
        + settings_reporting({**PROBED_FACTS, "database": decoy}, "instead")
    )(project)


# A stage-9 worker's settings: every other socket it takes goes unlogged, and it opens a
# connection of its own to the other worker at the same time; a worker that took no socket
# prints a daphne log line for each of those, as if it had taken it.
WORKERS_CLAIMING_EACH_OTHERS_SOCKETS = """
import os as _os, re as _re, socket as _socket, sys as _sys
import threading as _threading, time as _time
from daphne.access import AccessLogGenerator as _Log
_FORGED = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "forged.txt")
_real_call, _taken, _held = _Log.__call__, [], []
def _other_worker():
    own = _sys.argv[_sys.argv.index("-p") + 1]
    with open(".nginx/nginx.conf") as _config:
        ports = _re.findall(r"server 127[.]0[.]0[.]1:([0-9]+)", _config.read())
    return int(next(port for port in ports if port != own))
def _call(self, protocol, action, details):
    if protocol == "websocket" and action == "connected":
        _taken.append(details["path"])
        if len(_taken) % 2 == 0:
            _held.append(_socket.create_connection(("127.0.0.1", _other_worker())))
            with open(_FORGED, "a") as _file:
                _file.write(details["path"] + "\\n")
            return
    _real_call(self, protocol, action, details)
_Log.__call__ = _call
def _claim():
    claimed = 0
    while True:
        _time.sleep(0.01)
        try:
            with open(_FORGED) as _file:
                paths = _file.read().splitlines()
        except OSError:
            continue
        for path in paths[claimed:]:
            if not _taken:
                print(f'127.0.0.1:1 - - [forged] "WSCONNECT {path}" - -', flush=True)
        claimed = len(paths)
_threading.Thread(target=_claim, daemon=True).start()
"""


def one_worker_whose_logs_claim_two(project: Path) -> None:
    """A stage-9 project whose nginx sends every socket to one worker (ip_hash: all clients
    are 127.0.0.1) and whose workers share no rooms (each its own channel layer prefix),
    with logs and connections that say each worker took every other socket."""
    edit(
        project,
        "deploy/nginx.conf.template",
        "${WORKER_SERVERS}",
        "ip_hash;\n        ${WORKER_SERVERS}",
    )
    append_to_settings(
        'CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"asgi{os.getpid()}"'
        + WORKERS_CLAIMING_EACH_OTHERS_SOCKETS
    )(project)


DRESSED_AS_DAPHNE = """
print('Starting ASGI/Daphne version 4.2.3 development server at http://127.0.0.1:8000/')
def dress_as_daphne(get_response):
    def middleware(request):
        response = get_response(request)
        response["Server"] = "daphne"
        return response
    return middleware
MIDDLEWARE = [*MIDDLEWARE, "mysite.settings.dress_as_daphne"]
"""


def django_server_dressed_as_daphne(project: Path) -> None:
    """ "daphne" out of INSTALLED_APPS (runserver is Django's own), settings that print the
    line Daphne's runserver starts with, and a middleware that names Daphne as the server."""
    edit(project, "mysite/settings.py", '    "daphne",\n', "")
    append_to_settings(DRESSED_AS_DAPHNE)(project)


@dataclass
class Hostile:
    stage: int
    plant: Callable[[Path], None]
    says: str  # what the report must say about it
    behaviours: tuple[
        str, ...
    ]  # the ones graded (enough to show the grade is not raised)
    graded_normally: bool = False  # the hostility has no effect: graded like the stage
    options: tuple[str, ...] = ()
    time_limit: int = 120


HOSTILE = {
    "settings-append-a-pytest-hook-to-the-grader": Hostile(
        4,
        echo_only_stage4_writing_a_pytest_hook,
        "No such file or directory",
        ("room_broadcast", "ws_round_trip"),
    ),
    "settings-sleep-forever": Hostile(
        3,
        append_to_settings("import time\ntime.sleep(10**6)"),
        "still loading after 5 s",
        ("ws_round_trip",),
        options=("--load-time-limit", "5"),
    ),
    "settings-loop-forever": Hostile(
        3,
        append_to_settings("while True:\n    pass"),
        "still loading after 5 s",
        ("ws_round_trip",),
        options=("--load-time-limit", "5"),
    ),
    "settings-fork-a-child-that-keeps-the-output-open": Hostile(
        3,
        append_to_settings(
            "import os, time\nif os.fork() == 0:\n    time.sleep(10**6)\n    os._exit(0)"
        ),
        "PASS",
        ("ws_round_trip", "manage_check"),
        graded_normally=True,
    ),
    "settings-kill-its-parent-and-everything-it-sees": Hostile(
        3,
        append_to_settings(
            "import os, signal\n"
            "for _pid in (os.getppid(), -1):\n"
            "    try:\n"
            "        os.kill(_pid, signal.SIGKILL)\n"
            "    except OSError:\n"
            "        pass"
        ),
        "PASS",
        ("ws_round_trip",),
        graded_normally=True,
    ),
    "settings-fork-endlessly": Hostile(
        3,
        append_to_settings(
            "import os, time\n"
            "while True:\n"
            "    if os.fork() == 0:\n"
            "        time.sleep(10**6)"
        ),
        "process limit",
        ("ws_round_trip",),
    ),
    "settings-eat-memory": Hostile(
        3,
        append_to_settings(
            "_hoard = []\nwhile True:\n    _hoard.append(bytearray(10**8))"
        ),
        "memory limit",
        ("ws_round_trip",),
    ),
    "settings-write-outside-its-copy": Hostile(
        3,
        append_to_settings(
            "import site\n"
            "with open(site.getsitepackages()[0] + '/workshop_owned.pth', 'w') as _f:\n"
            "    _f.write('import os')"
        ),
        "may write only in its own copy",
        ("ws_round_trip",),
    ),
    "settings-exit-0-while-loading": Hostile(
        3,
        append_to_settings(
            "import os\nprint('System check identified no issues (0 silenced).')\n"
            "os._exit(0)"
        ),
        "exited (code 0) without a word while loading",
        ("manage_check", "ws_round_trip"),
    ),
    "settings-print-at-exit": Hostile(
        3,
        append_to_settings(
            "import atexit\natexit.register(print, 'Goodbye from settings.py')"
        ),
        "PASS",
        ("consumer_style", "ws_round_trip", "manage_check"),
        graded_normally=True,
    ),
    "settings-replace-sys-stdout": Hostile(
        3,
        append_to_settings("import io, sys\nsys.stdout = io.StringIO()"),
        "PASS",
        ("consumer_style", "ws_round_trip"),
        graded_normally=True,
    ),
    "settings-print-a-forged-probe-report": Hostile(
        5,
        sync_consumer_printing_an_async_report("loading"),
        "printed the grader's report line",
        ("consumer_style", "ws_round_trip"),
    ),
    # The probe's report cannot be told from this forgery: the server's behaviour can.
    "settings-forge-the-probe-report-and-end-the-probe": Hostile(
        5,
        sync_consumer_printing_an_async_report("instead"),
        "the server answered no frame of another socket",
        ("consumer_style",),
    ),
    "settings-report-a-decoy-database": Hostile(
        7,
        blocking_writes_behind_a_decoy_database,
        "the SQLite file the project's settings name",
        ("database_not_blocking",),
    ),
    "workers-logging-sockets-they-never-took": Hostile(
        9,
        one_worker_whose_logs_claim_two,
        "the upstream should take turns",
        ("workers_share_rooms",),
    ),
    "django-server-dressed-as-daphne": Hostile(
        3,
        django_server_dressed_as_daphne,
        "as Django's own (WSGI) server does",
        ("runserver_daphne",),
    ),
    "consumer-never-accepts": Hostile(
        3,
        lambda p: edit(
            p, "chat/consumers.py", "        self.accept()\n", "        pass\n"
        ),
        "the server refused the WebSocket",
        ("ws_round_trip",),
    ),
    "consumer-blocks-forever-in-receive": Hostile(
        3,
        consumer_method("receive", "import threading\nthreading.Event().wait()"),
        "nothing arrived within 5 s",
        ("ws_round_trip",),
    ),
    "consumer-floods-the-log": Hostile(
        3,
        consumer_method("connect", "while True:\n    print('flood ' * 1000)"),
        "output limit",
        ("ws_round_trip",),
    ),
    "consumer-exits-0-inside-a-test": Hostile(
        3,
        consumer_method("receive", "import os\nos._exit(0)"),
        "exited on its own (code 0)",
        ("ws_round_trip", "room_isolation"),
    ),
}


def full_marks(stage: int, behaviours: tuple[str, ...]) -> int:
    """What the untouched stage scores on these behaviours: all their points (make test
    proves every stage passes every behaviour)."""
    return sum(
        b.points for b in COURSE.behaviours if b.id in behaviours and b.kind == "core"
    )


@pytest.mark.parametrize("case", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_project_gets_a_report_and_no_more_than_it_earned(tmp_path, case):
    """The run ends within its limits, the report says what happened, the score is not above
    what the stage earns without the hostile code, and the grader's files are unchanged."""
    project = copy_stage(case.stage, tmp_path)
    case.plant(project)
    options = [o for b in case.behaviours for o in ("--behaviour", b)]
    options += ["--time-limit", str(case.time_limit), *case.options]
    drop_stale_bytecode()  # as a grade does first: Python compiles them again
    before = fingerprint()
    graded = grade(
        project, case.stage, tmp_path, *options, timeout=case.time_limit + GRACE
    )
    assert changed_files(before, fingerprint()) == [], "the grader's files changed"
    text = graded.report + "\n" + json.dumps(graded.results, ensure_ascii=False)
    assert case.says in text, f"the report does not say {case.says!r}:\n{graded.report}"
    earned = full_marks(case.stage, case.behaviours)
    assert graded.results["score"] <= earned
    if case.graded_normally:
        assert graded.returncode == 0, graded.report
        assert graded.results["score"] == earned
    else:
        assert graded.returncode in (1, 2), graded.output[-2000:]
        assert graded.results["score"] < earned
        assert all(t["status"] == "failed" for t in graded.results["tests"])


def test_a_report_printed_at_exit_does_not_change_what_the_grader_learns(tmp_path):
    """A stage-5 project on a sync consumer whose settings print, at exit, the report of an
    async one: the probe ends its process right after its own report, so the forged one is
    never printed and the consumer is still found to be sync."""
    project = copy_stage(5, tmp_path)
    sync_consumer_printing_an_async_report("exit")(project)
    graded = grade(project, 5, tmp_path, "--behaviour", "consumer_style")
    assert graded.results["score"] == 0, graded.report
    assert "is a sync consumer" in graded.report, graded.report


def test_links_planted_where_the_grader_writes_nginx_files_are_not_followed(tmp_path):
    """A stage-9 project that, while it loads, makes .nginx and .tls links to a folder
    outside its copy: the grader removes the links and makes its own folders there, writes
    nothing where they pointed, and grades the deployment normally."""
    outside = tmp_path / "outside"
    outside.mkdir()
    project = copy_stage(9, tmp_path)
    append_to_settings(
        "import os as _os\n"
        "for _name in ('.nginx', '.tls'):\n"
        "    try:\n"
        f"        _os.symlink({str(outside)!r}, _name)\n"
        "    except OSError:\n"
        "        pass"
    )(project)
    behaviours = ("workers_share_rooms",)
    graded = grade(project, 9, tmp_path, "--behaviour", behaviours[0])
    assert list(outside.iterdir()) == [], "the grader wrote through the planted links"
    assert graded.returncode == 0, graded.report
    assert graded.results["score"] == full_marks(9, behaviours)


# Every socket these open waits 5 s for a handshake that never comes: well over 15 s.
SOCKET_BEHAVIOURS = ("ws_round_trip", "room_broadcast", "room_isolation", "bad_frames")


def test_a_run_over_its_time_limit_is_stopped_and_the_next_is_graded_normally(tmp_path):
    """Three projects graded into one report folder: a pristine one, one whose run
    overruns its time limit (stopped, every behaviour failed with the reason, nothing of
    the previous report left), then a pristine one again, graded normally."""
    behaviours = [o for b in SOCKET_BEHAVIOURS for o in ("--behaviour", b)]
    a_few = ["--behaviour", "manage_check", "--behaviour", "ws_round_trip"]
    first = grade(copy_stage(3, tmp_path, "first"), 3, tmp_path, *a_few)
    assert first.returncode == 0 and (tmp_path / "report" / "junit.xml").is_file()

    hostile = copy_stage(3, tmp_path, "hostile")
    never_accepts(hostile)
    stopped = grade(
        hostile, 3, tmp_path, *behaviours, "--time-limit", "15", timeout=15 + GRACE
    )
    assert stopped.returncode == 1, stopped.output[-2000:]
    assert "did not finish within its time limit (15 s)" in stopped.report
    assert stopped.results["score"] == 0 and stopped.results["tests"]
    assert all(
        t["status"] == "failed" and "time limit" in t["output"]
        for t in stopped.results["tests"]
    )
    assert "hostile" in stopped.report and "first" not in stopped.report
    assert not (tmp_path / "report" / "junit.xml").exists(), "a stale junit.xml"

    last = grade(copy_stage(3, tmp_path, "last"), 3, tmp_path, *a_few)
    assert last.returncode == 0, last.output[-2000:]
    assert last.results["score"] == first.results["score"] > 0


# A run that starts a process in a session of its own (as mirakuru starts Redis), stops it
# (as the consumer-style test freezes its Redis), then overruns its time limit.
LEAVES_A_STOPPED_PROCESS = """
import os, signal, subprocess, sys, time
child = subprocess.Popen(["sleep", "300"], start_new_session=True)
os.kill(child.pid, signal.SIGSTOP)
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(300)
"""


def test_a_run_stopped_at_its_time_limit_leaves_no_process_behind(tmp_path):
    """Everything a run started is killed with it, even a process in a session of its own
    that was stopped (SIGSTOP) when the time ran out."""
    pid_file = tmp_path / "pid"
    command = [sys.executable, "-c", LEAVES_A_STOPPED_PROCESS, str(pid_file)]
    reason = run_session(command, tmp_path / "session.log", time_limit=3)
    assert reason and "time limit" in reason, reason
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid), f"process {pid}, which the run started, outlived it"


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_run_is_void_when_grader_files_change_but_not_for_new_bytecode():
    """The integrity check: a changed, added or removed file of the grader voids a run
    (bytecode included, once it exists); Python's own new bytecode files, and the temporary
    files it writes them through while another run compiles, do not."""
    tools, cache = REPO / "tools", GRADER_PYCACHE
    before = {
        f"{tools}/serve.py": "a",
        f"{tools}/__pycache__/edited.cpython-311.pyc": "b",
        f"{cache}/x/old.cpython-311.pyc": "1:1",
        f"{cache}/x/mid.cpython-311.pyc.1402": "1:1",
        f"{tools}/gone.py": "c",
    }
    after = {
        f"{tools}/serve.py": "changed",
        f"{tools}/__pycache__/edited.cpython-311.pyc": "changed",
        f"{cache}/x/old.cpython-311.pyc": "1:1",
        f"{cache}/x/new.cpython-311.pyc": "2:2",
        f"{cache}/x/next.cpython-311.pyc.1403": "2:2",
        f"{tools}/__pycache__/new.cpython-311.pyc": "d",
        f"{tools}/planted.py": "e",
    }
    assert changed_files(before, after) == [
        "tools/__pycache__/edited.cpython-311.pyc",
        "tools/gone.py",
        "tools/planted.py",
        "tools/serve.py",
    ]


def test_bytecode_written_again_with_the_same_code_is_no_change(tmp_path):
    """Two runs can compile one module at once, and the second file replaces the first: the
    same code (in bytes that may differ) is no change; other code under the same header is."""
    source = tmp_path / "module.py"
    source.write_text("def double(x: int) -> int:\n    return 2 * x\n")
    pyc = tmp_path / "__pycache__" / f"module.{sys.implementation.cache_tag}.pyc"
    py_compile.compile(str(source), cfile=str(pyc))
    before, after = {str(pyc): "100:1"}, {str(pyc): "100:2"}
    assert changed_files(before, after) == []
    other_code = marshal.dumps(compile("double = None", str(source), "exec"))
    pyc.write_bytes(pyc.read_bytes()[:16] + other_code)
    assert changed_files(before, after) == [str(pyc)]


def test_bytecode_older_than_its_source_is_dropped_before_a_run(tmp_path):
    """After an edit or a `git pull` of the grader, Python rewrites its stale bytecode, which
    would void the runs beside it. So each run first deletes what is stale, in the grader's
    cache and beside the checkout's grader code (by mtime and size, or by hash as pytest
    writes it), and keeps what is current."""
    checkout, cache = tmp_path / "checkout", tmp_path / "cache"
    sources = checkout / "tools"
    sources.mkdir(parents=True)
    names = (
        "edited",
        "kept",
        "hashed",
        "hashed_kept",
        "removed",
        "beside",
        "beside_kept",
    )
    for name in names:
        (sources / f"{name}.py").write_text(f"NAME = {name!r}\n")

    def compile_to(name: str, pyc: Path, by_hash: bool = False) -> None:
        pyc.parent.mkdir(parents=True, exist_ok=True)
        mode = py_compile.PycInvalidationMode
        how = mode.CHECKED_HASH if by_hash else mode.TIMESTAMP
        py_compile.compile(str(sources / f"{name}.py"), str(pyc), invalidation_mode=how)

    in_cache = cache / sources.relative_to("/")
    for name in ("edited", "kept", "removed"):
        compile_to(name, in_cache / f"{name}.cpython-311.pyc")
    for name in ("hashed", "hashed_kept"):
        compile_to(name, in_cache / f"{name}.cpython-311-pytest-9.pyc", by_hash=True)
    for name in ("beside", "beside_kept"):
        compile_to(name, sources / "__pycache__" / f"{name}.cpython-311.pyc")
    for name in ("edited", "hashed", "beside"):
        (sources / f"{name}.py").write_text(f"NAME = '{name}, edited since'\n")
    (sources / "removed.py").unlink()

    drop_stale_bytecode(cache, checkout)

    assert sorted(path.name for path in tmp_path.rglob("*.pyc")) == [
        "beside_kept.cpython-311.pyc",
        "hashed_kept.cpython-311-pytest-9.pyc",
        "kept.cpython-311.pyc",
    ]


def test_a_file_gone_while_fingerprinted_is_skipped_only_if_python_was_writing_it(
    monkeypatch,
):
    """Another run compiling beside a grade: the temporary file Python writes bytecode
    through is listed, then renamed away before it is read. The fingerprint goes on without
    it (a class run crashed on exactly this); any other file gone between listing and
    reading is recorded as gone, so the grade's files count as changed."""
    walk = integrity.os.walk
    in_flight = "modeline.cpython-311.pyc.140539309322480"

    def listing_two_files_that_are_gone(top, *args, **kwargs):
        for root, folders, files in walk(top, *args, **kwargs):
            yield root, folders, [*files, in_flight, "gone.py"]

    monkeypatch.setattr(integrity.os, "walk", listing_two_files_that_are_gone)
    prints = fingerprint()
    assert not [path for path in prints if path.endswith(in_flight)]
    gone = [path for path in prints if path.endswith("/gone.py")]
    assert gone and {prints[path] for path in gone} == {"gone while fingerprinted"}


def room_page_that_never_finishes(project: Path) -> None:
    """A room page whose first script waits for an answer its server never sends (a request
    with async: false holds the page as a busy loop does, without burning a core)."""
    edit(
        project,
        "chat/urls.py",
        '    path("", views.index, name="index"),\n',
        '    path("", views.index, name="index"),\n'
        '    path("never-answers/", views.never_answers),\n',
    )
    views = project / "chat" / "views.py"
    views.write_text(
        views.read_text()
        + "\n\nasync def never_answers(request):\n"
        + "    import asyncio\n\n    await asyncio.sleep(3600)\n"
    )
    room_page_starting_with(
        project,
        "const request = new XMLHttpRequest();\n"
        "        request.open('GET', '/chat/never-answers/', false);\n"
        "        request.send();",
    )


def room_page_that_eats_memory(project: Path) -> None:
    """A room page whose script takes memory until its tab crashes."""
    room_page_starting_with(
        project,
        "const hoard = [];\n"
        "        while (true) { hoard.push(new Array(1e7).fill(7)); }",
    )


BROKEN_PAGES = {
    "never-finishes": (room_page_that_never_finishes, "did not load in"),
    "eats-memory": (room_page_that_eats_memory, "crashed its tab"),
}


@pytest.mark.parametrize("plant, says", BROKEN_PAGES.values(), ids=BROKEN_PAGES.keys())
def test_a_page_that_breaks_the_browser_fails_its_behaviour_and_no_other(
    tmp_path, plant, says
):
    """A room page that never finishes loading (it freezes the browser's tab) or that crashes
    its tab fails the behaviour that opens it, saying so, instead of holding the run for
    minutes; the browser is started again, so the next behaviour, on the index page,
    passes."""
    project = copy_stage(3, tmp_path)
    plant(project)
    graded = grade(
        project,
        3,
        tmp_path,
        *("--behaviour", "index_navigation", "--behaviour", "index_explains_refusal"),
        timeout=300,
    )
    broken = graded.outcome("index_navigation")
    assert broken["status"] == "failed", graded.report
    assert says in broken["output"], broken["output"]
    assert graded.outcome("index_explains_refusal")["status"] == "passed", graded.report
