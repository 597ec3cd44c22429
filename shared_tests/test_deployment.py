"""Stage 9 as deployed: nginx over TLS in front of two daphne workers that share one Redis.
Clients on different workers are one chat, a killed worker's page comes back through nginx to
the other one and loses nothing, idle sockets outlive nginx's 60 s default, and the settings
come from the environment."""

from __future__ import annotations

import time

import pytest

from shared_tests.browser import (
    chat_log_text,
    page_text,
    save_side_by_side,
    wait_until,
)
from shared_tests.chat_client import (
    chat_path,
    expect_message,
    open_socket,
    room_name,
    send_message,
)
from shared_tests.deployment import Deployment
from shared_tests.test_browser_reconnect import wait_until_back
from shared_tests.test_browser_room import (
    close_windows,
    open_room,
    type_message,
    wait_for_log,
)
from shared_tests.test_presence import wait_for_presence
from shared_tests.visitor import named_visitor, unique_name

IDLE_PAST = 65  # seconds: longer than nginx's default proxy_read_timeout (60 s)


def one_socket_per_worker(deployment: Deployment, room: str, cookies=()):
    """Sockets opened through nginx in `room` until each worker has one (round-robin takes
    turns, so two tries usually do): {worker: socket}. The other sockets are closed."""
    by_worker, spare, unknown = {}, [], 0
    for _ in range(4 * len(deployment.workers)):
        cookie = cookies[len(by_worker)] if cookies else ""
        socket, worker = deployment.socket_and_worker(room, cookie)
        if worker is None or worker in by_worker:
            unknown += worker is None
            spare.append(socket)
        else:
            by_worker[worker] = socket
        if len(by_worker) == len(deployment.workers):
            break
    for socket in spare:
        socket.close()
    assert len(by_worker) == len(deployment.workers), (
        f"nginx sent {len(by_worker) + len(spare)} sockets to {len(by_worker)} of "
        f"{len(deployment.workers)} workers: the upstream should take turns (round-robin)"
        + (f"; {unknown} of them {UNKNOWN_WORKER}" if unknown else "")
    )
    return by_worker


# Why worker_of could not tell which worker took a socket.
UNKNOWN_WORKER = (
    "came with no new connection from nginx to exactly one worker (stage 9's tests need "
    "a new upstream connection per socket: no `keepalive` in the upstream)"
)


@pytest.mark.behaviour("workers_share_rooms")
def test_clients_on_different_workers_talk_to_each_other(deployment, stage):
    """Two sockets that nginx sent to two different workers: what one says, the other
    hears (the workers share the Redis channel layer), both ways."""
    room = room_name("workers")
    first, second = one_socket_per_worker(deployment, room).values()
    with first, second:
        for sender, receiver, text in (
            (first, second, "from the first worker"),
            (second, first, "from the second worker"),
        ):
            send_message(sender, text)
            expect_message(receiver, text, "a socket on the other worker")
            expect_message(sender, text, "the sender (the room includes it)")


@pytest.mark.behaviour("presence_across_workers")
def test_presence_lists_people_on_every_worker(deployment, stage):
    """Alice on one worker and Bob on the other both see both names."""
    alice, bob = unique_name("alice"), unique_name("bob")
    cookies = [named_visitor(deployment, n).cookie_header for n in (alice, bob)]
    room = room_name("presence")
    first, second = one_socket_per_worker(deployment, room, cookies).values()
    with first, second:
        for number, socket in enumerate((first, second), 1):
            wait_for_presence(socket, [alice, bob], f"the socket on worker {number}")


@pytest.mark.behaviour("browser_through_proxy")
def test_the_chat_works_in_a_browser_over_https(browser, deployment, stage):
    """Through nginx the room page is https://, its socket wss://, the admin's stylesheet
    comes from collectstatic (nginx serves it) and a message goes round."""
    handle = open_room(browser, deployment, room_name("https"))
    try:
        url = browser.execute_script("return window.__sockets[0].url")
        assert url.startswith("wss://"), f"the https:// page opened its socket at {url}"
        type_message(browser, handle, "over TLS")
        wait_until(
            browser,
            lambda d: "over TLS" in (chat_log_text(d) or ""),
            "a message sent through nginx did not come back to the page",
        )
        css = deployment.get("/static/admin/css/base.css")
        assert css.status == 200, (
            f"nginx answered HTTP {css.status} for /static/admin/css/base.css: run "
            "collectstatic into STATIC_ROOT and point the /static/ location at it"
        )
    finally:
        close_windows(browser, [handle])


