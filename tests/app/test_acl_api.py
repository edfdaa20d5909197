"""/api/v1/stations, /token-groups, /tokens and /grants, and what their changes do to /api/v1/authorize."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client
from django.utils import timezone

from apps.access.models import DriverToken, Grant, Station, TokenGroup
from apps.clients.services import api_client_get_or_create, api_key_create

STATION = "5d1b6f3c-8a52-4c1e-9f0a-2b7d4e6c8a10"
OTHER_STATION = "0e6a1c9b-3f47-4d28-8b5e-7c2a9d1f4e36"
LEGACY_STATION = "ST0001abcdefghijklmnopqrstuvwxyz0123"
TOKEN = "04A1B2C3D4E5F6-driver.token_01"
FLEET_TOKEN = "fleet-driver-token-000000001"
UNKNOWN_TOKEN = "unknown-driver-token-000000"


@dataclass
class Api:
    """The test client with one API key presented as a bearer token."""

    http: Client
    key: str | None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.http.get(path, data=params or {}, headers=self._headers())

    def post(self, path: str, body: Any = None) -> Any:
        return self.http.post(
            path, data=json.dumps(body or {}), content_type="application/json", headers=self._headers()
        )

    def patch(self, path: str, body: Any) -> Any:
        return self.http.patch(
            path, data=json.dumps(body), content_type="application/json", headers=self._headers()
        )

    def delete(self, path: str) -> Any:
        return self.http.delete(path, headers=self._headers())


def _key(*scopes: str) -> str:
    client = api_client_get_or_create(name="acl-operator")
    return api_key_create(client=client, scopes=scopes)[1]


@pytest.fixture
def api(client: Client, db: None) -> Api:
    """acl:read, acl:write and authorize."""
    return Api(client, _key("acl:read", "acl:write", "authorize"))


@pytest.fixture
def reader(client: Client, db: None) -> Api:
    return Api(client, _key("acl:read"))


def at(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def iso(moment: datetime) -> str:
    return moment.isoformat()


def fields_of(response: Any) -> set[str]:
    assert response.status_code == 422, response.content
    return {str(error["loc"][-1]) for error in response.json()["detail"]}


def authorize(api: Api, station_id: str = STATION, driver_token: str = TOKEN) -> dict[str, Any]:
    response = api.post("/api/v1/authorize", {"station_id": station_id, "driver_token": driver_token})
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def verdict(api: Api, station_id: str = STATION, driver_token: str = TOKEN) -> tuple[str, str]:
    body = authorize(api, station_id, driver_token)
    return body["status"], body["reason"]


def station(api: Api, station_id: str = STATION, **fields: Any) -> dict[str, Any]:
    response = api.post("/api/v1/stations", {"station_id": station_id, **fields})
    assert response.status_code == 201, response.content
    body: dict[str, Any] = response.json()
    return body


def token(api: Api, value: str = TOKEN, **fields: Any) -> dict[str, Any]:
    response = api.post("/api/v1/tokens", {"value": value, **fields})
    assert response.status_code == 201, response.content
    body: dict[str, Any] = response.json()
    return body


def grant(api: Api, **fields: Any) -> dict[str, Any]:
    response = api.post("/api/v1/grants", fields)
    assert response.status_code == 201, response.content
    body: dict[str, Any] = response.json()
    return body


def every_page(api: Api, path: str, key: str, limit: int, **filters: Any) -> list[Any]:
    """Follow next_cursor to the end; the keys of every item, in the order served."""
    seen: list[Any] = []
    cursor = None
    for _ in range(100):
        params = {**filters, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = api.get(path, params)
        assert response.status_code == 200, response.content
        body = response.json()
        assert len(body["items"]) <= limit
        seen.extend(item[key] for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("pagination did not end")


# --- stations -----------------------------------------------------------------------------------


def test_a_station_is_created_under_its_normalized_id_and_found_by_any_form(api: Api) -> None:
    created = station(api, STATION.replace("-", "").upper(), name="Depot 1", location="Hall B")

    assert created["station_id"] == STATION
    assert (created["name"], created["location"], created["enabled"]) == ("Depot 1", "Hall B", True)
    for form in (STATION, STATION.upper(), STATION.replace("-", "")):
        response = api.get(f"/api/v1/stations/{form}")
        assert (response.status_code, response.json()["station_id"]) == (200, STATION)
    assert station(api, LEGACY_STATION)["station_id"] == LEGACY_STATION


def test_creating_an_existing_station_in_another_form_is_409(api: Api) -> None:
    station(api)

    response = api.post("/api/v1/stations", {"station_id": STATION.upper(), "name": "again"})

    assert response.status_code == 409
    assert Station.objects.get().name == ""


@pytest.mark.parametrize("bad", ["bad", STATION + "0", "x" * 36 + "!", 42, None])
def test_a_malformed_station_id_is_422_naming_it(api: Api, bad: Any) -> None:
    assert fields_of(api.post("/api/v1/stations", {"station_id": bad})) == {"station_id"}
    assert not Station.objects.exists()


def test_patching_a_station_changes_only_the_given_fields(api: Api) -> None:
    station(api, name="Depot 1", location="Hall B")

    response = api.patch(f"/api/v1/stations/{STATION.upper()}", {"location": "Hall C"})

    assert response.status_code == 200
    assert (response.json()["name"], response.json()["location"]) == ("Depot 1", "Hall C")
    assert fields_of(api.patch(f"/api/v1/stations/{STATION}", {"name": None})) == {"name"}
    assert fields_of(api.patch(f"/api/v1/stations/{STATION}", {"enabled": "maybe"})) == {"enabled"}


def test_disabling_a_station_refuses_every_token_there_until_it_is_enabled(api: Api) -> None:
    station(api)
    token(api)
    grant(api, token=TOKEN, station_id=STATION)

    api.patch(f"/api/v1/stations/{STATION}", {"enabled": False})
    disabled = verdict(api)
    api.patch(f"/api/v1/stations/{STATION}", {"enabled": True})

    assert disabled == ("not_allowed", "station_disabled")
    assert verdict(api) == ("allowed", "granted")


def test_station_list_filters_by_enabled_and_by_part_of_id_name_or_location(api: Api) -> None:
    station(api, STATION, name="Depot North", location="Berlin")
    station(api, OTHER_STATION, name="Mall", location="Hamburg", enabled=False)
    station(api, LEGACY_STATION, name="Garage")

    def ids(**filters: Any) -> list[str]:
        return [item["station_id"] for item in api.get("/api/v1/stations", filters).json()["items"]]

    assert ids() == sorted([STATION, OTHER_STATION, LEGACY_STATION])
    assert ids(enabled="false") == [OTHER_STATION]
    assert ids(enabled="true") == sorted([STATION, LEGACY_STATION])
    assert ids(q="north") == [STATION]
    assert ids(q="HAMBURG") == [OTHER_STATION]
    assert ids(q="st0001") == [LEGACY_STATION]
    assert ids(q="garage", enabled="false") == []


def test_station_pages_serve_every_station_exactly_once(api: Api) -> None:
    created = sorted(station(api, f"{n:08x}-0000-4000-8000-000000000000")["station_id"] for n in range(11))

    assert every_page(api, "/api/v1/stations", "station_id", limit=3) == created
    assert every_page(api, "/api/v1/stations", "station_id", limit=11) == created
    assert every_page(api, "/api/v1/stations", "station_id", limit=1000) == created


def test_unknown_stations_in_the_path_are_404_and_malformed_ones_422(api: Api) -> None:
    assert api.get(f"/api/v1/stations/{STATION}").status_code == 404
    assert api.patch(f"/api/v1/stations/{STATION}", {"name": "x"}).status_code == 404
    assert fields_of(api.get("/api/v1/stations/not-a-station")) == {"station_id"}


# --- tokens and groups --------------------------------------------------------------------------


def test_a_token_is_created_with_its_group_type_validity_and_note(api: Api) -> None:
    assert api.post("/api/v1/token-groups", {"name": "fleet-a"}).status_code == 201
    until = (timezone.now() + timedelta(days=30)).replace(microsecond=0)

    created = token(api, type="app", group="fleet-a", valid_until=iso(until), note="van 7")

    assert created["value"] == TOKEN
    assert (created["type"], created["status"], created["group"], created["note"]) == (
        "app",
        "active",
        "fleet-a",
        "van 7",
    )
    assert at(created["valid_until"]) == until
    assert api.get(f"/api/v1/tokens/{TOKEN}").json() == created


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"value": "no spaces allowed"}, "value"),
        ({"value": TOKEN + "!"}, "value"),
        ({"value": TOKEN, "type": "card"}, "type"),
        ({"value": TOKEN, "group": "no-such-group"}, "group"),
        ({"value": TOKEN, "valid_until": "2030-01-01T00:00:00"}, "valid_until"),  # no time zone
        ({"value": TOKEN, "valid_until": "next week"}, "valid_until"),
        ({"value": TOKEN, "note": "lone \ud800 surrogate"}, "note"),
    ],
)
def test_a_bad_token_field_is_422_naming_it(api: Api, body: dict[str, Any], field: str) -> None:
    assert fields_of(api.post("/api/v1/tokens", body)) == {field}
    assert not DriverToken.objects.exists()


def test_any_utc_offset_iso_8601_allows_is_stored_as_the_same_moment(api: Api) -> None:
    # PostgreSQL refuses offsets beyond ±15:59 that ISO 8601 and Python accept.
    created = token(api, valid_until="2030-01-01T00:00:00-20:17")

    assert at(created["valid_until"]) == at("2030-01-01T20:17:00Z")


def test_creating_an_existing_token_or_group_is_409(api: Api) -> None:
    token(api)
    api.post("/api/v1/token-groups", {"name": "fleet-a"})

    assert api.post("/api/v1/tokens", {"value": TOKEN, "note": "again"}).status_code == 409
    assert api.post("/api/v1/token-groups", {"name": "fleet-a"}).status_code == 409
    assert fields_of(api.post("/api/v1/token-groups", {"name": "  "})) == {"name"}
    assert DriverToken.objects.get().note == ""


def test_patching_a_token_changes_only_the_given_fields(api: Api) -> None:
    api.post("/api/v1/token-groups", {"name": "fleet-a"})
    token(api, note="van 7", group="fleet-a")
    until = (timezone.now() + timedelta(days=1)).replace(microsecond=0)

    changed = api.patch(f"/api/v1/tokens/{TOKEN}", {"valid_until": iso(until), "group": None}).json()

    assert (changed["note"], changed["group"], at(changed["valid_until"])) == ("van 7", None, until)
    assert api.patch(f"/api/v1/tokens/{TOKEN}", {"group": "fleet-a"}).json()["group"] == "fleet-a"
    assert api.patch(f"/api/v1/tokens/{TOKEN}", {"valid_until": None}).json()["valid_until"] is None
    assert fields_of(api.patch(f"/api/v1/tokens/{TOKEN}", {"group": "fleet-b"})) == {"group"}
    assert fields_of(api.patch(f"/api/v1/tokens/{TOKEN}", {"type": None})) == {"type"}
    assert fields_of(api.patch(f"/api/v1/tokens/{TOKEN}", {"status": "blocked", "type": "x"})) == {"type"}
    assert api.get(f"/api/v1/tokens/{TOKEN}").json()["status"] == "active"


def test_blocking_a_token_refuses_it_and_unblocking_lets_it_charge_again(api: Api) -> None:
    station(api)
    token(api)
    grant(api, token=TOKEN, station_id=STATION)

    blocked = api.post(f"/api/v1/tokens/{TOKEN}/block")
    refused = verdict(api)
    twice = api.post(f"/api/v1/tokens/{TOKEN}/block")
    unblocked = api.post(f"/api/v1/tokens/{TOKEN}/unblock")

    assert (blocked.status_code, blocked.json()["status"]) == (200, "blocked")
    assert refused == ("not_allowed", "token_blocked")
    assert (twice.status_code, twice.json()["status"]) == (200, "blocked")
    assert (unblocked.status_code, unblocked.json()["status"]) == (200, "active")
    assert verdict(api) == ("allowed", "granted")
    assert Grant.objects.filter(revoked_at=None).count() == 1


def test_a_token_is_never_deleted(api: Api) -> None:
    token(api)

    response = api.delete(f"/api/v1/tokens/{TOKEN}")

    assert response.status_code == 405
    assert DriverToken.objects.filter(value=TOKEN).exists()


def test_unknown_tokens_in_the_path_are_404_and_malformed_ones_422(api: Api) -> None:
    for response in [
        api.get(f"/api/v1/tokens/{UNKNOWN_TOKEN}"),
        api.patch(f"/api/v1/tokens/{UNKNOWN_TOKEN}", {"note": "x"}),
        api.post(f"/api/v1/tokens/{UNKNOWN_TOKEN}/block"),
        api.post(f"/api/v1/tokens/{UNKNOWN_TOKEN}/unblock"),
    ]:
        assert response.status_code == 404
    assert fields_of(api.get(f"/api/v1/tokens/{'A' * 81}")) == {"value"}


# --- tokens as stations send them (OCPP idTags, RFID UIDs) -----------------------------------------


def test_an_rfid_uid_of_8_hex_digits_is_held_and_matched(api: Api) -> None:
    station(api)
    token(api, "04A2B3C4")
    grant(api, token="04A2B3C4", station_id=STATION)

    assert verdict(api, driver_token="04A2B3C4") == ("allowed", "granted")
    # Matched exactly as stored: a reader that sends the UID in lower case sends another token.
    assert verdict(api, driver_token="04a2b3c4") == ("not_allowed", "unknown_token")


@pytest.mark.parametrize("value", ["fleet:driver|0001", "driver@acme.example", "DE*ACM*C00001*7", "a+b=c"])
def test_a_token_with_any_ocpp_identifier_character_works_in_the_path_too(api: Api, value: str) -> None:
    station(api)
    token(api, value)
    grant(api, token=value, station_id=STATION)
    # As a client sends it: percent-encoded where a URL needs it.
    path = f"/api/v1/tokens/{quote(value, safe='')}"

    found = api.get(path)
    blocked = api.post(f"{path}/block")
    refused = verdict(api, driver_token=value)

    assert (found.status_code, found.json()["value"]) == (200, value)
    assert (blocked.status_code, blocked.json()["status"]) == (200, "blocked")
    assert refused == ("not_allowed", "token_blocked")


def test_token_list_filters_by_status_group_type_and_part_of_value_or_note(api: Api) -> None:
    api.post("/api/v1/token-groups", {"name": "fleet-a"})
    token(api, TOKEN, type="rfid", note="red card")
    token(api, FLEET_TOKEN, type="app", group="fleet-a")
    token(api, UNKNOWN_TOKEN, type="other")
    api.post(f"/api/v1/tokens/{UNKNOWN_TOKEN}/block")

    def values(**filters: Any) -> list[str]:
        return [item["value"] for item in api.get("/api/v1/tokens", filters).json()["items"]]

    assert values() == sorted([TOKEN, FLEET_TOKEN, UNKNOWN_TOKEN])
    assert values(status="blocked") == [UNKNOWN_TOKEN]
    assert values(status="active") == sorted([TOKEN, FLEET_TOKEN])
    assert values(group="fleet-a") == [FLEET_TOKEN]
    assert values(type="app") == [FLEET_TOKEN]
    assert values(q="RED") == [TOKEN]
    assert values(q="fleet-driver") == [FLEET_TOKEN]
    assert fields_of(api.get("/api/v1/tokens", {"status": "lost"})) == {"status"}


def test_token_pages_serve_every_token_exactly_once(api: Api) -> None:
    created = sorted(token(api, f"driver-token-{n:016d}")["value"] for n in range(10))

    assert every_page(api, "/api/v1/tokens", "value", limit=4) == created


def test_group_pages_serve_every_group_exactly_once(api: Api) -> None:
    names = sorted(f"fleet-{n}" for n in range(5))
    for name in names:
        assert api.post("/api/v1/token-groups", {"name": name}).status_code == 201

    assert every_page(api, "/api/v1/token-groups", "name", limit=2) == names


# --- grants -------------------------------------------------------------------------------------


def test_a_grant_lets_the_token_charge_at_that_station_only(api: Api) -> None:
    station(api)
    station(api, OTHER_STATION)
    token(api)

    created = grant(api, token=TOKEN, station_id=STATION.upper(), note="contract 12")

    assert created["station_id"] == STATION
    assert (created["token"], created["group"], created["note"], created["active"]) == (
        TOKEN,
        None,
        "contract 12",
        True,
    )
    assert api.get(f"/api/v1/grants/{created['id']}").json() == created
    assert verdict(api) == ("allowed", "granted")
    assert verdict(api, OTHER_STATION) == ("not_allowed", "no_grant")


def test_a_group_grant_lets_every_token_of_the_group_charge(api: Api) -> None:
    station(api)
    api.post("/api/v1/token-groups", {"name": "fleet-a"})
    token(api, FLEET_TOKEN, group="fleet-a")
    token(api)
    until = (timezone.now() + timedelta(hours=5)).replace(microsecond=0)

    grant(api, group="fleet-a", station_id=STATION, valid_until=iso(until))

    fleet = authorize(api, driver_token=FLEET_TOKEN)
    assert (fleet["status"], fleet["reason"], at(fleet["expires_at"])) == ("allowed", "granted", until)
    assert verdict(api) == ("not_allowed", "no_grant")


def test_an_all_stations_grant_lets_the_token_charge_anywhere_even_at_unlisted_stations(api: Api) -> None:
    station(api)
    token(api)

    created = grant(api, token=TOKEN, station_id=None)

    assert created["station_id"] is None
    for somewhere in (STATION, OTHER_STATION, LEGACY_STATION):
        body = authorize(api, somewhere)
        assert (body["status"], body["reason"], body["expires_at"]) == ("allowed", "granted", None)


def test_expires_at_is_the_earlier_of_token_and_longest_covering_grant(api: Api) -> None:
    now = timezone.now().replace(microsecond=0)
    station(api)
    api.post("/api/v1/token-groups", {"name": "fleet-a"})
    token(api, group="fleet-a", valid_until=iso(now + timedelta(days=10)))
    grant(api, token=TOKEN, station_id=STATION, valid_until=iso(now + timedelta(hours=2)))
    grant(api, group="fleet-a", station_id=None, valid_until=iso(now + timedelta(hours=6)))

    by_grants = at(authorize(api)["expires_at"])
    api.patch(f"/api/v1/tokens/{TOKEN}", {"valid_until": iso(now + timedelta(hours=1))})
    by_token = at(authorize(api)["expires_at"])

    assert by_grants == now + timedelta(hours=6)  # the group's all-stations grant outlives the other
    assert by_token == now + timedelta(hours=1)


def test_revoking_a_grant_ends_it_and_revoking_again_changes_nothing(api: Api) -> None:
    station(api)
    token(api)
    created = grant(api, token=TOKEN, station_id=STATION)

    revoked = api.post(f"/api/v1/grants/{created['id']}/revoke").json()
    again = api.post(f"/api/v1/grants/{created['id']}/revoke").json()

    assert revoked["revoked_at"] is not None
    assert revoked["active"] is False
    assert again["revoked_at"] == revoked["revoked_at"]
    assert verdict(api) == ("not_allowed", "no_grant")
    assert api.patch(f"/api/v1/grants/{created['id']}", {"note": "x"}).status_code == 409
    assert grant(api, token=TOKEN, station_id=STATION)["id"] != created["id"]  # a revoked one is no twin
    assert verdict(api) == ("allowed", "granted")


def test_an_expired_grant_refuses_until_its_window_is_extended(api: Api) -> None:
    now = timezone.now()
    station(api)
    token(api)
    created = grant(
        api, token=TOKEN, station_id=STATION, valid_from=iso(now - timedelta(days=2)), valid_until=iso(now)
    )

    expired = verdict(api)
    extended = api.patch(f"/api/v1/grants/{created['id']}", {"valid_until": None})

    assert expired == ("not_allowed", "grant_expired")
    assert created["active"] is False
    assert (extended.status_code, extended.json()["active"]) == (200, True)
    assert verdict(api) == ("allowed", "granted")


def test_a_grant_not_yet_valid_refuses_until_it_starts(api: Api) -> None:
    now = timezone.now()
    station(api)
    token(api)
    created = grant(api, token=TOKEN, station_id=STATION, valid_from=iso(now + timedelta(hours=1)))

    waiting = verdict(api)
    api.patch(f"/api/v1/grants/{created['id']}", {"valid_from": iso(now - timedelta(hours=1))})

    assert waiting == ("not_allowed", "grant_not_yet_valid")
    assert verdict(api) == ("allowed", "granted")


def test_patching_a_grant_into_an_empty_window_is_422_and_changes_nothing(api: Api) -> None:
    now = timezone.now().replace(microsecond=0)
    token(api)
    created = grant(api, token=TOKEN, valid_until=iso(now + timedelta(days=1)))

    response = api.patch(f"/api/v1/grants/{created['id']}", {"valid_from": iso(now + timedelta(days=2))})

    assert fields_of(response) == {"valid_until"}
    assert api.get(f"/api/v1/grants/{created['id']}").json() == created


def test_an_identical_live_grant_is_not_duplicated(api: Api) -> None:
    station(api)
    token(api)
    first = grant(api, token=TOKEN, station_id=STATION)

    twin = api.post("/api/v1/grants", {"token": TOKEN, "station_id": STATION.upper(), "note": "again"})
    windowed = api.post(
        "/api/v1/grants",
        {"token": TOKEN, "station_id": STATION, "valid_until": iso(timezone.now() + timedelta(days=1))},
    )

    assert twin.status_code == 409
    assert twin.json()["grant"] == first
    assert windowed.status_code == 201
    assert Grant.objects.count() == 2


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"token": UNKNOWN_TOKEN, "station_id": STATION}, {"token"}),
        ({"group": "no-such-fleet"}, {"group"}),
        ({"token": TOKEN, "station_id": OTHER_STATION}, {"station_id"}),  # well-formed, not in the ACL
        ({"token": TOKEN, "station_id": "not-a-station"}, {"station_id"}),
        ({"token": "short", "station_id": STATION}, {"token"}),
        ({"token": TOKEN, "group": "fleet-a", "station_id": STATION}, {"token"}),
        ({"station_id": STATION}, {"token"}),
        ({}, {"token"}),
        (
            {"token": TOKEN, "valid_from": "2030-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"},
            {"valid_until"},
        ),
        (
            {"token": TOKEN, "valid_from": "2030-01-02T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"},
            {"valid_until"},
        ),
        ({"token": TOKEN, "valid_from": "2030-01-01T00:00:00"}, {"valid_from"}),
        ({"token": UNKNOWN_TOKEN, "group": "no-such-fleet", "station_id": OTHER_STATION}, {"token"}),
    ],
)
def test_a_bad_grant_is_422_naming_the_field_and_nothing_is_written(
    api: Api, body: dict[str, Any], fields: set[str]
) -> None:
    station(api)
    token(api)
    api.post("/api/v1/token-groups", {"name": "fleet-a"})

    assert fields_of(api.post("/api/v1/grants", body)) == fields
    assert not Grant.objects.exists()


def test_a_grant_for_an_unknown_token_at_an_unknown_station_names_both(api: Api) -> None:
    response = api.post("/api/v1/grants", {"token": UNKNOWN_TOKEN, "station_id": STATION})

    assert fields_of(response) == {"token", "station_id"}


def test_grant_list_filters(api: Api) -> None:
    now = timezone.now()
    station(api)
    station(api, OTHER_STATION)
    api.post("/api/v1/token-groups", {"name": "fleet-a"})
    token(api)
    token(api, FLEET_TOKEN, group="fleet-a")
    at_station = grant(api, token=TOKEN, station_id=STATION)["id"]
    everywhere = grant(api, token=TOKEN, station_id=None)["id"]
    fleet = grant(api, group="fleet-a", station_id=OTHER_STATION)["id"]
    expired = grant(api, token=FLEET_TOKEN, station_id=STATION, valid_until=iso(now))["id"]
    future = grant(api, token=FLEET_TOKEN, station_id=None, valid_from=iso(now + timedelta(days=1)))["id"]
    revoked = grant(api, group="fleet-a", station_id=STATION)["id"]
    api.post(f"/api/v1/grants/{revoked}/revoke")

    def ids(**filters: Any) -> set[int]:
        response = api.get("/api/v1/grants", filters)
        assert response.status_code == 200, response.content
        return {item["id"] for item in response.json()["items"]}

    assert ids() == {at_station, everywhere, fleet, expired, future, revoked}
    assert ids(token=TOKEN) == {at_station, everywhere}
    assert ids(group="fleet-a") == {fleet, revoked}
    assert ids(station_id=STATION.replace("-", "")) == {at_station, expired, revoked}
    assert ids(all_stations="true") == {everywhere, future}
    assert ids(all_stations="false") == {at_station, fleet, expired, revoked}
    assert ids(active="true") == {at_station, everywhere, fleet}
    assert ids(active="false") == {expired, future, revoked}
    assert ids(token=FLEET_TOKEN, active="true") == set()
    assert fields_of(api.get("/api/v1/grants", {"station_id": "nope"})) == {"station_id"}


def test_grant_pages_serve_every_grant_exactly_once_newest_first(api: Api) -> None:
    token(api)
    for n in range(9):
        station(api, f"{n:08x}-0000-4000-8000-000000000000")
    created = [
        grant(api, token=TOKEN, station_id=f"{n:08x}-0000-4000-8000-000000000000")["id"] for n in range(9)
    ]

    assert every_page(api, "/api/v1/grants", "id", limit=2) == sorted(created, reverse=True)
    assert every_page(api, "/api/v1/grants", "id", limit=2, active="true") == sorted(created, reverse=True)


def test_unknown_grants_in_the_path_are_404(api: Api) -> None:
    assert api.get("/api/v1/grants/999999").status_code == 404
    assert api.patch("/api/v1/grants/999999", {"note": "x"}).status_code == 404
    assert api.post("/api/v1/grants/999999/revoke").status_code == 404
    assert fields_of(api.get("/api/v1/grants/abc")) == {"grant_id"}
    assert fields_of(api.get(f"/api/v1/grants/{2**63}")) == {"grant_id"}  # beyond bigint


@pytest.mark.parametrize(
    "path", ["/api/v1/stations", "/api/v1/tokens", "/api/v1/grants", "/api/v1/token-groups"]
)
def test_a_cursor_of_another_list_or_a_bad_limit_is_422(api: Api, path: str) -> None:
    token(api)
    token(api, FLEET_TOKEN)
    station(api)
    station(api, OTHER_STATION)
    other = "/api/v1/stations" if path == "/api/v1/tokens" else "/api/v1/tokens"
    foreign = api.get(other, {"limit": 1}).json()["next_cursor"]

    assert fields_of(api.get(path, {"cursor": foreign})) == {"cursor"}
    assert fields_of(api.get(path, {"cursor": "%%%"})) == {"cursor"}
    assert fields_of(api.get(path, {"limit": 0})) == {"limit"}
    assert fields_of(api.get(path, {"limit": 1001})) == {"limit"}


@pytest.mark.parametrize(
    "key",
    ["9" * 5000, str(2**63), "\u00b2", "\u0661\u0662"],
    ids=["5000-digits", "over-bigint", "superscript", "arabic-digits"],
)
def test_a_grants_cursor_of_a_key_no_grant_could_have_is_422(api: Api, key: str) -> None:
    cursor = base64.urlsafe_b64encode(f"grant|{key}".encode()).decode().rstrip("=")

    assert fields_of(api.get("/api/v1/grants", {"cursor": cursor})) == {"cursor"}


# --- scopes -------------------------------------------------------------------------------------

READS = [
    "/api/v1/stations",
    f"/api/v1/stations/{STATION}",
    "/api/v1/tokens",
    f"/api/v1/tokens/{TOKEN}",
    "/api/v1/token-groups",
    "/api/v1/grants",
    "/api/v1/grants/1",
]
WRITES = [
    ("post", "/api/v1/stations", {"station_id": OTHER_STATION}),
    ("patch", f"/api/v1/stations/{STATION}", {"name": "x"}),
    ("post", "/api/v1/tokens", {"value": UNKNOWN_TOKEN}),
    ("patch", f"/api/v1/tokens/{TOKEN}", {"note": "x"}),
    ("post", f"/api/v1/tokens/{TOKEN}/block", {}),
    ("post", f"/api/v1/tokens/{TOKEN}/unblock", {}),
    ("post", "/api/v1/token-groups", {"name": "fleet-z"}),
    ("post", "/api/v1/grants", {"token": TOKEN, "station_id": None}),
    ("patch", "/api/v1/grants/1", {"note": "x"}),
    ("post", "/api/v1/grants/1/revoke", {}),
]


@pytest.fixture
def acl(db: None) -> None:
    """One station, token and grant (id 1 is not guaranteed: the routes use the real id)."""
    Station.objects.create(station_id=STATION)
    driver_token = DriverToken.objects.create(value=TOKEN)
    Grant.objects.create(token=driver_token, station_id=STATION)


@pytest.mark.parametrize("write", WRITES, ids=[f"{method} {path}" for method, path, _ in WRITES])
def test_writes_need_acl_write(client: Client, reader: Api, acl: None, write: tuple[str, str, Any]) -> None:
    method, path, body = write
    before = [list(model.objects.values()) for model in (Station, DriverToken, TokenGroup, Grant)]

    denied = getattr(reader, method)(path, body)
    anonymous = getattr(Api(client, None), method)(path, body)

    assert denied.status_code == 403
    assert anonymous.status_code == 401
    assert [list(model.objects.values()) for model in (Station, DriverToken, TokenGroup, Grant)] == before


@pytest.mark.parametrize("path", READS)
def test_reads_need_acl_read_and_acl_read_is_enough(
    client: Client, reader: Api, acl: None, path: str
) -> None:
    path = path.replace("/grants/1", f"/grants/{Grant.objects.get().pk}")

    assert reader.get(path).status_code == 200
    assert Api(client, _key("acl:write", "authorize")).get(path).status_code == 403
    assert Api(client, None).get(path).status_code == 401


def test_the_openapi_document_describes_the_acl_routes(client: Client) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]

    expected = {
        "/api/v1/stations": {"get", "post"},
        "/api/v1/stations/{station_id}": {"get", "patch"},
        "/api/v1/token-groups": {"get", "post"},
        "/api/v1/tokens": {"get", "post"},
        "/api/v1/tokens/{value}": {"get", "patch"},
        "/api/v1/tokens/{value}/block": {"post"},
        "/api/v1/tokens/{value}/unblock": {"post"},
        "/api/v1/grants": {"get", "post"},
        "/api/v1/grants/{grant_id}": {"get", "patch"},
        "/api/v1/grants/{grant_id}/revoke": {"post"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path
    assert {"201", "409", "422"} <= set(paths["/api/v1/grants"]["post"]["responses"])
    assert "404" in paths["/api/v1/grants/{grant_id}"]["get"]["responses"]
