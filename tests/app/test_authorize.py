"""POST /api/v1/authorize and the ACL it decides against, with station ids in every accepted form."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.access.models import DriverToken, Grant, Station
from apps.access.services import acl_insert
from apps.charging.models import ChargingRequest
from tests.app.callers import LEGACY_STATION, OTHER_STATION, OTHER_TOKEN, STATION, TOKEN, Caller

AUTHORIZE = "/api/v1/authorize"


def authorize(client: Client, caller: Caller, station_id: str = STATION, driver_token: str = TOKEN) -> Any:
    return caller.post_json(client, AUTHORIZE, {"station_id": station_id, "driver_token": driver_token})


def test_authorize_allows_a_token_granted_by_insert_acl(client: Client, caller: Caller) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)

    response = authorize(client, caller)

    assert response.status_code == 200
    body = response.json()
    assert body == {
        "status": "allowed",
        "reason": "granted",
        "message": "Access granted",
        "expires_at": None,
        "request_id": body["request_id"],
    }
    uuid.UUID(body["request_id"])


def test_authorize_denies_an_unknown_token(client: Client, caller: Caller) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)

    response = authorize(client, caller, driver_token=OTHER_TOKEN)

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["reason"], body["message"]) == (
        "not_allowed",
        "unknown_token",
        "Access denied",
    )
    assert body["expires_at"] is None


def test_authorize_denies_a_granted_token_at_another_station(client: Client, caller: Caller) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)

    body = authorize(client, caller, station_id=OTHER_STATION).json()

    assert (body["status"], body["reason"]) == ("not_allowed", "no_grant")


def test_authorize_denies_a_blocked_token(client: Client, caller: Caller) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)
    DriverToken.objects.filter(value=TOKEN).update(status=DriverToken.Status.BLOCKED)

    body = authorize(client, caller).json()

    assert (body["status"], body["reason"]) == ("not_allowed", "token_blocked")


def test_authorize_denies_at_a_disabled_station(client: Client, caller: Caller) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)
    Station.objects.filter(station_id=STATION).update(enabled=False)

    body = authorize(client, caller).json()

    assert (body["status"], body["reason"]) == ("not_allowed", "station_disabled")


def test_authorize_says_until_when_a_time_limited_grant_holds(client: Client, caller: Caller) -> None:
    until = (timezone.now() + timedelta(hours=3)).replace(microsecond=0)
    token = DriverToken.objects.create(value=TOKEN)
    station = Station.objects.create(station_id=STATION)
    Grant.objects.create(token=token, station=station, valid_until=until)

    body = authorize(client, caller).json()

    assert (body["status"], body["reason"]) == ("allowed", "granted")
    assert datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")) == until


def test_authorize_is_logged_with_source_sync(client: Client, caller: Caller) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)

    granted = authorize(client, caller).json()
    denied = authorize(client, caller, driver_token=OTHER_TOKEN).json()

    for answer in (granted, denied):
        row = ChargingRequest.objects.get(request_id=answer["request_id"])
        assert row.source == ChargingRequest.Source.SYNC
        assert row.client_id == caller.client.pk
        assert (row.station_id, row.status, row.reason) == (STATION, answer["status"], answer["reason"])
        assert row.decided_at is not None
    state = caller.get(client, f"/api/v1/charging-requests/{granted['request_id']}").json()
    assert (state["status"], state["source"], state["callback"]) == ("allowed", "sync", None)


def test_authorize_ignores_unknown_fields(client: Client, caller: Caller) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)

    response = caller.post_json(
        client, AUTHORIZE, {"station_id": STATION, "driver_token": TOKEN, "connector": 2, "extra": {"a": 1}}
    )

    assert (response.status_code, response.json()["status"]) == (200, "allowed")


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"station_id": "bad", "driver_token": TOKEN}, {"station_id"}),
        ({"station_id": STATION, "driver_token": "bad token"}, {"driver_token"}),
        ({"station_id": 42, "driver_token": 42}, {"station_id", "driver_token"}),
        ({"driver_token": TOKEN}, {"station_id"}),
        ({}, {"station_id", "driver_token"}),
    ],
)
def test_authorize_refuses_bad_input_with_422_and_logs_nothing(
    client: Client, caller: Caller, body: dict[str, Any], fields: set[str]
) -> None:
    response = caller.post_json(client, AUTHORIZE, body)

    assert response.status_code == 422
    assert {str(error["loc"][-1]) for error in response.json()["detail"]} == fields
    assert not ChargingRequest.objects.exists()


# --- station ids in every accepted form ---------------------------------------------------------


def test_insert_acl_with_an_uppercase_uuid_then_check_authority_lowercase_is_allowed(
    client: Client, caller: Caller
) -> None:
    inserted = caller.post_json(
        client, "/api/insertACL/", {"station_id": STATION.upper(), "driver_token": TOKEN}
    )

    checked = caller.post_json(client, "/api/checkauthority/", {"station_id": STATION, "driver_token": TOKEN})

    assert inserted.json() == {"flag": "success"}
    assert checked.json()["status"] == "allowed"
    assert list(Station.objects.values_list("station_id", flat=True)) == [STATION]


@pytest.mark.parametrize(
    "form",
    [STATION, STATION.upper(), STATION.replace("-", ""), STATION.replace("-", "").upper()],
    ids=["hyphenated", "uppercase", "hex32", "hex32-uppercase"],
)
def test_every_uuid_form_reaches_the_same_station(client: Client, caller: Caller, form: str) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)

    v1 = authorize(client, caller, station_id=form).json()
    legacy = caller.post_json(
        client, "/api/checkauthority/", {"station_id": form, "driver_token": TOKEN}
    ).json()

    assert v1["status"] == legacy["status"] == "allowed"
    logged = set(ChargingRequest.objects.values_list("station_id", flat=True))
    assert logged == {STATION}


def test_a_legacy_station_id_is_kept_exactly_as_given(client: Client, caller: Caller) -> None:
    caller.post_json(client, "/api/insertACL/", {"station_id": LEGACY_STATION, "driver_token": TOKEN})

    exact = authorize(client, caller, station_id=LEGACY_STATION).json()
    other_case = authorize(client, caller, station_id=LEGACY_STATION.upper()).json()

    assert exact["status"] == "allowed"
    assert (other_case["status"], other_case["reason"]) == ("not_allowed", "no_grant")
    assert Station.objects.filter(station_id=LEGACY_STATION).exists()
