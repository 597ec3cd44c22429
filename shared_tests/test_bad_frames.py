"""Frames the chat cannot use get {"error": ...}; the socket stays open and the log stays clean."""

import json

import pytest

from shared_tests.chat_client import (
    chat_socket,
    expect_message,
    next_reply,
    room_name,
    send_message,
)

BAD_FRAMES = {
    "not-json": "hello",
    "json-array": '["message", "hi"]',
    "no-message-key": '{"text": "hi"}',
    "number-message": '{"message": 42}',
    "null-message": '{"message": null}',
    "json-null": "null",
    "deeply-nested": "[" * 5000 + "]" * 5000,
    "binary": b"\x00\x01binary",
}
MAX_MESSAGE_LENGTH = 1000


def assert_error_then_still_usable(server, socket, frame, what):
    mark = server.log_mark()
    socket.send(frame)
    reply = next_reply(socket, f'{{"error": ...}} for {what}')
    assert isinstance(reply.get("error"), str) and reply["error"].strip(), (
        f'{what} should be answered with {{"error": "<what was wrong>"}}, got {reply}'
    )
    send_message(socket, "still here")
    expect_message(socket, "still here", f"the sender after {what}")
    assert "Traceback" not in server.log_since(mark), (
        f"{what} logged a traceback on the server"
    )


@pytest.mark.behaviour("bad_frames")
@pytest.mark.parametrize("frame", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
def test_malformed_frame_gets_an_error_and_the_socket_stays_usable(server, frame):
    """The server answers {"error": ...}, logs no traceback, and keeps chatting."""
    with chat_socket(server, room_name()) as socket:
        assert_error_then_still_usable(
            server, socket, frame, f"the frame {frame[:20]!r}"
        )


@pytest.mark.behaviour("message_size_limit")
def test_message_over_the_limit_is_refused(server):
    """1000 characters pass; 1001 get {"error": ...} and the socket stays usable."""
    longest = "字" * MAX_MESSAGE_LENGTH
    with chat_socket(server, room_name()) as socket:
        send_message(socket, longest)
        expect_message(
            socket, longest, f"the sender of a {MAX_MESSAGE_LENGTH}-character message"
        )
        frame = json.dumps({"message": longest + "!"})
        assert_error_then_still_usable(
            server, socket, frame, "a 1001-character message"
        )
