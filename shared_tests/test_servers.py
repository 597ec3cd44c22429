"""How the suite starts daphne (not run when grading a student's project): plain HTTP, over
TLS, and as a worker behind nginx, the way `make step9` starts one; and on a port that
another program takes first."""

import socket
import threading
from pathlib import Path

import pytest

import shared_tests.servers
from shared_tests.graded_projects import copy_stage
from shared_tests.servers import ServerFailed, ServerPool, daphne_command
from tools.deployment.certificate import TLSFiles
from tools.grading.project import Project, find_project
from tools.net import free_port

pytestmark = pytest.mark.repository
TARGET = "mysite.asgi:application"
TLS = TLSFiles(key=Path("/certs/key.pem"), certificate=Path("/certs/cert.pem"))


def test_plain_daphne_listens_on_the_port():
    """Without TLS daphne binds the loopback address and the port, and serves the target."""
    command = daphne_command(TARGET, 8123)
    assert command[-5:] == ["-b", "127.0.0.1", "-p", "8123", TARGET]


def test_daphne_over_tls_gets_an_ssl_endpoint():
    """With TLS daphne takes a Twisted endpoint naming the port, the key and the certificate."""
    command = daphne_command(TARGET, 8123, tls=TLS)
    endpoint = command[command.index("-e") + 1]
    assert endpoint.startswith("ssl:port=8123:interface=127.0.0.1:")
    assert "privateKey=/certs/key.pem" in endpoint
    assert "certKey=/certs/cert.pem" in endpoint


def test_a_worker_behind_nginx_believes_its_headers():
    """Behind nginx daphne reads X-Forwarded-For/-Proto (--proxy-headers), over plain HTTP."""
    command = daphne_command(TARGET, 8123, proxy_headers=True)
    assert "--proxy-headers" in command
    assert command[-5:] == ["-b", "127.0.0.1", "-p", "8123", TARGET]


def test_a_worker_behind_nginx_refuses_tls():
    """nginx holds the TLS; asking for both is a mistake, not a setting to drop silently."""
    with pytest.raises(ValueError, match="nginx holds the TLS"):
        daphne_command(TARGET, 8123, tls=TLS, proxy_headers=True)


@pytest.fixture
def pool(tmp_path):
    servers = ServerPool(tmp_path)
    yield servers
    servers.stop_all()


@pytest.fixture
def stage3(tmp_path) -> Project:
    return find_project(copy_stage(3, tmp_path))


def test_a_port_taken_while_the_server_starts_is_not_taken_for_its_own(pool, stage3):
    """Another program starts listening on the port after the server was started on it
    (free_port() found it free a moment before): the server's start fails, saying the port
    is in use, instead of passing for started with the other program's socket."""
    port = free_port()
    with socket.socket() as other:

        def take_the_port():
            other.bind(("127.0.0.1", port))
            other.listen()

        threading.Timer(0.05, take_the_port).start()  # daphne needs far longer to bind
        with pytest.raises(ServerFailed, match="already in use"):
            pool.start(stage3, TARGET, None, "taken", port=port)


def test_the_pool_takes_another_port_when_its_free_one_is_taken(
    pool, stage3, monkeypatch
):
    """The first free port the pool picks is taken by then: the server starts on another
    one, and no death is recorded against the project."""
    with socket.create_server(("127.0.0.1", 0)) as other:
        ports = iter([other.getsockname()[1], free_port()])
        monkeypatch.setattr(shared_tests.servers, "free_port", lambda: next(ports))
        server = pool.start(stage3, TARGET, None, "retried")
        assert server.port != other.getsockname()[1]
    assert server.get("/chat/").status == 200
    assert pool.deaths == []
