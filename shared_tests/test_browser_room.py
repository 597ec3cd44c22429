"""The room page in a real browser: two windows in one room and a third in another."""

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from shared_tests.browser import (
    chat_log_text,
    new_window,
    page_text,
    save_side_by_side,
    wait_for_open_socket,
    wait_until,
)
from shared_tests.chat_client import room_name, room_page_path

MARKUP = "Hi <b>everyone</b>!"
CLOSED_WORDS = ("closed", "disconnected", "lost", "offline", "reconnect")


def open_room(driver, server, room) -> str:
    handle = new_window(driver)
    driver.get(server.http_url(room_page_path(room)))
    wait_for_open_socket(driver)
    return handle


def close_windows(driver, handles):
    for handle in handles:
        driver.switch_to.window(handle)
        driver.close()
    driver.switch_to.window(driver.window_handles[0])


def type_message(driver, handle, text):
    driver.switch_to.window(handle)
    driver.find_element(By.ID, "chat-message-input").send_keys(text, Keys.ENTER)


def wait_for_log(driver, handle, text, who):
    driver.switch_to.window(handle)
    wait_until(
        driver,
        lambda d: text in (chat_log_text(d) or ""),
        f"{text!r} did not appear in the chat log of {who}",
    )


def log_of(driver, handle):
    driver.switch_to.window(handle)
    return chat_log_text(driver) or ""


@pytest.fixture
def two_rooms(browser, server):
    """Alice and Bob in one room, Carol in another: three windows, sockets open."""
    room, other = room_name("lobby"), room_name("elsewhere")
    handles = []
    try:
        for name in (room, room, other):
            handles.append(open_room(browser, server, name))
        yield handles
    finally:
        close_windows(browser, handles)


@pytest.mark.behaviour("browser_chat")
def test_message_sent_with_enter_reaches_the_room_and_only_the_room(
    browser, two_rooms, expect, stage, screenshot_path
):
    """Alice presses Enter: the text shows (as text, not markup) in her log, in Bob's from
    stage 4 on, never in Carol's; a screenshot of Alice and Bob goes to the docs."""
    alice, bob, carol = two_rooms
    type_message(browser, alice, MARKUP)
    wait_for_log(browser, alice, MARKUP, "the sender's window")
    injected = browser.execute_script(
        "return document.getElementById('injected') !== null"
    )
    assert not injected, (
        "the message's markup was rendered as HTML instead of shown as text"
    )
    if expect == "sender-only":
        browser.implicitly_wait(0)
        type_message(
            browser, bob, "echo check"
        )  # Bob's own echo proves his socket works
        wait_for_log(browser, bob, "echo check", "the second window (its own message)")
        assert MARKUP not in log_of(browser, bob), (
            "at this stage the consumer only echoes, but the second window received the message"
        )
    else:
        wait_for_log(browser, bob, MARKUP, "the second window in the same room")
        type_message(browser, bob, "hello Alice")
        wait_for_log(browser, alice, "hello Alice", "the first window (Bob's reply)")
    # Carol's own round trip through the server: once it is back, Alice's message would be too.
    type_message(browser, carol, "carol's own message")
    wait_for_log(browser, carol, "carol's own message", "the window in another room")
    assert MARKUP not in log_of(browser, carol), (
        "a window in another room received the message"
    )
    save_side_by_side(
        browser,
        [alice, bob],
        [f"Stage {stage}: window 1", f"Stage {stage}: window 2 (same room)"],
        screenshot_path(f"stage{stage}-two-windows.png"),
    )


@pytest.mark.behaviour("page_reports_closed_socket")
def test_page_says_when_its_socket_closes(browser, stage_project):
    """When the server goes away, the room page says so (not only in the console)."""
    server = stage_project.start_server(stage_project.redis_url, "closed-socket")
    handle = open_room(browser, server, room_name())
    try:
        before = page_text(browser).lower()
        stage_project.stop_server(server)
        wait_until(
            browser,
            lambda d: any(
                word in page_text(d).lower() and word not in before
                for word in CLOSED_WORDS
            ),
            "the room page did not tell the user that its socket closed",
        )
    finally:
        close_windows(browser, [handle])


@pytest.mark.behaviour("page_reports_closed_socket")
def test_page_says_when_its_socket_is_refused(browser, server):
    """When the socket cannot connect at all (nothing listens where it goes), the page says so."""
    handle = new_window(browser, refuse_sockets=True)
    try:
        browser.get(server.http_url(room_page_path(room_name())))
        wait_until(
            browser,
            lambda d: any(word in page_text(d).lower() for word in CLOSED_WORDS),
            "the room page did not tell the user that its socket was refused",
        )
    finally:
        close_windows(browser, [handle])
