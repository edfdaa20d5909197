"""DESIGN "Identifiers and validation": bodies over 64 KiB are answered 413, on every route."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.app.callers import STATION, TOKEN, Caller

LIMIT = 64 * 1024


def padded(size: int) -> str:
    """A JSON body of exactly `size` bytes with valid fields and one unknown, padded field."""
    body = {"station_id": STATION, "driver_token": TOKEN, "padding": ""}
    empty = len(json.dumps(body))
    body["padding"] = "p" * (size - empty)
    text = json.dumps(body)
    assert len(text.encode()) == size
    return text


@pytest.mark.parametrize("path", ["/api/v1/authorize", "/api/checkauthority/"])
def test_a_body_of_exactly_64_kib_is_read(client: Client, caller: Caller, path: str) -> None:
    response = caller.post_json(client, path, padded(LIMIT))

    assert response.status_code == 200
    assert response.json()["reason"] == "unknown_token"


@pytest.mark.parametrize(
    "path", ["/api/v1/authorize", "/api/checkauthority/", "/api/insertACL/", "/api/chargingRequestValidator/"]
)
def test_a_body_over_64_kib_is_413(client: Client, caller: Caller, path: str) -> None:
    response = caller.post_json(client, path, padded(LIMIT + 1))

    assert response.status_code == 413
    assert response["Content-Type"].startswith("application/json")
