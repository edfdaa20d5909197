"""With DEBUG on, as `make run` sets it, the real server answers JSON too: no traceback pages, no
list of URL patterns, and the traceback of an unexpected error in its log under the answer's id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.processes import wait_until
from tests.integration.http.conftest import ApiServer, api_server_start


@pytest.fixture(scope="module")
def debug_api(server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """DEBUG on, and two operator typos that make routes fail: REDIS_URL's port (every rate check on
    the API's routes) and a metrics network (/metrics, outside the API)."""
    env = {
        **server_env,
        "DEBUG": "1",
        "REDIS_URL": "redis://127.0.0.1:not-a-port/0",
        "CHARGE_METRICS_ALLOWED_NETS": "not-a-network",
    }
    server = api_server_start(env, tmp_path_factory.mktemp("debug-api") / "api.log")
    try:
        yield server
    finally:
        server.process.stop()


def assert_json(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/json")
    assert "Traceback" not in response.text
    return response.json()


def logged_with(server: ApiServer, request_id: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.log_lines() if request_id in line and line.startswith("{")]


@pytest.mark.parametrize("path", ["/nowhere", "/api/v1/nowhere", "/api/v1/charging-requests/x/y"])
def test_an_unknown_path_is_a_json_404_not_a_list_of_url_patterns(debug_api: ApiServer, path: str) -> None:
    body = assert_json(httpx.get(f"{debug_api.url}{path}"), 404)

    assert "admin/" not in json.dumps(body)


def test_a_host_not_served_is_a_json_400(debug_api: ApiServer) -> None:
    body = assert_json(httpx.get(f"{debug_api.url}/api/healthz", headers={"Host": "attacker.example"}), 400)

    assert "attacker.example" in body["detail"]


@pytest.mark.parametrize(
    ("path", "typo"),
    [
        pytest.param("/api/v1/charging-requests", "not-a-port", id="api-route"),
        pytest.param("/metrics", "not-a-network", id="outside-the-api"),
    ],
)
def test_an_unexpected_error_is_a_json_500_and_its_traceback_is_in_the_log(
    debug_api: ApiServer, api_key: str, path: str, typo: str
) -> None:
    response = httpx.get(f"{debug_api.url}{path}", headers={"Authorization": f"Bearer {api_key}"})

    body = assert_json(response, 500)
    assert set(body) == {"detail", "request_id"}
    wait_until(
        lambda: any(
            typo in entry.get("exception", "") for entry in logged_with(debug_api, body["request_id"])
        ),
        timeout=10,
        what="the traceback's log line",
    )
