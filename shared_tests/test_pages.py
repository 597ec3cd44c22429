"""The HTTP pages: the admin, the index page (/chat/) and the room page (/chat/<room>/)."""

import pytest

from shared_tests.chat_client import room_name, room_page_path
from shared_tests.html_page import element_ids, json_script

INDEX_IDS = {"room-name-input", "room-name-submit"}
ROOM_IDS = {"chat-log", "chat-message-input", "chat-message-submit"}


@pytest.mark.behaviour("admin_site")
def test_admin_shows_its_login_page(server):
    """/admin/ redirects to the admin's login form."""
    page = server.get("/admin/")
    assert page.status == 200, f"/admin/ answered HTTP {page.status}"
    assert "login-form" in element_ids(page.text), (
        "/admin/ did not lead to the admin login form"
    )


@pytest.mark.behaviour("index_page")
def test_index_page_offers_a_room_picker(server, expect):
    """/chat/ holds the room name input and its Enter button (404 before stage 2)."""
    page = server.get("/chat/")
    if expect == "404":
        assert page.status == 404, (
            f"/chat/ should not exist yet, but answered HTTP {page.status}"
        )
        return
    assert page.status == 200, f"/chat/ answered HTTP {page.status}"
    missing = INDEX_IDS - element_ids(page.text)
    assert not missing, f"/chat/ lacks the element(s) {', '.join(sorted(missing))}"


@pytest.mark.behaviour("room_page")
def test_room_page_shows_the_chat(server, expect):
    """/chat/<room>/ holds the log, the input, the Send button and the room name as JSON."""
    room = room_name()
    page = server.get(room_page_path(room))
    if expect == "404":
        assert page.status == 404, (
            f"/chat/<room>/ should not exist yet, but answered HTTP {page.status}"
        )
        return
    assert page.status == 200, f"/chat/{room}/ answered HTTP {page.status}"
    missing = ROOM_IDS - element_ids(page.text)
    assert not missing, (
        f"the room page lacks the element(s) {', '.join(sorted(missing))}"
    )
    shown = json_script(page.text, "room-name")
    assert shown == room, (
        f'the room page should carry the room name in json_script "room-name", found {shown!r}'
    )


REFUSED_NAMES = {
    "too-long": "/chat/" + "x" * 101 + "/",
    "empty": "/chat//",
    "slash": "/chat/a%2Fb/",
    "dot": "/chat/./",
    "dot-dot": "/chat/../",
    "blank": "/chat/%20%20/",
}


@pytest.mark.behaviour("refused_room_names")
@pytest.mark.parametrize("path", REFUSED_NAMES.values(), ids=REFUSED_NAMES.keys())
def test_refused_room_name_gets_a_readable_page(server, path):
    """A name the chat cannot serve gets a 4xx page that talks about the room name."""
    page = server.get(path)
    assert 400 <= page.status < 500, (
        f"{path} answered HTTP {page.status} instead of a 4xx page"
    )
    assert "room name" in page.text.lower(), (
        f"the HTTP {page.status} page for {path} does not explain what is wrong with the room name"
    )
