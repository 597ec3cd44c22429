"""Stage 7 over WebSockets: the server decides who said a message (a nickname kept in the
session, or the logged-in user), and a newcomer gets the room's history from the database."""

import datetime
import json
import os
import sqlite3
import time
import uuid

import pytest

from shared_tests.chat_client import (
    chat_socket,
    frames_within,
    next_reply,
    room_name,
    send_message,
)
from shared_tests.visitor import Visitor, named_visitor, unique_name

HISTORY_LENGTH = 50  # what a newcomer sees of a room
MAX_NICKNAME_LENGTH = 30
WRITE_STARTS = 1  # seconds for the server to take a frame and start writing it
# Seconds a pong may take while a write waits: under SQLite's 5 s busy timeout, after which
# the write would give up and a blocked event loop would run again.
PONG_WHILE_LOCKED = 3
# Seconds for the server to close the connections its last request and message used.
CONNECTIONS_CLOSE = 2


def chat_frame(socket, text: str, who: str) -> dict:
    """The next frame, which must carry `text` (as "message") and its author."""
    frame = next_reply(socket, f"the message {text!r} at {who}")
    assert frame.get("message") == text, f"{who} expected {text!r}, got {frame}"
    assert isinstance(frame.get("author"), str) and frame["author"], (
        f'{who} got a frame without an "author": {frame}'
    )
    return frame


def server_time(frame: dict) -> datetime.datetime:
    try:
        created = datetime.datetime.fromisoformat(frame.get("created"))
    except (TypeError, ValueError):
        raise AssertionError(
            f'the frame\'s "created" is not an ISO 8601 time: {frame}'
        ) from None
    assert created.tzinfo is not None, f'"created" has no time zone: {frame}'
    return created


@pytest.mark.behaviour("author_from_server")
def test_each_message_names_its_author_and_the_servers_time(server):
    """Everyone in the room sees the sender's nickname as author and the time the server
    stored the message; a visitor without a nickname still gets a name."""
    nickname = unique_name("alice")
    alice = named_visitor(server, nickname)
    room = room_name()
    with (
        chat_socket(server, room, cookie=alice.cookie_header) as sender,
        chat_socket(server, room) as listener,
    ):
        sent_at = datetime.datetime.now(datetime.UTC)
        send_message(sender, "hello")
        for who, socket in (("the sender", sender), ("another visitor", listener)):
            frame = chat_frame(socket, "hello", who)
            assert frame["author"] == nickname, (
                f"{who} saw the author {frame['author']!r}, not the sender's nickname "
                f"{nickname!r}"
            )
            gap = abs((server_time(frame) - sent_at).total_seconds())
            assert gap < 600, f'"created" is {gap:.0f} s away from now: {frame}'
        send_message(listener, "from someone without a nickname")
        chat_frame(listener, "from someone without a nickname", "a visitor without one")


@pytest.mark.behaviour("author_not_spoofable")
def test_a_frame_cannot_choose_its_author(server):
    """A frame that names an author (or user, username, name) is still shown under the
    sender's own name, to the sender and to the room."""
    nickname = unique_name("mallory")
    mallory = named_visitor(server, nickname)
    room = room_name()
    claims = {"author": "admin", "user": "admin", "username": "admin", "name": "admin"}
    with (
        chat_socket(server, room, cookie=mallory.cookie_header) as sender,
        chat_socket(server, room) as listener,
    ):
        sender.send(json.dumps({"message": "I am the admin", **claims}))
        for who, socket in (("the sender", sender), ("another visitor", listener)):
            frame = chat_frame(socket, "I am the admin", who)
            assert frame["author"] == nickname, (
                f"a frame claiming to be from 'admin' reached {who} as from "
                f"{frame['author']!r}: the author must come from the server"
            )
        listener.send(json.dumps({"message": "me too", "author": nickname}))
        frame = chat_frame(listener, "me too", "a visitor without a nickname")
        assert frame["author"] != nickname, (
            f"a visitor without a nickname posted as {nickname!r} by naming it in the frame"
        )


