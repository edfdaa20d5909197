"""Slow clients cannot take the api down: nginx in front of the api server, as `make run` starts them.

A client that sends half a request and stops used to hold a gunicorn thread for good; a dozen of them
and /api/healthz answered nothing. Behind compose/local/nginx.sh they hold only an nginx connection,
for NGINX_CLIENT_TIMEOUT_S at most, while everyone else is served.
"""

from __future__ import annotations

import http.client
import socket
from pathlib import Path

import pytest

from harness.processes import REPO, Process, free_port, wait_until
from tests.integration.conftest import Pipeline

SLOW_CLIENTS = 100
CLIENT_TIMEOUT_S = 2


@pytest.fixture
def front(pipeline: Pipeline, tmp_path: Path) -> int:
    """The api server and nginx before it (the pipeline stops both); nginx's port."""
    upstream = int(pipeline.start_api().rsplit(":", 1)[1].split("/")[0])
    port = free_port()
    env = {
        **pipeline.env,
        "API_PORT": str(port),
        "API_UPSTREAM_PORT": str(upstream),
        "NGINX_CLIENT_TIMEOUT_S": str(CLIENT_TIMEOUT_S),
    }
    argv = ["bash", str(REPO / "compose" / "local" / "nginx.sh"), "run", "--data", str(tmp_path / "nginx")]
    nginx = Process("nginx", argv, tmp_path / "nginx.log", env=env).start()
    pipeline.processes.append(nginx)
    wait_until(lambda: _healthz(port) == 200, timeout=30, what="nginx in front of the api")
    return port


def _healthz(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request("GET", "/api/healthz")
        return conn.getresponse().status
    finally:
        conn.close()


def _half_requests(port: int) -> list[socket.socket]:
    """Half the clients stop inside the headers, half inside the body."""
    started = []
    for n in range(SLOW_CLIENTS):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if n % 2:
            sock.sendall(b"POST /api/v1/charging-requests HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-")
        else:
            sock.sendall(
                b"POST /api/v1/charging-requests HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b'Content-Type: application/json\r\nContent-Length: 400\r\n\r\n{"station_id":'
            )
        started.append(sock)
    return started


def _closed(sock: socket.socket) -> bool:
    """The proxy has answered (408) or closed the connection: recv no longer waits."""
    sock.settimeout(0.05)
    try:
        sock.recv(4096)
    except TimeoutError:
        return False
    except OSError:
        pass
    return True


def test_a_hundred_half_sent_requests_leave_the_api_answering(front: int) -> None:
    slow = _half_requests(front)
    try:
        # Throughout: every probe is answered (sequential, bounded in count, each within 3 s).
        answers = [_healthz(front) for _ in range(20)]
        assert answers == [200] * 20

        # And the proxy lets go of each slow client once its time is up.
        wait_until(
            lambda: all(_closed(sock) for sock in slow),
            timeout=CLIENT_TIMEOUT_S + 20,
            what="nginx to close every slow connection",
            interval=0.5,
        )
        assert _healthz(front) == 200
    finally:
        for sock in slow:
            sock.close()
