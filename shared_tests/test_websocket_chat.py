"""Chatting over WebSockets with a real client: echo at stage 3, room broadcast from stage 4."""

import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from shared_tests.chat_client import (
    chat_path,
    chat_socket,
    expect_message,
    frames_within,
    open_socket,
    room_name,
    room_page_path,
    send_message,
)
from shared_tests.html_page import json_script

REFUSED = (InvalidHandshake, ConnectionClosed, OSError, TimeoutError)


def assert_refused(server, path, origin=None, why=""):
    try:
        socket = open_socket(server, path, origin=origin)
    except REFUSED:
        return
    socket.close()
    raise AssertionError(f"the WebSocket {path} was accepted{why}")


@pytest.mark.behaviour("ws_round_trip")
def test_sender_gets_its_message_back(server, expect):
    """A {"message": ...} frame comes back to the socket that sent it (refused before stage 3)."""
    room = room_name()
    if expect == "refused":
        assert_refused(
            server, chat_path(room), why=", but this stage has no consumer yet"
        )
        return
    with chat_socket(server, room) as alice:
        send_message(alice, "hello")
        expect_message(alice, "hello", "the sender")


@pytest.mark.behaviour("room_broadcast")
def test_every_socket_in_the_room_receives_the_message_once(server, expect):
    """Three sockets in one room: all get the message exactly once (stage 3: the sender only)."""
    room = room_name()
    with (
        chat_socket(server, room) as alice,
        chat_socket(server, room) as bob,
        chat_socket(server, room) as carol,
    ):
        send_message(alice, "hi from alice")
        expect_message(alice, "hi from alice", "the sender")
        if expect == "sender-only":
            assert frames_within(bob) == [], (
                "at this stage the consumer only echoes, but a second client received the message"
            )
            return
        expect_message(bob, "hi from alice", "the second client in the same room")
        expect_message(carol, "hi from alice", "the third client in the same room")
        for who, socket in (("the sender", alice), ("the second client", bob)):
            assert frames_within(socket) == [], (
                f"{who} received the message more than once"
            )


@pytest.mark.behaviour("room_isolation")
def test_other_rooms_do_not_receive_the_message(server):
    """A message sent in one room never reaches a socket in another room."""
    with (
        chat_socket(server, room_name("red")) as alice,
        chat_socket(server, room_name("blue")) as bob,
    ):
        send_message(alice, "only for the red room")
        expect_message(alice, "only for the red room", "the sender")
        assert frames_within(bob) == [], "a client in another room received the message"


@pytest.mark.behaviour("origin_check")
def test_foreign_origin_is_refused_and_own_origin_accepted(server):
    """A handshake from http://evil.example is refused; the server's own origin chats."""
    room = room_name()
    assert_refused(
        server,
        chat_path(room),
        origin="http://evil.example",
        why=" from the foreign Origin http://evil.example (add AllowedHostsOriginValidator)",
    )
    with chat_socket(server, room) as alice:
        send_message(alice, "same origin")
        expect_message(alice, "same origin", "the sender")


UNICODE_ROOMS = {
    "chinese": "中文聊天室",
    "emoji": "派对🎉",
    "hyphen": "my-room",
    "space": "hello world",
    "punctuation": "a?b#c%d&e+f",
}


@pytest.mark.behaviour("unicode_room_names")
@pytest.mark.parametrize("base", UNICODE_ROOMS.values(), ids=UNICODE_ROOMS.keys())
def test_any_room_name_the_page_accepts_works(server, expect, base):
    """The room page, its socket, broadcast and isolation work for non-ASCII names."""
    room, other_room = f"{base}-{room_name('a')}", f"{base}-{room_name('b')}"
    page = server.get(room_page_path(room))
    assert page.status == 200, f"the room page for {room!r} answered HTTP {page.status}"
    assert json_script(page.text, "room-name") == room, (
        f"the room page lost the name {room!r}"
    )
    with (
        chat_socket(server, room) as alice,
        chat_socket(server, room) as bob,
        chat_socket(server, other_room) as stranger,
    ):
        send_message(alice, f"hi {base}")
        expect_message(alice, f"hi {base}", f"the sender in room {room!r}")
        if expect != "sender-only":
            expect_message(bob, f"hi {base}", f"the second client in room {room!r}")
        assert frames_within(stranger) == [], (
            f"a client in room {other_room!r} received a message sent in {room!r}"
        )