@pytest.mark.behaviour("logged_in_author")
def test_a_logged_in_user_chats_under_their_username(stage_project, server):
    """A user logged in through the admin's login page is the author of what they send."""
    username, password = unique_name("user"), uuid.uuid4().hex
    stage_project.create_user(username, password)
    visitor = Visitor(server)
    page = visitor.log_in(username, password)
    assert page.status == 302, (
        f"the admin login did not accept the user {username} (HTTP {page.status})"
    )
    with chat_socket(server, room_name(), cookie=visitor.cookie_header) as socket:
        send_message(socket, "logged in")
        frame = chat_frame(socket, "logged in", "the logged-in user")
        assert frame["author"] == username, (
            f"the logged-in user {username} was shown as {frame['author']!r}"
        )


@pytest.mark.behaviour("nickname_rules")
def test_a_refused_nickname_is_answered_400_and_changes_nothing(stage_project, server):
    """Empty, blank, too long, and a registered user's name (in other letters) are refused
    with HTTP 400; the visitor still chats under the nickname they had."""
    registered = unique_name("Bob")
    stage_project.create_user(registered, uuid.uuid4().hex)
    first = unique_name("carol")
    visitor = named_visitor(server, first)
    refused = {
        "empty": "",
        "blank": "   ",
        f"over {MAX_NICKNAME_LENGTH} characters": "x" * (MAX_NICKNAME_LENGTH + 1),
        "a registered user's name in other letters": registered.upper(),
    }
    for why, nickname in refused.items():
        page = visitor.pick_nickname(nickname)
        assert page.status == 400, (
            f"a nickname that is {why} ({nickname!r}) was answered with HTTP "
            f"{page.status}, not 400"
        )
    with chat_socket(server, room_name(), cookie=visitor.cookie_header) as socket:
        send_message(socket, "still me")
        frame = chat_frame(socket, "still me", "the visitor")
        assert frame["author"] == first, (
            f"after refused nicknames the visitor chats as {frame['author']!r}, "
            f"not as {first!r}"
        )


@pytest.mark.behaviour("history_on_join")
def test_joining_sends_the_last_50_messages_oldest_first_then_live_ones(server):
    """55 messages in a room, one in another: a newcomer gets the room's last 50, oldest
    first, each with its author, then a message sent the moment it joined, once."""
    room, other = room_name("history"), room_name("other")
    nickname = unique_name("alice")
    alice = named_visitor(server, nickname)
    sent = [f"message {n}" for n in range(HISTORY_LENGTH + 5)]
    with chat_socket(server, other) as elsewhere:
        send_message(elsewhere, f"not for {room}")
        chat_frame(elsewhere, f"not for {room}", "the sender in another room")
    with chat_socket(server, room, cookie=alice.cookie_header) as writer:
        for text in sent:
            send_message(writer, text)
            chat_frame(writer, text, "the sender")
        with chat_socket(server, room) as newcomer:
            send_message(writer, "live")
            frames = [
                next_reply(newcomer, f"{HISTORY_LENGTH} history frames, then 'live'")
                for _ in range(HISTORY_LENGTH + 1)
            ]
            later = frames_within(newcomer)
    texts = [frame.get("message") for frame in frames]
    assert f"not for {room}" not in texts, "the history holds another room's message"
    assert "live" in texts, (
        f"the live message did not arrive after the history: {texts}"
    )
    assert texts.index("live") == HISTORY_LENGTH, (
        f"the live message came as frame {texts.index('live') + 1}, before the history "
        "had been sent"
    )
    assert texts[:-1] == sent[-HISTORY_LENGTH:], (
        f"the history should be the last {HISTORY_LENGTH} messages, oldest first; got "
        f"{texts[0]!r} .. {texts[-2]!r}"
    )
    authors = {frame.get("author") for frame in frames[:-1]}
    assert authors == {nickname}, f"the history lost its authors: {authors}"
    assert later == [], f"the newcomer got more frames than it should: {later[:3]}"