@pytest.mark.behaviour("settings_from_environment")
def test_debug_is_off_and_the_hosts_come_from_the_environment(deployment, stage):
    """Behind nginx a missing page shows no debug page; and a worker started with
    DJANGO_ALLOWED_HOSTS naming another host refuses 127.0.0.1 (HTTP 400)."""
    missing = deployment.get("/no-such-page/")
    assert missing.status == 404, f"/no-such-page/ answered HTTP {missing.status}"
    assert "URLconf" not in missing.text and "DEBUG = True" not in missing.text, (
        "a missing page shows Django's debug page: DEBUG must be off unless DJANGO_DEBUG=1"
    )
    elsewhere = deployment.stage.start_server(
        deployment.stage.redis_url,
        "other-host",
        extra_env={"DJANGO_ALLOWED_HOSTS": "chat.example.com"},
    )
    try:
        page = elsewhere.get("/chat/")
        assert page.status == 400, (
            "with DJANGO_ALLOWED_HOSTS=chat.example.com, a request for 127.0.0.1 answered "
            f"HTTP {page.status}: ALLOWED_HOSTS should come from DJANGO_ALLOWED_HOSTS"
        )
    finally:
        deployment.stage.stop_server(elsewhere)


def page_not_on(browser, deployment: Deployment, room: str, spared):
    """A room page whose socket is on another worker than `spared` (the idle test's, which
    must live on): (window handle, its worker)."""
    unknown = 0
    for _ in range(4 * len(deployment.workers)):
        before = deployment.before_socket(room)
        handle = open_room(browser, deployment, room)
        worker = deployment.worker_of(before, tie_break_by_log=True)
        if worker is not None and worker is not spared:
            return handle, worker
        unknown += worker is None
        close_windows(browser, [handle])
        deployment.get("/chat/")  # one more request moves round-robin's turn along
    raise AssertionError(
        "nginx sent every page to the same worker (round-robin?)"
        + (f"; {unknown} of the pages' sockets {UNKNOWN_WORKER}" if unknown else "")
    )


@pytest.mark.behaviour("worker_failover")
def test_a_killed_workers_page_comes_back_on_the_other_and_loses_nothing(
    browser, deployment, stage, screenshot_path
):
    """A page's worker is killed mid-conversation: the page is online again through nginx
    (on the other worker) within 5 s; what the other side said meanwhile shows up, and what
    the page typed while offline arrives, each once."""
    room = room_name("failover")
    handle, victim = page_not_on(browser, deployment, room, deployment.idle_worker)
    survivor = next(w for w in deployment.workers if w is not victim)
    # A socket straight to the surviving worker: the other side of the conversation.
    other = open_socket(survivor, chat_path(room)).__enter__()
    number = deployment.workers.index(victim) + 1
    try:
        send_message(other, "before the crash")
        expect_message(other, "before the crash", "the sender (the room includes it)")
        wait_until(
            browser,
            lambda d: "before the crash" in (chat_log_text(d) or ""),
            "the page did not get a message from the other worker",
        )
        deployment.kill_worker(victim)
        send_message(other, "while you were away")
        expect_message(other, "while you were away", "the sender")
        # Typed once the page knows its socket is gone (one typed into a socket that is
        # dying but not yet closed is lost in any chat: see the stage page).
        wait_until(
            browser,
            lambda d: d.execute_script("return window.__sockets[0].readyState === 3"),
            "the page's socket stayed open although its worker was killed",
        )
        type_message(browser, handle, "typed during the outage")
        wait_until_back(browser, "its worker's death (through nginx)")
        wait_for_log(
            browser, handle, "while you were away", "the page once it was back"
        )
        expect_message(other, "typed during the outage", "the other worker's socket")
        # The page's own copy comes back through Redis and nginx a moment after the other
        # socket's: wait for it before counting.
        wait_for_log(
            browser, handle, "typed during the outage", "the page that typed it"
        )
        text = chat_log_text(browser) or ""
        for said in (
            "before the crash",
            "while you were away",
            "typed during the outage",
        ):
            assert text.count(said) == 1, f"{said!r} shows {text.count(said)} times"
        assert "online" in page_text(browser).lower(), (
            "the page does not say it is online"
        )
        save_side_by_side(
            browser,
            [handle],
            ["The page, after its worker was killed"],
            screenshot_path(f"stage{stage}-failover.png"),
        )
    finally:
        other.close()
        close_windows(browser, [handle])
        deployment.start_worker(number, port=victim.port)


@pytest.mark.behaviour("idle_through_proxy")
def test_an_idle_socket_outlives_nginxs_default_timeout(deployment, stage):
    """A socket opened through nginx when the deployment started, idle for over 65 s, is
    still open and receives the next message (daphne's pings keep nginx from cutting it)."""
    assert deployment.idle_socket is not None, (
        f"the idle socket could not connect through nginx ({deployment.idle_refusal})"
    )
    time.sleep(max(0.0, deployment.idle_since + IDLE_PAST - time.monotonic()))
    socket = deployment.idle_socket
    with open_socket(deployment, chat_path(deployment.idle_room)) as speaker:
        send_message(speaker, "still there?")
        expect_message(
            socket, "still there?", f"a socket idle for {IDLE_PAST} s behind nginx"
        )
    socket.close()
