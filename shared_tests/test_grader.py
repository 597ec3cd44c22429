"""The grader (`make grade`, `make check`) on real projects: pristine stages, a project written
like the official tutorial, planted student mistakes, and folders that are not projects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared_tests.graded_projects import (
    TUTORIAL_PROJECT,
    append_to_settings,
    copy_stage,
    edit,
    grade,
    room_page_starting_with,
    snapshot,
    take_file,
)
from tools.course import REPO, load_course
from tools.grading.harness import RunOptions, grade_project
from tools.grading.project import find_project

pytestmark = pytest.mark.repository
COURSE = load_course()


# ---------------------------------------------------------------------------- real projects
def test_pristine_stage_gets_full_marks_through_make_and_is_left_untouched(tmp_path):
    """`make grade STEP=3 DIR="<path with spaces>"` gives full marks (core and robustness)
    in the sandbox, writes its reports into grade-report/<folder name>/ and names all three,
    and writes nothing into the graded folder."""
    project = copy_stage(3, tmp_path, "my project")
    before = snapshot(project)
    report_dir = tmp_path / "report"
    result = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "grade",
            "STEP=3",
            f"DIR={project}",
            "STRICT=1",
        ],
        cwd=REPO,
        env={**os.environ, "MAKEFLAGS": "", "MAKELEVEL": ""},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    reports = REPO / "grade-report" / "my project"
    results = json.loads((reports / "results.json").read_text())
    assert results["score"] == results["max_score"] > 0
    for name in ("report.txt", "results.json", "junit.xml"):
        assert str(reports / name) in result.stdout, f"make grade does not name {name}"
    assert "score: " in result.stdout and "FAIL" not in result.stdout
    assert "Sandbox: bubblewrap" in result.stdout
    assert snapshot(project) == before, "grading wrote into the student's folder"
    assert not report_dir.exists()


@pytest.mark.parametrize("tool", ["tools.grading.grade", "tools.grading.class_grading"])
def test_an_unknown_behaviour_is_one_line_not_a_traceback(tmp_path, tool):
    """A mistyped --behaviour is named in one line (exit 2) before anything is graded."""
    folder = "--project" if tool.endswith(".grade") else "--submissions"
    result = subprocess.run(
        [sys.executable, "-m", tool, folder, str(tmp_path), "--stage", "3"]
        + ["--behaviour", "nope"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "course.toml has no behaviour 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_tutorial_project_gets_full_core_marks(tmp_path):
    """A project that follows the official tutorial to the letter (package `chatsite`, Redis
    hard-coded at 127.0.0.1:6379) gets every core point at stage 4."""
    graded = grade(TUTORIAL_PROJECT, 4, tmp_path, "--kind", "core")
    core_points = sum(
        b.points for b in COURSE.behaviours if b.kind == "core" and b.checked_at(4)
    )
    assert graded.returncode == 0, graded.output[-3000:]
    assert graded.results["score"] == graded.results["max_score"] == core_points


def test_tutorial_project_fails_robustness_when_strict(tmp_path):
    """With STRICT=1 the same project fails the beyond-the-tutorial behaviours, named."""
    graded = grade(
        TUTORIAL_PROJECT,
        4,
        tmp_path,
        "--strict",
        "--behaviour",
        "bad_frames",
        "--behaviour",
        "unicode_room_names",
    )
    assert graded.returncode == 1
    assert graded.outcome("bad_frames")["status"] == "failed"
    assert graded.outcome("unicode_room_names")["status"] == "failed"
    assert "Hint:" in graded.outcome("bad_frames")["output"]


def test_an_alert_is_clicked_away_as_a_person_would(tmp_path):
    """A room page that greets with alert() is graded on what it does: the browser clicks
    the alert away (OK), and the chat in the browser works."""
    project = copy_stage(3, tmp_path)
    room_page_starting_with(project, "alert('Welcome to the room!');")
    graded = grade(project, 3, tmp_path, "--behaviour", "browser_chat")
    assert graded.outcome("browser_chat")["status"] == "passed", graded.report


def test_requirements_txt_is_ignored_and_the_report_says_so(tmp_path):
    project = copy_stage(1, tmp_path)
    (project / "requirements.txt").write_text("Django==3.1\nchannels==3.0.0\n")
    graded = grade(project, 1, tmp_path, "--behaviour", "manage_check")
    assert graded.returncode == 0, graded.output[-2000:]
    assert "requirements.txt is ignored" in graded.output


@pytest.mark.parametrize(
    "stage", [1, 2, 3, 4, 6, 7, 8], ids=lambda n: f"stage{n}-as-stage{n + 1}"
)
def test_a_stage_does_not_pass_the_next_stage(tmp_path, stage):
    """Each stage folder, graded as the next stage on that lesson's core behaviours, fails.
    (Its browser behaviours are left out for speed where WebSocket tests check the same
    lesson: a browser behaviour's failure there waits for the page, which costs a minute.)"""
    lesson = [
        b
        for b in COURSE.behaviours
        if b.kind == "core"
        and b.checked_at(stage + 1)
        and b.expected_at(stage) != b.expected_at(stage + 1)
    ]
    lesson = [b.id for b in lesson if not b.browser] or [b.id for b in lesson]
    options = [option for behaviour in lesson for option in ("--behaviour", behaviour)]
    graded = grade(COURSE.stage(stage).path, stage + 1, tmp_path, *options)
    assert graded.returncode == 1, (
        f"stage {stage} passed stage {stage + 1}'s lesson {lesson}"
    )
    assert graded.results["score"] < graded.results["max_score"]


# ---------------------------------------------------------------------------- planted mistakes
@dataclass
class Mistake:
    stage: int
    fails: str  # the behaviour the grader must name
    plant: object  # function(project) -> None
    strict: bool = False
    cause: str = ""  # what the report must quote from the server's log


MISTAKES = {
    "stage4-consumer-only-echoes": Mistake(
        4, "room_broadcast", lambda p: take_file(p, "chat/consumers.py", from_stage=3)
    ),
    "stage4-in-memory-layer": Mistake(
        4,
        "cross_process",
        lambda p: edit(
            p,
            "mysite/settings.py",
            '"channels_redis.core.RedisChannelLayer"',
            '"channels.layers.InMemoryChannelLayer"',
        ),
    ),
    "stage5-consumer-still-sync": Mistake(
        5, "consumer_style", lambda p: take_file(p, "chat/consumers.py", from_stage=4)
    ),
    "one-group-for-all-rooms": Mistake(
        4,
        "room_isolation",
        lambda p: edit(
            p, "chat/consumers.py", 'f"chat_{room_hash}"', '"chat_all_rooms"'
        ),
    ),
    "origin-validator-removed": Mistake(
        3,
        "origin_check",
        lambda p: edit(
            p,
            "mysite/asgi.py",
            "AllowedHostsOriginValidator(\n            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))\n        )",
            "AuthMiddlewareStack(URLRouter(websocket_urlpatterns))",
        ),
    ),
    "index-without-submit-button": Mistake(
        2,
        "index_page",
        lambda p: edit(
            p,
            "chat/templates/chat/index.html",
            '<input id="room-name-submit" type="button" value="Enter">',
            "",
        ),
    ),
    "daphne-not-installed-app": Mistake(
        1,
        "runserver_daphne",
        lambda p: edit(p, "mysite/settings.py", '    "daphne",\n', ""),
    ),
    "room-name-not-in-json-script": Mistake(
        3,
        "room_page",
        lambda p: edit(
            p,
            "chat/templates/chat/room.html",
            '{{ room_name|json_script:"room-name" }}',
            "<script>const roomNameHere = '{{ room_name }}';</script>",
        ),
    ),
    "enter-key-not-wired": Mistake(
        3,
        "browser_chat",
        lambda p: edit(
            p,
            "chat/templates/chat/room.html",
            "if (e.key === 'Enter') {",
            "if (false) {",
        ),
    ),
    "tutorial-receive-without-error-handling": Mistake(
        3,
        "bad_frames",
        lambda p: (
            take_file(p, "chat/consumers.py", from_stage=3)
            or (p / "chat" / "consumers.py").write_text(
                (TUTORIAL_PROJECT / "chat" / "consumers.py").read_text()
            )
        ),
        strict=True,
    ),
    # Mistakes students make typing a stage from the docs.
    "typed-disconnect-without-group-discard": Mistake(
        4,
        "leaves_group",
        lambda p: edit(
            p,
            "chat/consumers.py",
            "        async_to_sync(self.channel_layer.group_discard)(\n"
            "            self.room_group_name, self.channel_name\n"
            "        )\n",
            "        pass\n",
        ),
    ),
    "typed-settings-without-chat-app": Mistake(
        2,
        "index_page",
        lambda p: edit(p, "mysite/settings.py", '    "chat",\n', ""),
        cause="TemplateDoesNotExist: chat/index.html",
    ),
    "typed-route-without-as-asgi": Mistake(
        3,
        "ws_round_trip",
        lambda p: edit(
            p,
            "chat/routing.py",
            "consumers.ChatConsumer.as_asgi()",
            "consumers.ChatConsumer",
        ),
    ),
    "typed-room-page-with-a-wrong-id": Mistake(
        3,
        "room_page",
        lambda p: edit(
            p, "chat/templates/chat/room.html", 'id="chat-log"', 'id="chat_log"'
        ),
    ),
    "typed-socket-url-without-trailing-slash": Mistake(
        3,
        "browser_chat",
        lambda p: edit(
            p,
            "chat/templates/chat/room.html",
            "            + '/'\n        );",
            "        );",
        ),
        cause="ValueError: No route found for path",
    ),
    "typed-send-without-json-dumps": Mistake(
        3,
        "ws_round_trip",
        lambda p: edit(
            p,
            "chat/consumers.py",
            'self.send(text_data=json.dumps({"message": message}))',
            'self.send(text_data={"message": message})',
        ),
    ),
    # Stage 7: names and history.
    "history-from-every-room": Mistake(
        7,
        "history_on_join",
        lambda p: edit(
            p,
            "chat/consumers.py",
            "Message.objects.filter(room=self.room_name)",
            "Message.objects.all()",
        ),
    ),
    "author-taken-from-the-frame": Mistake(
        7,
        "author_not_spoofable",
        lambda p: edit(
            p,
            "chat/consumers.py",
            "author=self.author,",
            'author=json.loads(text_data).get("author", self.author),',
        ),
    ),
    "history-sent-after-live-messages": Mistake(
        7,
        "history_on_join",
        lambda p: edit(
            p,
            "chat/consumers.py",
            "        await self.accept()\n        await self.send_history()\n",
            "        await self.accept()\n        self.last_history_id = 0\n"
            "        # Do not hold up the connection: send the history a moment later.\n"
            "        __import__('asyncio').get_running_loop().call_later(\n"
            "            0.5, __import__('asyncio').ensure_future, self.send_history()\n"
            "        )\n",
        ),
    ),
    "sync-orm-call-in-the-async-consumer": Mistake(
        7,
        "author_from_server",
        lambda p: edit(
            p,
            "chat/consumers.py",
            "await Message.objects.acreate(",
            "Message.objects.create(",
        ),
        cause="SynchronousOnlyOperation",
    ),
    "sync-orm-call-allowed-with-async-unsafe": Mistake(
        7,
        "database_not_blocking",
        lambda p: (
            edit(
                p,
                "chat/consumers.py",
                "await Message.objects.acreate(",
                "Message.objects.create(",
            ),
            append_to_settings('os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"')(p),
        ),
    ),
    # Stage 8: presence and reconnect.
    "presence-never-removed": Mistake(
        8,
        "presence_list",
        lambda p: (
            edit(p, "chat/presence.py", "EXPIRY = 3 * HEARTBEAT", "EXPIRY = 3600"),
            edit(
                p,
                "chat/consumers.py",
                "await presence.leave(self.room_hash, self.channel_name, self.author)",
                "pass",
            ),
        ),
    ),
    "reconnect-without-backoff": Mistake(
        8,
        "backoff",
        lambda p: edit(
            p,
            "chat/templates/chat/room.html",
            "setTimeout(connect, delay);",
            "setTimeout(connect, 100);",
        ),
    ),
    "reconnect-without-jitter": Mistake(
        8,
        "backoff",
        lambda p: edit(
            p,
            "chat/templates/chat/room.html",
            "const delay = longest / 2 + Math.random() * longest / 2;",
            "const delay = longest;",
        ),
    ),
    "socket-scheme-hard-coded": Mistake(
        8,
        "secure_socket",
        lambda p: edit(
            p,
            "chat/templates/chat/room.html",
            "(window.location.protocol === 'https:' ? 'wss://' : 'ws://')",
            "'ws://'",
        ),
    ),
    "nginx-without-upgrade-headers": Mistake(
        9,
        "workers_share_rooms",
        lambda p: (
            edit(
                p,
                "deploy/nginx.conf.template",
                "proxy_set_header Upgrade $http_upgrade;",
                "",
            ),
            edit(
                p,
                "deploy/nginx.conf.template",
                "proxy_set_header Connection $connection_upgrade;",
                "",
            ),
        ),
    ),
    "in-memory-layer-with-two-workers": Mistake(
        9,
        "workers_share_rooms",
        lambda p: edit(
            p,
            "mysite/settings.py",
            '"channels_redis.core.RedisChannelLayer"',
            '"channels.layers.InMemoryChannelLayer"',
        ),
    ),
    "idle-timeout-shorter-than-the-ping": Mistake(
        9,
        "idle_through_proxy",
        lambda p: edit(
            p,
            "deploy/nginx.conf.template",
            "proxy_read_timeout 300s;",
            "proxy_read_timeout 10s;",
        ),
    ),
    "duplicates-after-reconnect": Mistake(
        8,
        "reconnects",
        lambda p: edit(
            p,
            "chat/templates/chat/room.html",
            "if (shownIds.has(data.id)) {",
            "if (false) {",
        ),
    ),
    "default-capacity-drops-messages": Mistake(
        4,
        "burst_no_loss",
        lambda p: edit(p, "mysite/settings.py", '"capacity": 5000,', ""),
        strict=True,
    ),
}


@pytest.mark.parametrize("mistake", MISTAKES.values(), ids=MISTAKES.keys())
def test_grading_names_a_planted_mistake(tmp_path, mistake):
    """A stage with one typical student mistake fails grading, naming the right behaviour
    with a one-line reason and a hint into the docs."""
    project = copy_stage(mistake.stage, tmp_path)
    mistake.plant(project)
    options = ["--behaviour", mistake.fails] + (["--strict"] if mistake.strict else [])
    graded = grade(project, mistake.stage, tmp_path, *options)
    assert graded.returncode == 1, (
        f"grading passed despite the mistake:\n{graded.output[-3000:]}"
    )
    outcome = graded.outcome(mistake.fails)
    assert outcome["status"] == "failed", outcome
    assert "Hint: " in outcome["output"] and "Read: docs/en/" in outcome["output"]
    assert "FAIL" in graded.output and "hint:" in graded.output
    if mistake.cause:
        cause = outcome["output"].partition("Cause (the server's log): ")[2]
        assert mistake.cause in cause, outcome["output"]


# ---------------------------------------------------------------------------- unusable folders
def settings_crash(project: Path) -> None:
    with open(project / "mysite" / "settings.py", "a") as settings:
        settings.write('\nraise RuntimeError("settings exploded")\n')


def import_error(project: Path) -> None:
    edit(
        project,
        "chat/consumers.py",
        "import json\n",
        "import json\nimport no_such_module\n",
    )


@pytest.mark.parametrize(
    "make_folder, expected",
    [
        (lambda tmp: tmp / "nowhere", "no such folder"),
        (
            lambda tmp: (tmp / "a-file.txt").write_text("hi") and tmp / "a-file.txt",
            "is a file",
        ),
        (
            lambda tmp: copy_stage(1, tmp / "outer") and tmp / "outer",
            "Did you mean DIR=",
        ),
        (
            lambda tmp: (
                (tmp / "fake").mkdir()
                or (tmp / "fake" / "manage.py").write_text("print('hello')\n")
                and tmp / "fake"
            ),
            "does not set DJANGO_SETTINGS_MODULE",
        ),
        (
            lambda tmp: settings_crash(copy_stage(3, tmp)) or tmp / "student",
            "its settings raised RuntimeError: settings exploded (mysite/settings.py:",
        ),
        (
            lambda tmp: import_error(copy_stage(3, tmp)) or tmp / "student",
            "No module named 'no_such_module' (chat/consumers.py:3)",
        ),
    ],
    ids=[
        "missing",
        "a-file",
        "no-manage-py",
        "not-django",
        "settings-crash",
        "import-error",
    ],
)
def test_unusable_folder_gets_a_clear_report(tmp_path, make_folder, expected):
    """A wrong DIR gives one line that names the problem (no traceback), exit code 2, and a
    results.json scoring 0 with that line."""
    folder = make_folder(tmp_path)
    graded = grade(folder, 3, tmp_path)
    assert graded.returncode == 2, graded.output
    assert expected in graded.output
    assert "Traceback" not in graded.output
    assert graded.results["score"] == 0 and expected in graded.results["output"]


def test_make_check_says_how_far_the_tutorial_project_gets(tmp_path):
    """`make check` runs the stages in order: the tutorial's stage-4 project passes 1-4,
    is "not yet" at stage 5 (its consumer is still sync, and the hint says what to do),
    counts its failing robustness checks with the command that shows them, and exits 0:
    a student at stage 4 has not failed anything."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.grading.grade",
            "--check",
            "--project",
            str(TUTORIAL_PROJECT),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for number in (1, 2, 3, 4):
        assert f"stage {number}  passed" in result.stdout, result.stdout
    assert "stage 5  not yet" in result.stdout
    assert "AsyncWebsocketConsumer" in result.stdout  # the hint
    last = COURSE.stages[-1].number
    assert f"You are at stage 4 of {last}. Next: docs/en/step5-async-consumer.md" in (
        result.stdout
    )
    assert "robustness checks fail" in result.stdout and "STRICT=1" in result.stdout


def test_make_check_skips_the_stages_after_the_first_one_not_reached(tmp_path):
    """`make check` runs the behaviours in the order of the stage that settles them: a
    stage-2 project fails the room page (stage 3), so a stage-5 behaviour is not waited for
    but reported as not checked; the stage-2 behaviours ran and pass."""
    project = find_project(copy_stage(2, tmp_path))
    options = RunOptions(
        stage=load_course().stages[-1].number,
        behaviours=("consumer_style", "room_page", "index_page"),
        stop_at_unreached_stage=True,
    )
    run = grade_project(project, options, tmp_path / "report")
    status = {test["behaviour"]: test for test in run.results["tests"]}
    assert status["index_page"]["status"] == "passed", status["index_page"]
    assert status["room_page"]["status"] == "failed", status["room_page"]
    skipped = status["consumer_style"]
    assert skipped["status"] == "skipped", skipped
    assert "not checked: stage 3 is not reached yet" in skipped["output"], skipped


def make_check(project: Path, *variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", "--no-print-directory", "check", f"DIR={project}", *variables],
        cwd=REPO,
        env={**os.environ, "MAKEFLAGS": "", "MAKELEVEL": ""},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_make_check_exits_0_with_no_make_error_unless_until_is_not_reached(tmp_path):
    """A stage-1 project checked up to stage 1 exits 0 and prints no make error line; up
    to stage 2 it exits 1 and says stage 2 is not reached."""
    project = copy_stage(1, tmp_path)
    reached = make_check(project, "UNTIL=1")
    assert reached.returncode == 0, reached.stdout + reached.stderr
    assert (
        f"You are at stage 1 of {COURSE.stages[-1].number}. Next: "
        "docs/en/step2-index-page.md" in reached.stdout
    )
    assert "make: ***" not in reached.stdout + reached.stderr
    short = make_check(project, "UNTIL=2")
    assert short.returncode != 0
    assert "Stage 2 is not reached yet (UNTIL=2)." in short.stdout
