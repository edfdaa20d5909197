"""The original service's four routes: same paths, fields and bodies, and HTTP 200 even for bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from apps.charging.models import ChargingRequest
from tests.app.callers import (
    CALLBACK,
    LEGACY_STATION,
    OTHER_STATION,
    OTHER_TOKEN,
    STATION,
    TOKEN,
    Caller,
    LogRow,
)

VALIDATOR = "/api/chargingRequestValidator/"
CHECK = "/api/checkauthority/"
INSERT = "/api/insertACL/"
LOG = "/api/getrequestlog/"

GOOD = {"station_id": STATION, "driver_token": TOKEN, "callback_url": CALLBACK}


def rejected(field: str) -> dict[str, str]:
    return {"status": "rejected", "message": f"{field} is invalid."}


# --- POST /api/chargingRequestValidator/ (only its rejections: accepting needs Kafka) -------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"station_id": "not-a-station"}, "station_id"),
        ({"station_id": ""}, "station_id"),
        ({"station_id": 12345}, "station_id"),
        ({"station_id": None}, "station_id"),
        ({"station_id": LEGACY_STATION + "x"}, "station_id"),
        ({"station_id": "5d1b6f3c-8a52-4c1e-9f0a-2b7d4e6c8a1"}, "station_id"),
        ({"driver_token": "short-token-1234567"}, "driver_token"),  # 19 characters
        ({"driver_token": "a" * 81}, "driver_token"),
        ({"driver_token": "has spaces in the driver token"}, "driver_token"),
        ({"driver_token": "token/with/slashes/000000"}, "driver_token"),
        ({"driver_token": ["04A1B2C3D4E5F6-driver.token_01"]}, "driver_token"),
        # What /api/v1 and OCPP now accept, the original routes refuse as the original service did.
        ({"driver_token": "04A2B3C4"}, "driver_token"),
        ({"driver_token": "fleet:driver|0001@acme+x"}, "driver_token"),
        ({"callback_url": ""}, "callback_url"),
        ({"callback_url": "ftp://example.com/callback"}, "callback_url"),
        ({"callback_url": "/relative/callback"}, "callback_url"),
        ({"callback_url": "not a url"}, "callback_url"),
        ({"callback_url": "http://user:secret@example.com/cb"}, "callback_url"),
        ({"callback_url": "http://example.com:99999/cb"}, "callback_url"),
        ({"callback_url": "https://example.com/" + "a" * 2030}, "callback_url"),
    ],
)
def test_validator_rejects_a_bad_field_by_name(
    client: Client, caller: Caller, changes: dict[str, Any], field: str
) -> None:
    response = caller.post_json(client, VALIDATOR, {**GOOD, **changes})

    assert response.status_code == 200
    assert response.json() == rejected(field)
    assert not ChargingRequest.objects.exists()


@pytest.mark.parametrize("missing", ["station_id", "driver_token", "callback_url"])
def test_validator_rejects_a_missing_field_by_name(client: Client, caller: Caller, missing: str) -> None:
    body = {name: value for name, value in GOOD.items() if name != missing}

    response = caller.post_json(client, VALIDATOR, body)

    assert response.status_code == 200
    assert response.json() == rejected(missing)


def test_validator_names_the_first_bad_field_when_several_are_bad(client: Client, caller: Caller) -> None:
    response = caller.post_json(client, VALIDATOR, {"station_id": "x", "driver_token": "y"})

    assert response.json() == rejected("station_id")


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '"a string"', "\xff\xfe"])
def test_validator_rejects_a_malformed_json_body(client: Client, caller: Caller, body: str) -> None:
    response = caller.post_json(client, VALIDATOR, body)

    assert response.status_code == 200
    assert response.json()["status"] == "rejected"


def test_validator_rejects_a_bad_field_of_a_form_body(client: Client, caller: Caller) -> None:
    response = caller.post_form(client, VALIDATOR, {**GOOD, "callback_url": "gopher://x"})

    assert response.status_code == 200
    assert response.json() == rejected("callback_url")


def test_validator_answers_an_empty_body_with_a_rejection(client: Client, caller: Caller) -> None:
    response = client.post(VALIDATOR, data="", content_type="application/json", headers=caller.headers)

    assert response.status_code == 200
    assert response.json() == rejected("station_id")


# --- POST /api/insertACL/ -------------------------------------------------------------------------


def test_insert_acl_says_success_then_exists_for_the_same_pair(client: Client, caller: Caller) -> None:
    first = caller.post_json(client, INSERT, {"station_id": STATION, "driver_token": TOKEN})
    second = caller.post_json(client, INSERT, {"station_id": STATION, "driver_token": TOKEN})

    assert (first.status_code, first.json()) == (200, {"flag": "success"})
    assert (second.status_code, second.json()) == (200, {"flag": "exists"})


def test_insert_acl_for_another_station_or_token_is_a_new_success(client: Client, caller: Caller) -> None:
    caller.post_json(client, INSERT, {"station_id": STATION, "driver_token": TOKEN})

    other_station = caller.post_json(client, INSERT, {"station_id": OTHER_STATION, "driver_token": TOKEN})
    other_token = caller.post_json(client, INSERT, {"station_id": STATION, "driver_token": OTHER_TOKEN})

    assert other_station.json() == {"flag": "success"}
    assert other_token.json() == {"flag": "success"}


@pytest.mark.parametrize(
    "body",
    [
        {"station_id": "nope", "driver_token": TOKEN},
        {"station_id": STATION, "driver_token": "short"},
        {"station_id": STATION, "driver_token": "fleet:driver|0001@acme+x"},
        {"station_id": STATION},
        {"driver_token": TOKEN},
        {},
        "{broken json",
        "[]",
    ],
)
def test_insert_acl_says_error_for_bad_input(client: Client, caller: Caller, body: Any) -> None:
    response = caller.post_json(client, INSERT, body)

    assert response.status_code == 200
    assert response.json() == {"flag": "error"}


def test_insert_acl_takes_a_form_encoded_body(client: Client, caller: Caller) -> None:
    response = caller.post_form(client, INSERT, {"station_id": LEGACY_STATION, "driver_token": TOKEN})
    allowed = caller.post_form(client, CHECK, {"station_id": LEGACY_STATION, "driver_token": TOKEN})

    assert response.json() == {"flag": "success"}
    assert allowed.json()["status"] == "allowed"


def test_insert_acl_takes_a_multipart_form_body(client: Client, caller: Caller) -> None:
    response = client.post(
        INSERT, data={"station_id": STATION, "driver_token": TOKEN}, headers=caller.headers
    )

    assert response.json() == {"flag": "success"}


def test_insert_acl_knows_a_uuid_in_any_accepted_form_is_the_same_station(
    client: Client, caller: Caller
) -> None:
    first = caller.post_json(client, INSERT, {"station_id": STATION.upper(), "driver_token": TOKEN})
    again = caller.post_json(client, INSERT, {"station_id": STATION.replace("-", ""), "driver_token": TOKEN})

    assert first.json() == {"flag": "success"}
    assert again.json() == {"flag": "exists"}


def test_post_routes_need_no_csrf_token(caller: Caller) -> None:
    """Stations are not browsers: a form POST without a CSRF cookie must still reach the route."""
    strict = Client(enforce_csrf_checks=True)

    response = caller.post_form(strict, INSERT, {"station_id": STATION, "driver_token": TOKEN})

    assert (response.status_code, response.json()) == (200, {"flag": "success"})


# --- POST /api/checkauthority/ -------------------------------------------------------------------


def test_check_authority_grants_after_insert_acl(client: Client, caller: Caller) -> None:
    caller.post_json(client, INSERT, {"station_id": STATION, "driver_token": TOKEN})

    response = caller.post_json(client, CHECK, {"station_id": STATION, "driver_token": TOKEN})

    assert response.status_code == 200
    body = response.json()
    assert body == {
        "message": "Access granted",
        "status": "allowed",
        "reason": "granted",
        "request_id": body["request_id"],
    }
    uuid.UUID(body["request_id"])


def test_check_authority_denies_an_unknown_token(client: Client, caller: Caller) -> None:
    response = caller.post_json(client, CHECK, {"station_id": STATION, "driver_token": OTHER_TOKEN})

    assert response.status_code == 200
    body = response.json()
    assert (body["message"], body["status"], body["reason"]) == (
        "Access denied",
        "not_allowed",
        "unknown_token",
    )


def test_check_authority_denies_a_known_token_at_a_station_it_has_no_grant_for(
    client: Client, caller: Caller
) -> None:
    caller.post_json(client, INSERT, {"station_id": STATION, "driver_token": TOKEN})

    response = caller.post_json(client, CHECK, {"station_id": OTHER_STATION, "driver_token": TOKEN})

    body = response.json()
    assert (body["message"], body["status"], body["reason"]) == ("Access denied", "not_allowed", "no_grant")


def _too_old() -> datetime:
    return timezone.now() - timedelta(seconds=settings.CHARGE_DECISION_TIMEOUT_S + 30)


@pytest.mark.parametrize(
    "request_time",
    [
        pytest.param(lambda: _too_old().isoformat(), id="iso-with-offset"),
        pytest.param(lambda: _too_old().strftime("%Y-%m-%dT%H:%M:%SZ"), id="iso-zulu"),
        pytest.param(lambda: int(_too_old().timestamp()), id="unix-int"),
        pytest.param(lambda: _too_old().timestamp(), id="unix-float"),
        pytest.param(lambda: str(int(_too_old().timestamp())), id="unix-string"),
    ],
)
def test_check_authority_answers_too_old_for_an_old_request_time(
    client: Client, caller: Caller, request_time: Any
) -> None:
    caller.post_json(client, INSERT, {"station_id": STATION, "driver_token": TOKEN})

    response = caller.post_json(
        client, CHECK, {"station_id": STATION, "driver_token": TOKEN, "request_time": request_time()}
    )

    body = response.json()
    assert (body["message"], body["status"], body["reason"]) == ("Request is too old", "unknown", "timeout")


@pytest.mark.parametrize(
    "request_time",
    [
        pytest.param(lambda: timezone.now().isoformat(), id="iso"),
        pytest.param(lambda: int(timezone.now().timestamp()), id="unix-int"),
        pytest.param(lambda: f"{timezone.now().timestamp():.3f}", id="unix-string"),
        pytest.param(lambda: "", id="empty"),
        pytest.param(lambda: None, id="null"),
    ],
)
def test_check_authority_decides_a_recent_request_time(
    client: Client, caller: Caller, request_time: Any
) -> None:
    caller.post_json(client, INSERT, {"station_id": STATION, "driver_token": TOKEN})

    response = caller.post_json(
        client, CHECK, {"station_id": STATION, "driver_token": TOKEN, "request_time": request_time()}
    )

    assert response.json()["status"] == "allowed"


def test_check_authority_logs_the_given_request_time(client: Client, caller: Caller) -> None:
    sent = datetime(2024, 5, 1, 12, 30, 15, tzinfo=UTC)

    response = caller.post_json(
        client, CHECK, {"station_id": STATION, "driver_token": TOKEN, "request_time": int(sent.timestamp())}
    )

    row = ChargingRequest.objects.get(request_id=response.json()["request_id"])
    assert row.requested_at == sent
    assert (row.status, row.reason) == ("unknown", "timeout")


def _ahead(delta: timedelta) -> str:
    return (timezone.now() + delta).isoformat()


@pytest.mark.parametrize(
    "request_time",
    [
        pytest.param("0001-01-01T00:00:00+14:00", id="1-BC-in-UTC"),
        pytest.param("0001-01-01T00:00:00Z", id="year-1"),
        pytest.param("1999-12-31T23:59:59Z", id="before-2000"),
        pytest.param(946684799, id="before-2000-unix"),
        pytest.param("9999-12-31T23:59:59-23:59", id="year-9999-behind-utc"),
        pytest.param("9999-12-31T23:59:59+23:59", id="year-9999-ahead-of-utc"),
        pytest.param(253402300799, id="year-9999-unix"),
        pytest.param("253402300799", id="year-9999-unix-string"),
        pytest.param(lambda: _ahead(timedelta(days=1, minutes=5)), id="over-a-day-ahead"),
    ],
)
def test_check_authority_rejects_a_request_time_outside_the_window(
    client: Client, caller: Caller, request_time: Any
) -> None:
    value = request_time() if callable(request_time) else request_time

    response = caller.post_json(
        client, CHECK, {"station_id": STATION, "driver_token": TOKEN, "request_time": value}
    )

    assert response.status_code == 200
    assert response.json() == rejected("request_time")
    assert not ChargingRequest.objects.exists()
    assert caller.get(client, LOG).status_code == 200


@pytest.mark.parametrize(
    "request_time",
    [
        pytest.param(lambda: "2000-01-01T00:00:00Z", id="the-first-moment-of-2000"),
        pytest.param(lambda: _ahead(timedelta(hours=23)), id="23-hours-ahead"),
    ],
)
def test_check_authority_decides_a_request_time_at_the_edges_of_the_window(
    client: Client, caller: Caller, request_time: Any
) -> None:
    response = caller.post_json(
        client, CHECK, {"station_id": STATION, "driver_token": TOKEN, "request_time": request_time()}
    )

    assert response.json()["status"] in {"not_allowed", "unknown"}
    assert ChargingRequest.objects.count() == 1


@pytest.mark.parametrize("request_time", ["yesterday", "2024-13-45T00:00:00", True, [1], {"t": 1}, 1e30])
def test_check_authority_rejects_an_unreadable_request_time(
    client: Client, caller: Caller, request_time: Any
) -> None:
    response = caller.post_json(
        client, CHECK, {"station_id": STATION, "driver_token": TOKEN, "request_time": request_time}
    )

    assert response.status_code == 200
    assert response.json() == rejected("request_time")
    assert not ChargingRequest.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"station_id": "bad"}, "station_id"),
        ({"driver_token": "bad"}, "driver_token"),
        ({"driver_token": "04A2B3C4"}, "driver_token"),
        ({"callback_url": "ftp://example.com/x"}, "callback_url"),
    ],
)
def test_check_authority_rejects_bad_input(
    client: Client, caller: Caller, changes: dict[str, Any], field: str
) -> None:
    response = caller.post_json(client, CHECK, {"station_id": STATION, "driver_token": TOKEN, **changes})

    assert response.status_code == 200
    assert response.json() == rejected(field)
    assert not ChargingRequest.objects.exists()


def test_check_authority_rejects_a_malformed_body(client: Client, caller: Caller) -> None:
    response = caller.post_json(client, CHECK, "{oops")

    assert response.status_code == 200
    assert response.json()["status"] == "rejected"


def test_each_check_authority_call_is_logged_as_legacy_sync(client: Client, caller: Caller) -> None:
    caller.post_json(client, INSERT, {"station_id": STATION, "driver_token": TOKEN})

    granted = caller.post_json(client, CHECK, {"station_id": STATION, "driver_token": TOKEN}).json()
    denied = caller.post_json(client, CHECK, {"station_id": STATION, "driver_token": OTHER_TOKEN}).json()

    rows = {str(row.request_id): row for row in ChargingRequest.objects.all()}
    assert set(rows) == {granted["request_id"], denied["request_id"]}
    for answer in (granted, denied):
        row = rows[answer["request_id"]]
        assert row.source == ChargingRequest.Source.LEGACY_SYNC
        assert row.client_id == caller.client.pk
        assert (row.status, row.reason) == (answer["status"], answer["reason"])
        assert row.decided_at is not None
        assert row.callback_url == ""


def test_check_authority_with_a_callback_url_logs_it_and_opens_a_delivery(
    client: Client, caller: Caller
) -> None:
    response = caller.post_json(
        client, CHECK, {"station_id": STATION, "driver_token": TOKEN, "callback_url": CALLBACK}
    )

    request_id = response.json()["request_id"]
    state = caller.get(client, f"/api/v1/charging-requests/{request_id}").json()
    assert state["callback"] == {"status": "pending", "attempts": 0, "last_http_status": None}
    assert ChargingRequest.objects.get(request_id=request_id).callback_url == CALLBACK


# --- GET /api/getrequestlog/ ----------------------------------------------------------------------


def test_request_log_lists_rows_newest_first_with_the_original_fields(
    client: Client, caller: Caller, log_row: LogRow
) -> None:
    older = log_row(client=caller.client, status="not_allowed", reason="unknown_token")
    newer = log_row(client=caller.client, requested_at=older.requested_at + timedelta(seconds=30))
    pending = log_row(
        client=caller.client,
        requested_at=older.requested_at + timedelta(seconds=10),
        status="pending",
        reason="",
        decided_at=None,
    )
    ChargingRequest.objects.bulk_create([older, newer, pending])

    response = caller.get(client, LOG)

    assert response.status_code == 200
    rows = response.json()
    assert [row["id"] for row in rows] == [str(r.request_id) for r in (newer, pending, older)]
    first = rows[0]
    assert {
        "id",
        "station_id",
        "driver_token",
        "callback_url",
        "request_time",
        "decision_time",
        "decision",
        "reason",
    } <= set(first)
    assert first["station_id"] == STATION
    assert first["driver_token"] == TOKEN
    assert first["callback_url"] == CALLBACK
    assert datetime.fromisoformat(first["request_time"]) == newer.requested_at
    assert newer.decided_at is not None
    assert datetime.fromisoformat(first["decision_time"]) == newer.decided_at
    assert (first["decision"], first["reason"]) == ("allowed", "granted")
    assert (rows[1]["decision"], rows[1]["decision_time"]) == ("pending", None)
    assert (rows[2]["decision"], rows[2]["reason"]) == ("not_allowed", "unknown_token")


def test_request_log_shows_check_authority_calls(client: Client, caller: Caller) -> None:
    answer = caller.post_json(client, CHECK, {"station_id": STATION, "driver_token": TOKEN}).json()

    rows = caller.get(client, LOG).json()

    assert [(row["id"], row["decision"], row["reason"]) for row in rows] == [
        (answer["request_id"], "not_allowed", "unknown_token")
    ]


def test_request_log_returns_100_rows_by_default(client: Client, caller: Caller, log_row: LogRow) -> None:
    ChargingRequest.objects.bulk_create([log_row(client=caller.client) for _ in range(105)])

    assert len(caller.get(client, LOG).json()) == 100


def test_request_log_returns_at_most_1000_rows(client: Client, caller: Caller, log_row: LogRow) -> None:
    ChargingRequest.objects.bulk_create([log_row(client=caller.client) for _ in range(1100)])

    assert len(caller.get(client, LOG, {"limit": 5000}).json()) == 1000
    assert len(caller.get(client, LOG, {"limit": 1000}).json()) == 1000
    assert len(caller.get(client, LOG, {"limit": 7}).json()) == 7


def test_request_log_pages_with_offset(client: Client, caller: Caller, log_row: LogRow) -> None:
    rows = [log_row(client=caller.client) for _ in range(6)]  # built newest first
    ChargingRequest.objects.bulk_create(rows)
    expected = [str(row.request_id) for row in rows]

    page = caller.get(client, LOG, {"limit": 2, "offset": 3}).json()
    past_the_end = caller.get(client, LOG, {"limit": 2, "offset": 6}).json()

    assert [row["id"] for row in page] == expected[3:5]
    assert past_the_end == []


def test_request_log_shows_only_the_calling_clients_rows(
    client: Client, caller: Caller, other_caller: Caller, log_row: LogRow
) -> None:
    mine = log_row(client=caller.client)
    theirs = log_row(client=other_caller.client)
    nobodys = log_row(client=None, source=ChargingRequest.Source.TOPIC)
    ChargingRequest.objects.bulk_create([mine, theirs, nobodys])

    assert [row["id"] for row in caller.get(client, LOG).json()] == [str(mine.request_id)]
    assert [row["id"] for row in other_caller.get(client, LOG).json()] == [str(theirs.request_id)]


@pytest.mark.parametrize("params", [{"limit": "abc"}, {"limit": "-3", "offset": "-9"}, {"offset": "x"}])
def test_request_log_answers_unreadable_paging_with_200(
    client: Client, caller: Caller, log_row: LogRow, params: dict[str, str]
) -> None:
    ChargingRequest.objects.bulk_create([log_row(client=caller.client) for _ in range(3)])

    response = caller.get(client, LOG, params)

    assert response.status_code == 200
    assert isinstance(response.json(), list)
