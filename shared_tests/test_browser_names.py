"""Stage 7 in a real browser: two people with two names in one room, and a reload that shows
what was said before."""

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from shared_tests.browser import (
    chat_log_text,
    new_window,
    page_left,
    save_side_by_side,
    wait_for_open_socket,
    wait_until,
)
from shared_tests.chat_client import room_name, room_page_path
from shared_tests.test_browser_room import close_windows, type_message, wait_for_log

MARKUP_NAME = "Ada <i>"  # a name with markup: it must show as typed
MARKUP_TEXT = "Hi <b>everyone</b>!"


def pick_nickname(driver, origin: str, nickname: str) -> None:
    """On the index page, type a nickname into the "nickname" field and press Enter."""
    driver.get(origin + "/chat/")
    field = driver.find_element(By.NAME, "nickname")
    field.send_keys(nickname, Keys.ENTER)
    wait_until(
        driver,
        page_left(field),
        f"the index page did not take the nickname {nickname!r}",
    )


def enter_room(driver, origin: str, room: str) -> None:
    driver.get(origin + room_page_path(room))
    wait_for_open_socket(driver)


@pytest.mark.behaviour("browser_names_history")
def test_two_names_in_one_room_and_a_reload_shows_the_history(
    browser, server, stage, screenshot_path
):
    """Two windows whose cookies differ (one on 127.0.0.1, one on localhost) pick two names;
    each sees who said what, markup as text; a reload brings the conversation back."""
    room = room_name("names")
    bob = "Bob"
    # A browser keeps one cookie jar per host: two hosts, two visitors.
    origins = (server.origin, server.origin.replace("127.0.0.1", "localhost"))
    handles = []
    try:
        for origin, nickname in zip(origins, (MARKUP_NAME, bob), strict=True):
            handles.append(new_window(browser))
            pick_nickname(browser, origin, nickname)
            enter_room(browser, origin, room)
        ada, bobs = handles
        type_message(browser, ada, MARKUP_TEXT)
        for handle, who in ((ada, "Ada's window"), (bobs, "Bob's window")):
            wait_for_log(browser, handle, MARKUP_TEXT, who)
            assert MARKUP_NAME in chat_log_text(browser), (
                f"{who} shows the message without its author {MARKUP_NAME!r}"
            )
            rendered = browser.execute_script(
                "return document.querySelector('#chat-log b, #chat-log i') !== null"
            )
            assert not rendered, f"{who} rendered the markup of a name or message"
        type_message(browser, bobs, "Hello Ada")
        wait_for_log(browser, ada, "Hello Ada", "Ada's window (Bob's reply)")
        assert bob in chat_log_text(browser), "Ada's window does not say Bob wrote it"
        save_side_by_side(
            browser,
            handles,
            [f"Stage {stage}: {MARKUP_NAME}", f"Stage {stage}: {bob}"],
            screenshot_path(f"stage{stage}-names.png"),
        )
        browser.switch_to.window(bobs)
        browser.refresh()
        wait_for_open_socket(browser)
        for text in (MARKUP_TEXT, "Hello Ada"):
            wait_for_log(browser, bobs, text, "Bob's window after a reload")
    finally:
        close_windows(browser, handles)
        # The browser serves other stages next; their copies have no session table.
        browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
