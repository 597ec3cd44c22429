"""Stage 8 in a real browser: the room page survives its server being killed and restarted on
the same port, and Redis going away; it backs off while the server is down, keeps what is
typed offline, and shows no message twice."""

import time

import pytest

from shared_tests.browser import (
    chat_log_text,
    new_window,
    page_text,
    save_side_by_side,
    wait_for_open_socket,
    wait_until,
)
from shared_tests.chat_client import room_name, room_page_path
from shared_tests.test_browser_room import (
    close_windows,
    open_room,
    type_message,
    wait_for_log,
)

BACK_WITHIN = (
    5  # seconds from the server (or Redis) being back to the page being online
)
DOWN_FOR = 7  # seconds the server stays down in the backoff test
JITTER_WATCH = (
    4.5  # seconds to watch a page retry: three tries even at the longest waits
)


def open_sockets(browser) -> int:
    return browser.execute_script(
        "return window.__sockets.filter(s => s.readyState === 1).length"
    )


def wait_until_offline(browser) -> None:
    wait_until(
        browser,
        lambda d: open_sockets(d) == 0,
        "the page's socket stayed open although its server was killed",
    )


def wait_until_back(browser, what: str) -> None:
    """Connected again within the bound, and the page says so (its state reads "online")."""
    wait_until(
        browser,
        lambda d: open_sockets(d) == 1,
        f"the page did not reconnect within {BACK_WITHIN} s of {what}",
        timeout=BACK_WITHIN,
    )
    wait_until(
        browser,
        lambda d: "online" in page_text(d).lower(),
        "the page reconnected but does not say it is online again",
    )


def times_shown(browser, text: str) -> int:
    return (chat_log_text(browser) or "").count(text)


@pytest.fixture
def restartable(stage_project):
    """A server of the stage of its own, which the test kills and restarts on its port."""
    servers = [stage_project.start_server(stage_project.redis_url, "restarted")]

    def stop(kill: bool) -> int:
        """Stop the running server (`kill`: at once); its port, to start it again on."""
        stage_project.stop_server(servers[-1], kill=kill)
        port = servers[-1].port
        servers.append(None)  # down
        return port

    def start_again(port: int) -> None:
        servers[-1] = stage_project.start_server(
            stage_project.redis_url, "restarted", port=port
        )

    # The first server: a restarted one listens on its port, so its addresses still hold.
    yield servers[0], stop, start_again
    if servers[-1] is not None:
        stage_project.stop_server(servers[-1])


@pytest.mark.behaviour("reconnects")
def test_the_page_comes_back_after_a_restart_with_no_message_twice(
    browser, restartable
):
    """Kill the server, start it again on its port: the page is online again within 5 s,
    its log still shows each message once (the history is sent again on reconnect), and the
    new socket chats."""
    server, kill, start_again = restartable
    handle = open_room(browser, server, room_name("restart"))
    try:
        type_message(browser, handle, "before the restart")
        wait_for_log(browser, handle, "before the restart", "the page")
        port = kill(True)
        wait_until_offline(browser)
        start_again(port)
        wait_until_back(browser, "its server restarting")
        type_message(browser, handle, "after the restart")
        wait_for_log(browser, handle, "after the restart", "the reconnected page")
        assert times_shown(browser, "before the restart") == 1, (
            "after reconnecting the page shows a message twice:\n"
            + chat_log_text(browser)
        )
    finally:
        close_windows(browser, [handle])


@pytest.mark.behaviour("reconnects")
def test_the_page_comes_back_after_a_redis_outage(browser, stage_project, own_redis):
    """Redis stops (the server closes the page's socket, code 4503) and starts again: the
    page is online again within 5 s and chats."""
    server = stage_project.start_server(own_redis.url(0), "redis-outage")
    handle = open_room(browser, server, room_name("outage"))
    try:
        own_redis.stop()
        wait_until_offline(browser)
        own_redis.start()
        wait_until_back(browser, "Redis coming back")
        type_message(browser, handle, "after the outage")
        wait_for_log(browser, handle, "after the outage", "the reconnected page")
    finally:
        close_windows(browser, [handle])
        stage_project.stop_server(server)


@pytest.mark.behaviour("backoff")
def test_the_page_waits_longer_after_each_failed_try(browser, restartable):
    """With the server down for 7 s, the page's tries come further and further apart: no
    tight loop that would hammer a restarting server (and its neighbours)."""
    server, kill, start_again = restartable
    handle = open_room(browser, server, room_name("backoff"))
    try:
        port = kill(True)
        wait_until_offline(browser)
        started = browser.execute_script("return performance.now()")
        browser.execute_script(
            f"return new Promise(r => setTimeout(r, {DOWN_FOR * 1000}))"
        )
        times = browser.execute_script("return window.__socketTimes")
        tries = [t for t in times if t >= started]
        gaps = [(b - a) / 1000 for a, b in zip(tries, tries[1:], strict=False)]
        start_again(port)
        assert len(tries) <= 10, (
            f"the page tried {len(tries)} times in {DOWN_FOR} s: a tight loop, not backoff"
        )
        assert gaps and max(gaps[-2:]) >= 1.5, (
            f"the waits between tries did not grow (seconds: {[round(g, 2) for g in gaps]})"
        )
    finally:
        close_windows(browser, [handle])


