"""The channel layer at work (stages 4-5): across processes, through Redis outages, idle
sockets, 200 clients, and bursts that must not lose a message."""

import asyncio
import time

import pytest
import redis
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from shared_tests.chat_client import (
    chat_path,
    chat_socket,
    describe_refusal,
    expect_message,
    open_socket,
    room_name,
    send_message,
)
from shared_tests.crowd import (
    abnormal_closes,
    close_all,
    loss_report,
    open_crowd,
    receive_messages,
)

REDIS_UNAVAILABLE = 4503
IDLE_SECONDS = 30


@pytest.mark.behaviour("cross_process")
def test_two_servers_on_one_redis_deliver_to_each_other(stage_project, server):
    """A message sent through one server process reaches a client of another one."""
    other = stage_project.start_server(server.redis_url, "second-process")
    room = room_name()
    try:
        with chat_socket(server, room) as alice, chat_socket(other, room) as bob:
            send_message(alice, "from process one")
            expect_message(
                alice, "from process one", "the sender on the first server process"
            )
            expect_message(
                bob, "from process one", "a client of the second server process"
            )
            send_message(bob, "from process two")
            expect_message(
                bob, "from process two", "the sender on the second server process"
            )
            expect_message(
                alice, "from process two", "a client of the first server process"
            )
    finally:
        stage_project.stop_server(other)


def group_members(client: redis.Redis) -> set[tuple[bytes, bytes]]:
    """(group key, channel) for every member of every group channels-redis keeps (sorted
    sets named "<prefix>:group:<name>")."""
    return {
        (key, member)
        for key in client.scan_iter(match="*:group:*")
        for member in client.zrange(key, 0, -1)
    }


@pytest.mark.behaviour("leaves_group")
def test_a_closed_socket_leaves_its_group(stage_project, server):
    """A socket joins its room's group when it connects; once it closes, its channel is in
    no group any more. Read from the run's own Redis, where channels-redis keeps groups."""
    assert stage_project.uses_redis, (
        "the channel layer is not Redis, so its groups cannot be seen (see the "
        "two-server-processes behaviour)"
    )
    client = redis.Redis.from_url(server.redis_url)
    try:
        before = group_members(client)
        with chat_socket(server, room_name()) as socket:
            send_message(socket, "hello")  # its answer shows connect() has finished
            expect_message(socket, "hello", "the sender")
            joined = group_members(client) - before
        assert joined, "a connected socket's channel joined no group in Redis"
        deadline = time.monotonic() + 5
        while (left := joined & group_members(client)) and time.monotonic() < deadline:
            time.sleep(0.1)
        group = next(iter(left), (b"", b""))[0].decode()
        assert not left, (
            f"5 s after its socket closed, a channel is still in the group {group!r}: "
            "disconnect() does not call group_discard"
        )
    finally:
        client.close()


@pytest.mark.behaviour("redis_down")
def test_redis_down_closes_with_4503_and_recovers(stage_project, own_redis):
    """Redis stopped: the socket closes with 4503 and the log says to start Redis.
    Redis restarted: a new socket chats, without restarting the server."""
    server = stage_project.start_server(own_redis.url(), "redis-down")
    try:
        own_redis.stop()
        mark = server.log_mark()
        try:
            socket = open_socket(server, chat_path(room_name()))
        except (InvalidHandshake, OSError) as error:
            raise AssertionError(
                f"with Redis down the handshake failed ({describe_refusal(error)}) instead of "
                f"the socket closing with code {REDIS_UNAVAILABLE}"
            ) from None
        with socket:
            try:
                frame = socket.recv(timeout=10)
                code = None
            except ConnectionClosed as closed:
                frame, code = None, closed.rcvd.code if closed.rcvd else None
            except TimeoutError:
                frame, code = None, "none (still open after 10 s)"
        assert code == REDIS_UNAVAILABLE, (
            f"with Redis down the socket should close with code {REDIS_UNAVAILABLE}, "
            f"got {code}" + (f" after the frame {frame!r}" if frame else "")
        )
        log = server.log_since(mark)
        assert "redis-server" in log, (
            "with Redis down the server log does not say to start redis-server"
        )
        own_redis.start()
        with chat_socket(server, room_name()) as socket:
            send_message(socket, "redis is back")
            expect_message(socket, "redis is back", "the sender once Redis is back")
    finally:
        stage_project.stop_server(server)


@pytest.mark.behaviour("idle_sockets")
def test_idle_sockets_stay_open_and_receive(server, stage, idle_crowds):
    """Ten clients idle for 30 s are all still open and all receive the next message.
    They were opened when the stage's server started (conftest.py: idle_crowds), and this
    test runs last, so the wait overlaps the stage's other tests."""
    assert stage in idle_crowds.opened, "the idle clients could not connect"
    loop = idle_crowds.loop
    sockets, opened_at = idle_crowds.opened[stage]
    time.sleep(max(0.0, opened_at + IDLE_SECONDS - time.monotonic()))

    async def wake_up_and_listen():
        closed = abnormal_closes(sockets)
        assert not closed, f"after {IDLE_SECONDS} s idle: " + "; ".join(closed)
        await sockets[0].send('{"message": "wake up"}')
        received = await asyncio.gather(*(receive_messages(s, 1) for s in sockets))
        lost = loss_report(received, {"wake up"})
        assert not lost, f"after {IDLE_SECONDS} s idle: " + "; ".join(lost)

    loop.run(wake_up_and_listen())


def run_room_load(server, clients: int, messages_each: int) -> None:
    """`clients` sockets in one room each send `messages_each` messages as fast as they can;
    every socket must receive every message and stay open."""

    async def scenario():
        sockets = await open_crowd(server, room_name(), clients)
        expected = {f"c{c}-m{m}" for c in range(clients) for m in range(messages_each)}
        try:
            receivers = [
                asyncio.create_task(receive_messages(socket, len(expected)))
                for socket in sockets
            ]

            async def send_all(index, socket):
                for m in range(messages_each):
                    await socket.send(f'{{"message": "c{index}-m{m}"}}')

            await asyncio.gather(*(send_all(i, s) for i, s in enumerate(sockets)))
            received = await asyncio.gather(*receivers)
            closed = abnormal_closes(sockets)
            assert not closed, (
                f"{len(closed)} of {clients} clients were disconnected: {closed[0]}"
            )
            lost = loss_report(received, expected)
            assert not lost, (
                f"{len(lost)} of {clients} clients missed messages: {lost[0]}"
            )
        finally:
            await close_all(sockets)

    asyncio.run(scenario())


@pytest.mark.behaviour("many_clients")
def test_200_clients_in_one_room_all_send_and_receive(server):
    """200 clients send one message each at once; all stay connected and get all 200."""
    run_room_load(server, clients=200, messages_each=1)


@pytest.mark.behaviour("burst_no_loss")
def test_burst_of_30_clients_by_20_messages_loses_nothing(server):
    """30 clients each send 20 messages as fast as they can; every client gets all 600."""
    run_room_load(server, clients=30, messages_each=20)
