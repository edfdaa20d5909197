"""Every answer outside the admin is JSON, whatever DEBUG says (`make run` turns it on): an unknown
path, a Host this service does not serve, an unexpected error (its traceback goes to the log)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from django.test import Client

from tests.app.callers import Caller


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request: pytest.FixtureRequest, settings: Any) -> bool:
    settings.DEBUG = request.param
    return bool(request.param)


@pytest.fixture
def http() -> Client:
    """A client that hands back the 500 the server answered instead of raising the view's exception."""
    return Client(raise_request_exception=False)


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[str]]]:
    """What the log handler has written since the test began: one JSON object per line."""
    formatter = next(
        handler.formatter
        for handler in logging.getLogger().handlers
        if isinstance(handler.formatter, structlog.stdlib.ProcessorFormatter)
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logging.getLogger().addHandler(handler)
    try:
        yield lambda: stream.getvalue().splitlines()
    finally:
        logging.getLogger().removeHandler(handler)


def is_json(response: Any) -> bool:
    return str(response["Content-Type"]).startswith("application/json")


@pytest.mark.parametrize("path", ["/nowhere", "/api/nowhere", "/api/v1/nowhere", "/static/x.css"])
def test_an_unknown_path_is_a_json_404(http: Client, debug: bool, path: str) -> None:
    response = http.get(path)

    assert response.status_code == 404
    assert is_json(response)
    assert "detail" in response.json()


@pytest.mark.parametrize("path", ["/api/healthz", "/nowhere", "/metrics"])
def test_a_host_this_service_does_not_serve_is_a_json_400(http: Client, debug: bool, path: str) -> None:
    response = http.get(path, HTTP_HOST="attacker.example")

    assert response.status_code == 400
    assert is_json(response)
    assert "attacker.example" in response.json()["detail"]


def test_a_wrong_method_is_a_json_405_naming_the_allowed_ones(http: Client, debug: bool) -> None:
    response = http.post("/metrics")

    assert response.status_code == 405
    assert is_json(response)
    assert response["Allow"] == "GET"


@pytest.mark.django_db
def test_an_unexpected_error_in_an_api_route_is_a_json_500_whose_traceback_is_logged(
    http: Client, caller: Caller, debug: bool, settings: Any, log_lines: Callable[[], list[str]]
) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:not-a-port/0"  # an operator's typo: every rate check fails

    response = http.get("/api/v1/charging-requests", headers=caller.headers)

    assert response.status_code == 500
    assert is_json(response)
    body = response.json()
    assert set(body) == {"detail", "request_id"}
    assert "Traceback" not in response.content.decode()
    logged = [json.loads(line) for line in log_lines() if body["request_id"] in line]
    assert any("not-a-port" in entry.get("exception", "") for entry in logged)


def test_an_unexpected_error_outside_the_api_is_a_json_500_whose_traceback_is_logged(
    http: Client, debug: bool, settings: Any, log_lines: Callable[[], list[str]]
) -> None:
    settings.CHARGE_METRICS_ALLOWED_NETS = ["not-a-network"]  # an operator's typo

    response = http.get("/metrics")

    assert response.status_code == 500
    assert is_json(response)
    body = response.json()
    assert set(body) == {"detail", "request_id"}
    logged = [json.loads(line) for line in log_lines() if body["request_id"] in line]
    assert any("not-a-network" in entry.get("exception", "") for entry in logged)


@pytest.mark.django_db
def test_the_admin_keeps_its_own_pages(admin_client: Client, debug: bool) -> None:
    response = admin_client.get("/admin/")

    assert response.status_code == 200
    assert str(response["Content-Type"]).startswith("text/html")
