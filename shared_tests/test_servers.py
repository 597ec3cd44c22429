"""How the suite starts daphne (not run when grading a student's project): plain HTTP, over
TLS, and as a worker behind nginx, the way `make step9` starts one."""

from pathlib import Path

import pytest

from shared_tests.servers import daphne_command
from tools.deployment.certificate import TLSFiles

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
