"""How stage 9's tests tell which worker took a socket (Deployment.worker_of): from the
kernel's list of connections, with real TCP connections to real listening sockets standing in
for two daphne workers, and the workers' logs only as a tie-break the caller asks for."""

from __future__ import annotations

import socket
from contextlib import ExitStack
from dataclasses import dataclass, field

import pytest

from shared_tests.deployment import Deployment

pytestmark = pytest.mark.repository
SOON = 0.2  # seconds worker_of waits before it says it cannot tell


@dataclass(eq=False)
class StandInWorker:
    """A listening socket in place of a daphne worker, and a log the test writes."""

    listener: socket.socket
    log: str = ""
    accepted: list = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def log_since(self, _offset: int) -> str:
        return self.log

    def take_a_connection(self, stack: ExitStack) -> None:
        """A client connects to this worker and the worker accepts it (both kept open)."""
        stack.enter_context(socket.create_connection(("127.0.0.1", self.port)))
        connection, _ = self.listener.accept()
        self.accepted.append(stack.enter_context(connection))


@pytest.fixture
def two_workers():
    with ExitStack() as stack:
        deployment = Deployment(stage=None)
        for _ in range(2):
            listener = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
            deployment.workers.append(StandInWorker(listener))
        yield deployment, stack


def logs_a_socket(worker: StandInWorker, room: str) -> None:
    worker.log += f'127.0.0.1:1 - - [now] "WSCONNECT /ws/chat/{room}/" - -\n'


def test_the_worker_with_the_new_connection_took_the_socket(two_workers):
    """One new connection: its worker, whatever the logs say."""
    deployment, stack = two_workers
    first, second = deployment.workers
    before = deployment.before_socket("room")
    first.take_a_connection(stack)
    logs_a_socket(second, "room")  # a log may lie
    assert deployment.worker_of(before, tie_break_by_log=True) is first


def test_two_new_connections_are_not_told_apart_by_the_logs_unless_asked(two_workers):
    """A new connection on each worker: no answer; with the tie-break, the one whose log
    says it took a socket in the room."""
    deployment, stack = two_workers
    first, second = deployment.workers
    before = deployment.before_socket("room")
    first.take_a_connection(stack)
    second.take_a_connection(stack)
    logs_a_socket(second, "room")
    assert deployment.worker_of(before, patience=SOON) is None
    assert deployment.worker_of(before, tie_break_by_log=True) is second


def test_no_new_connection_is_no_answer(two_workers):
    """Connections open before do not count, and a log line alone never decides."""
    deployment, stack = two_workers
    first, second = deployment.workers
    first.take_a_connection(stack)
    before = deployment.before_socket("room")
    logs_a_socket(second, "room")
    assert deployment.worker_of(before, tie_break_by_log=True, patience=SOON) is None
