"""The lesson of stage 5: the consumer becomes async (it is sync at stages 3 and 4)."""

import time

import pytest
from websockets.exceptions import ConnectionClosed

from shared_tests.chat_client import (
    chat_socket,
    expect_message,
    next_frame,
    room_name,
    send_message,
)

# How long the sender's handler gets to reach the channel layer before the other frame.
SEND_STARTS = 1.0
# How long the other socket waits for an answer, all of it while Redis is frozen.
ANSWER_WHILE_FROZEN = 4.0


@pytest.mark.behaviour("consumer_style")
def test_consumer_is_sync_or_async_as_the_stage_teaches(stage_project, expect, request):
    """Every consumer routed from ASGI_APPLICATION is a sync or an async consumer as
    expected. Where it should be async, the server shows it too: while one socket's
    message waits for Redis, another socket's frame is still answered."""
    consumers = stage_project.facts.get("consumers")
    assert consumers, (
        'no consumer is routed from ASGI_APPLICATION\'s "websocket" router'
    )
    wrong = {name: kind for name, kind in consumers.items() if kind != expect}
    assert not wrong, ", ".join(
        f"{name} is a {kind} consumer; this stage's consumer should be {expect}"
        for name, kind in wrong.items()
    )
    if expect == "async":  # what the project's code says of itself is not the proof
        own_redis = request.getfixturevalue("own_redis")
        server = stage_project.start_server(own_redis.url(), "frozen-redis")
        try:
            assert_answers_while_another_waits(server, own_redis)
        finally:
            stage_project.stop_server(server)


def assert_answers_while_another_waits(server, own_redis) -> None:
    """A sync consumer's handlers take turns on one thread: while the sender's handler
    waits for Redis (in async_to_sync(group_send)), no other socket's frame is handled.
    An async consumer's handler awaits Redis on the event loop, so the thread stays free
    for the other socket's handler (Channels runs aclose_old_connections() there first)."""
    with (
        chat_socket(server, room_name("sender")) as sender,
        chat_socket(server, room_name("other")) as other,
    ):
        # Both consumers done connecting (stage 8's connect() writes to Redis last) and idle.
        for socket in (sender, other):
            send_message(socket, "before the freeze")
            expect_message(socket, "before the freeze", "a socket before Redis froze")
        with own_redis.frozen():
            send_message(sender, "waits for Redis")
            time.sleep(SEND_STARTS)
            # A frame its handler answers (an error) or fails on (a close) without Redis.
            answered = answer_within(other, "not json", ANSWER_WHILE_FROZEN)
        assert answered is not None, (
            "while one socket's message waited for Redis, another socket's connection "
            "broke without a close code: did the server die?"
        )
        assert answered, (
            "while one socket's message waited for Redis, the server answered no frame "
            f"of another socket for {ANSWER_WHILE_FROZEN:g} s: something held the one "
            "thread where sync code runs. A sync consumer (WebsocketConsumer), "
            "async_to_sync in an async one, a sync_to_async call that waits for Redis "
            "(Django's cache API, say), or an answer to a frame that is not JSON that "
            "needs Redis too"
        )
        # The first handler did wait for Redis, and went on once it came back.
        expect_message(sender, "waits for Redis", "the sender once Redis came back")


def answer_within(socket, frame: str, seconds: float) -> bool | None:
    """Send `frame`; whether an answer (a frame other than a presence list, or a close
    with a code) came within `seconds`. None: the connection broke without a close."""
    try:
        socket.send(frame)
        next_frame(socket, seconds)
    except TimeoutError:
        return False
    except ConnectionClosed as closed:
        return True if closed.rcvd is not None else None
    return True
