"""The index page in a real browser: focus, Enter, the button, Chinese names, refusals."""

import urllib.parse

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from shared_tests.browser import (
    new_window,
    page_text,
    save_sheet,
    wait_until,
    window_shot,
)
from shared_tests.chat_client import room_name


@pytest.fixture
def index_page(browser, server):
    """A fresh window on /chat/."""
    new_window(browser)
    browser.get(server.http_url("/chat/"))
    yield browser
    browser.close()
    browser.switch_to.window(browser.window_handles[0])


def current_path(driver) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(driver.current_url).path)


def room_input(driver):
    return driver.find_element(By.ID, "room-name-input")


@pytest.mark.behaviour("index_navigation")
def test_input_has_focus_and_enter_opens_the_room(index_page, stage, screenshot_path):
    """The room name input has focus; typing a name and pressing Enter opens /chat/<name>/.
    At stage 2 a screenshot of both pages goes to the docs (the room page is a 404 there)."""
    focused = index_page.execute_script(
        "return document.activeElement && document.activeElement.id"
    )
    assert focused == "room-name-input", (
        f"#room-name-input should have focus, {focused!r} has"
    )
    pictured = stage == 2  # the docs' picture (no room page, so no socket, yet)
    room = "lobby" if pictured else room_name()
    index_page.switch_to.active_element.send_keys(room)
    typed = (
        window_shot(index_page, index_page.current_window_handle) if pictured else None
    )
    room_input(index_page).send_keys(Keys.ENTER)  # to the input: the shot blurs it
    wait_until(
        index_page,
        lambda d: current_path(d) == f"/chat/{room}/",
        f"pressing Enter did not open /chat/{room}/ (still at {current_path(index_page)})",
    )
    if pictured:
        captions = [
            "Stage 2: /chat/, a room name typed",
            "after Enter: no room page yet",
        ]
        opened = window_shot(index_page, index_page.current_window_handle)
        save_sheet([typed, opened], captions, screenshot_path("stage2-index.png"))


@pytest.mark.behaviour("index_navigation")
def test_button_opens_a_room_with_a_chinese_name(index_page):
    """Typing a Chinese room name and clicking the Enter button opens /chat/<name>/."""
    room = "中文聊天室"
    room_input(index_page).send_keys(room)
    index_page.find_element(By.ID, "room-name-submit").click()
    wait_until(
        index_page,
        lambda d: current_path(d) == f"/chat/{room}/",
        f"clicking the button did not open /chat/{room}/ (still at {current_path(index_page)})",
    )


@pytest.mark.behaviour("index_explains_refusal")
@pytest.mark.parametrize(
    "refused", ["a/b", "   ", "x" * 101], ids=["slash", "blank", "too-long"]
)
def test_refused_name_is_explained_on_the_index_page(index_page, refused):
    """A name the chat cannot serve is explained on /chat/ instead of being opened."""
    before = page_text(index_page)
    room_input(index_page).send_keys(refused, Keys.ENTER)
    wait_until(
        index_page,
        lambda d: current_path(d) != "/chat/" or page_text(d) != before,
        f"the index page neither explained nor opened the refused name {refused!r}",
    )
    assert current_path(index_page) == "/chat/", (
        f"the index page navigated to {current_path(index_page)} for the refused name {refused!r}"
    )
    assert "room name" in page_text(index_page).lower(), (
        f"the index page changed but does not explain what is wrong with {refused!r}"
    )
