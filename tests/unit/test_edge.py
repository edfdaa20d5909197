"""project/edge.py on plain environs: what granian's environ needs put right, and the answers that close.

The same rules over real connections: tests/integration/http/test_connections.py."""

from __future__ import annotations

from typing import Any

from project.edge import HttpEdge, environ_normalize


def test_granian_s_http10_protocol_name_and_empty_host_are_put_right() -> None:
    environ = {"SERVER_PROTOCOL": "HTTP/1", "HTTP_HOST": "", "SERVER_NAME": "127.0.0.1"}
    environ_normalize(environ)
    assert environ == {"SERVER_PROTOCOL": "HTTP/1.0", "SERVER_NAME": "127.0.0.1"}


def test_a_real_host_and_http11_are_left_alone() -> None:
    environ = {"SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "api.example:8000"}
    environ_normalize(environ)
    assert environ == {"SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "api.example:8000"}


class Recorder:
    def __init__(self) -> None:
        self.answers: list[tuple[str, list[tuple[str, str]]]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        self.answers.append((status, headers))


def _app(status: str) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, [("Content-Type", "application/json")])
        return [b"{}"]

    return app


def test_an_http11_request_without_host_is_400_and_closes_without_reaching_the_app() -> None:
    record = Recorder()
    body = HttpEdge(_app("200 OK"))({"SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": ""}, record)

    [(status, headers)] = record.answers
    assert status.startswith("400")
    assert ("Connection", "close") in headers
    assert b"Host" in b"".join(body)


def test_an_unread_oversized_body_and_a_413_close_the_connection_others_do_not(settings: Any) -> None:
    big = str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    cases = [("401 Unauthorized", big, True), ("413 Payload Too Large", "10", True), ("200 OK", "10", False)]
    for status, length, closes in cases:
        record = Recorder()
        environ = {"SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "h", "CONTENT_LENGTH": length}
        HttpEdge(_app(status))(environ, record)
        [(_, headers)] = record.answers
        assert (("Connection", "close") in headers) is closes, status