def waits_after_a_kill(browser, restartable, room, random_value: float) -> list[float]:
    """The waits (s) between a page's first retries after its server is killed, with the
    page's Math.random() fixed at `random_value`; the server is running again after."""
    server, kill, start_again = restartable
    handle = new_window(browser)
    fixed = f"Math.random = () => {random_value};"
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": fixed})
    try:
        browser.get(server.http_url(room_page_path(room)))
        wait_for_open_socket(browser)
        killed_at = browser.execute_script("return performance.now()")
        port = kill(True)
        wait_until_offline(browser)
        # A window to watch the page in, not a wait for a state.
        time.sleep(JITTER_WATCH)
        times = browser.execute_script("return window.__socketTimes")
        start_again(port)
        wait_until_back(browser, "its server restarting")
    finally:
        close_windows(browser, [handle])
    tries = [t / 1000 for t in times if t >= killed_at]
    return [b - a for a, b in zip(tries, tries[1:], strict=False)]


@pytest.mark.behaviour("backoff")
def test_the_waits_have_a_random_part(browser, restartable):
    """The same page, killed twice: once with Math.random() always 0, once always 0.999.
    With jitter its waits differ; without it every page of a restarted server retries at
    the same instants (a thundering herd)."""
    room = room_name("jitter")
    low = waits_after_a_kill(browser, restartable, room, 0)
    high = waits_after_a_kill(browser, restartable, room, 0.999)
    assert len(low) >= 2 and len(high) >= 2, (
        f"too few retries to compare in {JITTER_WATCH} s: {low}, {high}"
    )
    assert sum(high[:2]) >= 1.25 * sum(low[:2]), (
        "the page waits as long whatever Math.random() says (seconds: "
        f"{[round(g, 2) for g in low[:2]]} and {[round(g, 2) for g in high[:2]]}): add a "
        "random part to each wait"
    )


@pytest.mark.behaviour("offline_queue")
def test_a_message_typed_offline_waits_on_the_page_and_is_sent_once(
    browser, restartable, stage, screenshot_path
):
    """Typed while the server is down, a message shows on the page as waiting (not in the
    log); once the page is back it is sent, and the log shows it exactly once."""
    server, kill, start_again = restartable
    handle = open_room(browser, server, room_name("offline"))
    try:
        port = kill(True)
        wait_until_offline(browser)
        type_message(browser, handle, "typed while offline")
        assert "typed while offline" in page_text(browser), (
            "a message typed offline vanished: the page should show it as waiting"
        )
        assert times_shown(browser, "typed while offline") == 0
        save_side_by_side(
            browser,
            [handle],
            [
                f"Stage {stage}: the server is down; the page retries and keeps the message"
            ],
            screenshot_path(f"stage{stage}-offline.png"),
        )
        start_again(port)
        wait_until_back(browser, "its server restarting")
        wait_for_log(browser, handle, "typed while offline", "the page, once online")
        wait_until(
            browser,
            lambda d: (
                "typed while offline"
                not in page_text(d).replace(chat_log_text(d) or "", "")
            ),
            "the message stayed in the waiting list after it was sent",
        )
        assert times_shown(browser, "typed while offline") == 1, chat_log_text(browser)
    finally:
        close_windows(browser, [handle])


@pytest.mark.behaviour("secure_socket")
def test_an_https_page_opens_a_wss_socket(browser, stage_project, tmp_path):
    """Served over TLS (a self-signed certificate made for the test), the room page's
    socket goes to wss:// and connects: a hard-coded ws:// is refused by the browser."""
    tls, _ = stage_project.write_tls(f"tls-{tmp_path.name}")
    server = stage_project.start_server(stage_project.redis_url, "https", tls=tls)
    handle = new_window(browser)
    try:
        browser.get(server.http_url(room_page_path(room_name("secure"))))
        wait_until(
            browser,
            lambda d: d.execute_script("return window.__sockets.length") > 0,
            "the https:// room page opened no socket",
        )
        url = browser.execute_script("return window.__sockets[0].url")
        assert url.startswith("wss://"), f"the https:// page opened its socket at {url}"
        wait_for_open_socket(browser)
    finally:
        close_windows(browser, [handle])
        stage_project.stop_server(server)
