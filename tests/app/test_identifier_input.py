"""Identifiers that only look valid: every entry point must refuse them the same way."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.access.models import DriverToken, Station
from apps.charging.models import ChargingRequest
from tests.app.callers import CALLBACK, LEGACY_STATION, STATION, TOKEN, Caller


@pytest.mark.parametrize(
    ("field", "value"), [("driver_token", TOKEN + "\n"), ("station_id", LEGACY_STATION + "\n")]
)
def test_v1_authorize_refuses_an_identifier_with_a_trailing_newline(
    client: Client, caller: Caller, field: str, value: str
) -> None:
    body = {"station_id": STATION, "driver_token": TOKEN, field: value}

    response = caller.post_json(client, "/api/v1/authorize", body)

    assert response.status_code == 422
    assert not ChargingRequest.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"), [("driver_token", TOKEN + "\n"), ("station_id", LEGACY_STATION + "\n")]
)
def test_check_authority_rejects_an_identifier_with_a_trailing_newline(
    client: Client, caller: Caller, field: str, value: str
) -> None:
    body = {"station_id": STATION, "driver_token": TOKEN, "callback_url": CALLBACK, field: value}

    response = caller.post_json(client, "/api/checkauthority/", body)

    assert response.json() == {"status": "rejected", "message": f"{field} is invalid."}
    assert not ChargingRequest.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"), [("driver_token", TOKEN + "\n"), ("station_id", LEGACY_STATION + "\n")]
)
def test_insert_acl_says_error_for_an_identifier_with_a_trailing_newline(
    caller: Caller, field: str, value: str
) -> None:
    http = Client(raise_request_exception=False)
    body = {"station_id": STATION, "driver_token": TOKEN, field: value}

    response = caller.post_json(http, "/api/insertACL/", body)

    assert (response.status_code, response.json()) == (200, {"flag": "error"})
    assert not DriverToken.objects.exists()
    assert not Station.objects.exists()


@pytest.mark.parametrize(
    "station_id", [STATION + "\n", STATION.replace("-", "") + "\n", " " + STATION, "{" + STATION + "}"]
)
def test_a_uuid_station_id_with_extra_characters_is_refused(
    client: Client, caller: Caller, station_id: str
) -> None:
    v1 = caller.post_json(client, "/api/v1/authorize", {"station_id": station_id, "driver_token": TOKEN})
    legacy = caller.post_json(
        client, "/api/checkauthority/", {"station_id": station_id, "driver_token": TOKEN}
    )

    assert v1.status_code == 422
    assert legacy.json() == {"status": "rejected", "message": "station_id is invalid."}
