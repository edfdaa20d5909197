"""Connections as the api server (granian) keeps them: an oversized body must not leave a kept-alive
connection that answers nothing more; an HTTP/1.1 request must name its Host."""

from __future__ import annotations

import http.client

import pytest

from tests.integration.http.conftest import ApiServer, closed_by_server, exchange, request_bytes

OVERSIZED = b'{"padding": "' + b"p" * (100 * 1024) + b'"}'  # 100 KiB, the limit is 64 KiB
HOST = {"Host": "127.0.0.1"}


@pytest.mark.parametrize(
    ("path", "with_key"),
    [
        pytest.param("/api/v1/charging-requests", True, id="v1-413"),
        pytest.param("/api/checkauthority/", True, id="original-route-413"),
        pytest.param("/api/v1/authorize", False, id="v1-401-before-the-body-is-read"),
        pytest.param("/nowhere", False, id="unknown-path-404"),
        pytest.param("/admin/login/", False, id="admin-403"),
    ],
)
def test_after_an_oversized_body_the_connection_is_closed_or_keeps_answering(
    api_server: ApiServer, api_key: str, path: str, with_key: bool
) -> None:
    headers = {**HOST, "Content-Type": "application/json"}
    if with_key:
        headers["Authorization"] = f"Bearer {api_key}"

    with api_server.connect() as sock:
        first = exchange(sock, request_bytes("POST", path, headers=headers, body=OVERSIZED), method="POST")
        connection = first.headers.get("Connection", "").lower()
        if with_key:
            assert first.status == 413
            assert connection == "close"
        if connection == "close":
            assert closed_by_server(sock)
            return
        try:
            second = exchange(sock, request_bytes("GET", "/api/healthz", headers=HOST))
        except (http.client.RemoteDisconnected, ConnectionError):
            pytest.fail(
                f"{first.status} said keep-alive, yet the next request on the connection got no answer"
            )
        assert second.status == 200


def test_a_413_on_a_kept_alive_connection_is_followed_by_a_new_connection_that_works(
    api_server: ApiServer, api_key: str
) -> None:
    headers = {**HOST, "Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    with api_server.connect() as sock:
        exchange(sock, request_bytes("GET", "/api/healthz", headers=HOST))  # kept alive so far
        refused = exchange(
            sock, request_bytes("POST", "/api/v1/authorize", headers=headers, body=OVERSIZED), method="POST"
        )
        assert (refused.status, refused.headers["Connection"]) == (413, "close")
        assert refused.json()["detail"].startswith("the request body is over")
    with api_server.connect() as sock:
        assert exchange(sock, request_bytes("GET", "/api/healthz", headers=HOST)).status == 200


def test_an_http11_request_without_a_host_header_is_400(api_server: ApiServer) -> None:
    with api_server.connect() as sock:
        answer = exchange(sock, b"GET /api/healthz HTTP/1.1\r\n\r\n")

        assert answer.status == 400
        assert "Host" in answer.json()["detail"]
        assert (answer.headers["Connection"], closed_by_server(sock)) == ("close", True)


def test_an_http10_request_needs_no_host_header(api_server: ApiServer) -> None:
    with api_server.connect() as sock:
        answer = exchange(sock, b"GET /api/healthz HTTP/1.0\r\n\r\n")

    assert answer.status == 200