@pytest.mark.behaviour("history_after_restart")
def test_history_survives_a_server_restart(stage_project):
    """Messages sent to one server are the history a newcomer gets from the next one."""
    room, sent = room_name("restart"), ["before", "the", "restart"]
    first = stage_project.start_server(stage_project.redis_url, "before-restart")
    try:
        with chat_socket(first, room) as socket:
            for text in sent:
                send_message(socket, text)
                chat_frame(socket, text, "the sender")
    finally:
        stage_project.stop_server(first)
    second = stage_project.start_server(stage_project.redis_url, "after-restart")
    try:
        with chat_socket(second, room) as newcomer:
            texts = [
                next_reply(newcomer, "the history from before the restart").get(
                    "message"
                )
                for _ in sent
            ]
    finally:
        stage_project.stop_server(second)
    assert texts == sent, f"after a restart the history is {texts}, not {sent}"


@pytest.mark.behaviour("database_not_blocking")
def test_a_waiting_write_leaves_the_event_loop_free(stage_project, server):
    """The test locks the database: the sender's write must wait, so its message does not
    arrive yet. Meanwhile a socket in another room still gets its pong, so the write waits
    in a thread, not in the event loop. Once unlocked, the message arrives."""
    database = stage_project.open_database()  # closed last: closing drops the lock
    with (
        chat_socket(server, room_name("writer")) as writer,
        chat_socket(server, room_name("other")) as other,
    ):
        # The file as opened above, whatever the project has put at its name since.
        lock = sqlite3.connect(
            f"file:/proc/self/fd/{database}?mode=rw",
            uri=True,
            timeout=5,
            isolation_level=None,
        )
        try:
            lock.execute("BEGIN IMMEDIATE")  # readers may read; no one else may write
            send_message(writer, "waits for the database")
            time.sleep(WRITE_STARTS)
            answered = other.ping().wait(PONG_WHILE_LOCKED)
            # Nothing yet: the lock held the write up (the project reports its database
            # itself, and a file it does not write to would hold up nothing).
            early = frames_within(writer, 0)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
            os.close(database)
        assert not early, (
            f"the message arrived while {stage_project.database_name} was locked: the "
            "server does not write to the SQLite file the project's settings name"
        )
        assert answered, (
            "while a database write waited, the server answered no ping for "
            f"{PONG_WHILE_LOCKED} s: the write blocks the event loop (a sync ORM call in "
            "an async consumer?)"
        )
        chat_frame(writer, "waits for the database", "the sender, once unlocked")


@pytest.mark.repository
def test_the_server_keeps_no_database_connection_open(stages_under_test):
    """Stage 7 keeps Django's CONN_MAX_AGE of 0 (its page says why): under ASGI each HTTP
    request runs its sync code on a thread of its own, and a kept connection stays open after
    that thread has ended, until the garbage collector happens to find it. After 10 messages
    stored and 60 requests that read and write the session, the server soon holds the SQLite
    file open nowhere."""
    stage_project = stages_under_test(7)
    server = stage_project.server
    with chat_socket(server, room_name("stored")) as socket:
        for number in range(10):
            send_message(socket, f"stored {number}")
            chat_frame(socket, f"stored {number}", "the sender")
    for _ in range(20):
        visitor = named_visitor(server, unique_name("page"))  # a GET and a POST
        assert visitor.get("/chat/").status == 200
    database = stage_project.project.root / stage_project.database_name
    deadline = time.monotonic() + CONNECTIONS_CLOSE
    while (handles := server.handles_on(database)) and time.monotonic() < deadline:
        time.sleep(0.05)  # a request's connection closes just after its response
    assert handles == 0, (
        f"the server still holds {database.name} open {handles} times after its last "
        f"request ({CONNECTIONS_CLOSE} s): the requests' threads left their connections "
        "open (CONN_MAX_AGE?)"
    )
