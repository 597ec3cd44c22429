"""The daphne workers behind nginx: the command that starts one and what it runs with, the
same for `make step9` (tools/deployment/serve.py) and the benchmark (tools/bench/servers.py)."""

from __future__ import annotations

import sys

from tools.net import HOST, free_port

# Stage 9's settings read it: behind nginx every page is https, so cookies are sent only there.
BEHIND_NGINX = {"DJANGO_HTTPS_ONLY": "1"}
ASGI_TARGET = "mysite.asgi:application"


def worker_command(port: int, target: str = ASGI_TARGET) -> list[str]:
    """daphne on 127.0.0.1:`port`, believing the X-Forwarded-* headers nginx sets."""
    daphne = [sys.executable, "-m", "daphne", "--proxy-headers"]
    return [*daphne, "-b", HOST, "-p", str(port), target]


def distinct_free_ports(count: int) -> list[int]:
    """`count` free ports, no two the same (nginx's and one per worker)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports
