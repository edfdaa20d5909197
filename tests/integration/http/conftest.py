"""The api as it is served: its server (granian) running project.wsgi in a process of its own, on a free port.

What only the real server shows is tested here: connections kept alive or closed, requests a test
client cannot even send (no Host header), DEBUG as `make run` sets it. One server per module (it
starts in seconds); each test gets its own API key, in a database the server shares.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.test import override_settings

from apps.charging.topics import topics_ensure
from apps.clients.services import ALL_SCOPES, api_client_get_or_create, api_key_create
from harness.processes import Process, free_port, iter_log_lines, wait_until
from tests.stack import api_server_process

READ_TIMEOUT_S = 10.0


@dataclass
class ApiServer:
    process: Process
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_lines(self) -> list[str]:
        return list(iter_log_lines(self.process.log_path))

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=READ_TIMEOUT_S)


def api_server_start(env: dict[str, str], log_path: Path) -> ApiServer:
    """The server as compose/local/serve.sh runs it, one worker of four threads."""
    port = free_port()
    process = api_server_process("api", log_path, env=env, port=port, workers=1, threads=4).start()

    def healthy() -> bool:
        process.ensure_running()
        return httpx.get(f"http://127.0.0.1:{port}/api/healthz", timeout=1).status_code == 200

    try:
        wait_until(healthy, timeout=60, what="api server")
    except BaseException:
        process.stop()
        raise
    return ApiServer(process, port)


@pytest.fixture(scope="module")
def server_env(django_db_setup: None, services: dict[str, str]) -> dict[str, str]:
    """The environment of a server sharing the test database, Redis and Kafka, with a topic of its own."""
    from django.db import connection

    db = connection.settings_dict
    suffix = uuid.uuid4().hex[:8]
    env = dict(os.environ)
    env.update(services)
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        CHARGE_TOPIC=f"charging_requests-http-{suffix}",
        CHARGE_DLQ_TOPIC=f"charging_requests-http-{suffix}.dlq",
        CHARGE_CALLBACK_ALLOW_PRIVATE="1",
        LOG_LEVEL="INFO",
        DEBUG="0",
    )
    with override_settings(CHARGE_TOPIC=env["CHARGE_TOPIC"], CHARGE_DLQ_TOPIC=env["CHARGE_DLQ_TOPIC"]):
        topics_ensure(wait_s=30)
    return env


@pytest.fixture(scope="module")
def api_server(server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """The api with DEBUG off, as production runs it."""
    server = api_server_start(server_env, tmp_path_factory.mktemp("api") / "api.log")
    try:
        yield server
    finally:
        server.process.stop()
        sys.stderr.write(f"\n--- api log ---\n{server.process.log_tail(60)}\n")


@pytest.fixture
def api_key(transactional_db: None) -> str:
    """A key with every scope for a client of its own, committed so that the server sees it."""
    client = api_client_get_or_create(name=f"http-{uuid.uuid4().hex[:8]}")
    client.rate_limit_per_s = 100_000  # these tests are not about rate limits
    client.save()
    return api_key_create(client=client, scopes=ALL_SCOPES)[1]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def exchange(sock: socket.socket, request: bytes, *, method: str = "GET") -> Answer:
    """Send raw request bytes on the connection and read one whole answer from it."""
    sock.sendall(request)
    answer = http.client.HTTPResponse(sock, method=method)
    answer.begin()
    return Answer(answer.status, answer.headers, answer.read())


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server has closed the connection (EOF or reset) within the read timeout."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def request_bytes(method: str, path: str, *, headers: dict[str, str], body: bytes = b"") -> bytes:
    """An HTTP/1.1 request exactly as given: no header is added but Content-Length for a body."""
    lines = [f"{method} {path} HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items())]
    if body or method in {"POST", "PUT", "PATCH"}:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
