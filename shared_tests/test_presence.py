"""Stage 8 over WebSockets: every socket learns who is in its room, across server processes,
and the users of a process that dies leave the list by themselves."""

import json
import time

import pytest

from shared_tests.chat_client import chat_socket, room_name
from shared_tests.visitor import named_visitor, unique_name

PRESENCE_BOUND = 10  # seconds for a list to catch up, also after a process died


def wait_for_presence(socket, expected: list[str], who: str) -> None:
    """Read frames until a {"presence": [...]} equals `expected` (in any order)."""
    deadline, last = time.monotonic() + PRESENCE_BOUND, None
    while time.monotonic() < deadline:
        try:
            frame = json.loads(socket.recv(timeout=deadline - time.monotonic()))
        except TimeoutError:
            break
        if isinstance(frame, dict) and "presence" in frame:
            last = frame["presence"]
            if sorted(last) == sorted(expected):
                return
    raise AssertionError(
        f"{who} should list {sorted(expected)} within {PRESENCE_BOUND} s; its last "
        f'{{"presence": ...}} was {last}'
    )


@pytest.mark.behaviour("presence_list")
def test_the_list_spans_two_processes_and_names_each_user_once(stage_project, server):
    """Alice in two tabs (one per server process) and Bob: every socket lists both names
    once; when Bob leaves, the others' lists drop him."""
    other = stage_project.start_server(stage_project.redis_url, "presence")
    try:
        alice, bob = unique_name("alice"), unique_name("bob")
        alices = named_visitor(server, alice).cookie_header
        bobs = named_visitor(server, bob).cookie_header
        room = room_name("presence")
        with (
            chat_socket(server, room, cookie=alices) as first_tab,
            chat_socket(other, room, cookie=alices) as second_tab,
        ):
            with chat_socket(other, room, cookie=bobs) as bob_socket:
                for who, socket in (
                    ("Alice's tab on the first process", first_tab),
                    ("Alice's tab on the second process", second_tab),
                    ("Bob's socket", bob_socket),
                ):
                    wait_for_presence(socket, [alice, bob], who)
            wait_for_presence(first_tab, [alice], "Alice's tab, once Bob left")
    finally:
        stage_project.stop_server(other)


@pytest.mark.behaviour("presence_heals")
def test_a_dead_process_users_leave_the_list(stage_project, server):
    """Bob's server process is killed (it cannot run disconnect()); Alice's list, on the
    other process, drops him within the bound."""
    doomed = stage_project.start_server(stage_project.redis_url, "killed")
    killed = False
    alice, bob = unique_name("alice"), unique_name("bob")
    alices = named_visitor(server, alice).cookie_header
    bobs = named_visitor(server, bob).cookie_header
    room = room_name("heal")
    try:
        with (
            chat_socket(server, room, cookie=alices) as mine,
            chat_socket(doomed, room, cookie=bobs),
        ):
            wait_for_presence(mine, [alice, bob], "Alice, once Bob joined")
            stage_project.stop_server(doomed, kill=True)
            killed = True
            wait_for_presence(mine, [alice], "Alice, after Bob's process died")
    finally:
        if not killed:
            stage_project.stop_server(doomed)
