"""/api/v1/charging-requests: validation answers of POST (accepting needs Kafka), the state and the log."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

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

REQUESTS = "/api/v1/charging-requests"
GOOD = {"station_id": STATION, "driver_token": TOKEN, "callback_url": CALLBACK}


def bad_fields(response: Any) -> set[str]:
    """The field names a 422 body lists."""
    return {str(error["loc"][-1]) for error in response.json()["detail"]}


def _cursor(moment: str) -> str:
    """A cursor in the list's own encoding, around `moment`."""
    raw = f"{moment}|{uuid.uuid4()}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


# --- POST: validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"station_id": "not-a-station"}, "station_id"),
        ({"station_id": "5d1b6f3c8a524c1e9f0a2b7d4e6c8a1"}, "station_id"),  # 31 hex digits
        ({"driver_token": "no spaces allowed"}, "driver_token"),
        ({"driver_token": "x" * 81}, "driver_token"),
        ({"driver_token": "spaces are not allowed here"}, "driver_token"),
        ({"callback_url": "ftp://example.com/cb"}, "callback_url"),
        ({"callback_url": "example.com/cb"}, "callback_url"),
        ({"callback_url": "https://user:pw@example.com/cb"}, "callback_url"),
        ({"callback_url": "https://example.com/" + "a" * 2030}, "callback_url"),
    ],
)
def test_create_names_a_bad_field_with_422(
    client: Client, caller: Caller, changes: dict[str, Any], field: str
) -> None:
    response = caller.post_json(client, REQUESTS, {**GOOD, **changes})

    assert response.status_code == 422
    assert bad_fields(response) == {field}


def test_create_names_every_bad_field_at_once(client: Client, caller: Caller) -> None:
    response = caller.post_json(
        client, REQUESTS, {"station_id": "nope", "driver_token": "no pe", "callback_url": "nope"}
    )

    assert response.status_code == 422
    assert bad_fields(response) == {"station_id", "driver_token", "callback_url"}


@pytest.mark.parametrize("missing", ["station_id", "driver_token", "callback_url"])
def test_create_names_a_missing_field_with_422(client: Client, caller: Caller, missing: str) -> None:
    body = {name: value for name, value in GOOD.items() if name != missing}

    response = caller.post_json(client, REQUESTS, body)

    assert response.status_code == 422
    assert bad_fields(response) == {missing}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"station_id": 1234567}, "station_id"),
        ({"station_id": None}, "station_id"),
        ({"driver_token": ["a" * 20]}, "driver_token"),
        ({"callback_url": {"url": CALLBACK}}, "callback_url"),
    ],
)
def test_create_refuses_a_wrong_type_with_422(
    client: Client, caller: Caller, changes: dict[str, Any], field: str
) -> None:
    response = caller.post_json(client, REQUESTS, {**GOOD, **changes})

    assert response.status_code == 422
    assert bad_fields(response) == {field}


def test_create_refuses_a_malformed_json_body_without_accepting_it(client: Client, caller: Caller) -> None:
    response = caller.post_json(client, REQUESTS, '{"station_id": ')

    assert response.status_code in {400, 422}
    assert "detail" in response.json()


# --- GET /charging-requests/{id} ------------------------------------------------------------------


def test_detail_of_an_unknown_id_is_404(client: Client, caller: Caller) -> None:
    response = caller.get(client, f"{REQUESTS}/{uuid.uuid4()}")

    assert response.status_code == 404
    assert "detail" in response.json()


@pytest.mark.parametrize("request_id", ["not-a-uuid", "12345", "5d1b6f3c-8a52-4c1e-9f0a-2b7d4e6c8a1z"])
def test_detail_of_a_non_uuid_is_422(client: Client, caller: Caller, request_id: str) -> None:
    response = caller.get(client, f"{REQUESTS}/{request_id}")

    assert response.status_code == 422


def test_detail_shows_a_decided_request(client: Client, caller: Caller, log_row: LogRow) -> None:
    row = log_row(client=caller.client, status="not_allowed", reason="no_grant", source="async")
    row.save()

    response = caller.get(client, f"{REQUESTS}/{row.request_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["request_id"] == str(row.request_id)
    assert body["station_id"] == STATION
    assert (body["status"], body["reason"]) == ("not_allowed", "no_grant")
    assert body["requested_at"] is not None
    assert body["decided_at"] is not None
    assert body["callback"] is None  # no delivery row for this hand-made log entry


def test_detail_of_another_clients_request_is_404(
    client: Client, caller: Caller, other_caller: Caller, log_row: LogRow
) -> None:
    theirs = log_row(client=other_caller.client)
    theirs.save()

    assert caller.get(client, f"{REQUESTS}/{theirs.request_id}").status_code == 404
    assert other_caller.get(client, f"{REQUESTS}/{theirs.request_id}").status_code == 200


def test_detail_accepts_the_id_as_32_hex_digits(client: Client, caller: Caller, log_row: LogRow) -> None:
    row = log_row(client=caller.client)
    row.save()

    response = caller.get(client, f"{REQUESTS}/{row.request_id.hex}")

    assert response.status_code == 200
    assert response.json()["request_id"] == str(row.request_id)


# --- GET /charging-requests: filters --------------------------------------------------------------


def listed(client: Client, caller: Caller, **params: Any) -> list[str]:
    response = caller.get(client, REQUESTS, params)
    assert response.status_code == 200, response.content
    return [item["request_id"] for item in response.json()["items"]]


@pytest.fixture
def mixed_log(caller: Caller, log_row: LogRow) -> list[ChargingRequest]:
    """Five rows of the caller, newest first, that differ in station, token, status and reason."""
    rows = [
        log_row(client=caller.client),
        log_row(client=caller.client, station_id=OTHER_STATION),
        log_row(client=caller.client, driver_token=OTHER_TOKEN, status="not_allowed", reason="unknown_token"),
        log_row(client=caller.client, station_id=LEGACY_STATION, status="unknown", reason="timeout"),
        log_row(client=caller.client, status="not_allowed", reason="no_grant"),
    ]
    ChargingRequest.objects.bulk_create(rows)
    return rows


def ids(rows: list[ChargingRequest], *positions: int) -> list[str]:
    return [str(rows[position].request_id) for position in positions]


def test_list_without_filters_is_the_whole_log_newest_first(
    client: Client, caller: Caller, mixed_log: list[ChargingRequest]
) -> None:
    response = caller.get(client, REQUESTS)

    assert response.status_code == 200
    assert response.json()["next_cursor"] is None
    assert listed(client, caller) == ids(mixed_log, 0, 1, 2, 3, 4)


def test_list_filters_by_station_id(client: Client, caller: Caller, mixed_log: list[ChargingRequest]) -> None:
    assert listed(client, caller, station_id=STATION) == ids(mixed_log, 0, 2, 4)
    assert listed(client, caller, station_id=LEGACY_STATION) == ids(mixed_log, 3)


@pytest.mark.parametrize("form", [STATION.upper(), STATION.replace("-", "")], ids=["uppercase", "hex32"])
def test_list_station_filter_accepts_any_uuid_form(
    client: Client, caller: Caller, mixed_log: list[ChargingRequest], form: str
) -> None:
    assert listed(client, caller, station_id=form) == ids(mixed_log, 0, 2, 4)


def test_list_filters_by_driver_token(
    client: Client, caller: Caller, mixed_log: list[ChargingRequest]
) -> None:
    assert listed(client, caller, driver_token=OTHER_TOKEN) == ids(mixed_log, 2)


def test_list_filters_by_status_and_reason(
    client: Client, caller: Caller, mixed_log: list[ChargingRequest]
) -> None:
    assert listed(client, caller, status="not_allowed") == ids(mixed_log, 2, 4)
    assert listed(client, caller, status="allowed") == ids(mixed_log, 0, 1)
    assert listed(client, caller, reason="timeout") == ids(mixed_log, 3)
    assert listed(client, caller, status="not_allowed", reason="no_grant") == ids(mixed_log, 4)
    assert listed(client, caller, status="pending") == []


def test_list_refuses_an_unknown_status_with_422(client: Client, caller: Caller) -> None:
    response = caller.get(client, REQUESTS, {"status": "maybe"})

    assert response.status_code == 422


def test_list_filters_by_since_inclusive_and_until_exclusive(
    client: Client, caller: Caller, mixed_log: list[ChargingRequest]
) -> None:
    since = mixed_log[3].requested_at.isoformat()
    until = mixed_log[1].requested_at.isoformat()

    assert listed(client, caller, since=since) == ids(mixed_log, 0, 1, 2, 3)
    assert listed(client, caller, until=until) == ids(mixed_log, 2, 3, 4)
    assert listed(client, caller, since=since, until=until) == ids(mixed_log, 2, 3)


def test_list_accepts_zulu_timestamps(
    client: Client, caller: Caller, mixed_log: list[ChargingRequest]
) -> None:
    since = mixed_log[1].requested_at.strftime("%Y-%m-%dT%H:%M:%SZ")

    assert listed(client, caller, since=since) == ids(mixed_log, 0, 1)


def test_list_refuses_an_unreadable_since_with_422(client: Client, caller: Caller) -> None:
    assert caller.get(client, REQUESTS, {"since": "last tuesday"}).status_code == 422


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        pytest.param("since", "0001-01-01T00:00:00+01:00", id="since-year-0-in-utc"),
        pytest.param("until", "9999-12-31T23:59:59-01:00", id="until-year-10000-in-utc"),
        pytest.param("cursor", _cursor("2026-01-01T00:00:00+23:00"), id="cursor-offset-beyond-postgresql"),
        pytest.param("cursor", _cursor("0001-01-01T00:00:00+01:00"), id="cursor-year-0-in-utc"),
        pytest.param("cursor", _cursor("2026-01-01T00:00:00"), id="cursor-without-offset"),
    ],
)
def test_list_answers_a_moment_out_of_range_with_422_naming_the_parameter(
    client: Client, caller: Caller, parameter: str, value: str
) -> None:
    response = caller.get(client, REQUESTS, {parameter: value})

    assert response.status_code == 422
    assert bad_fields(response) == {parameter}


def test_list_shows_only_the_calling_clients_rows(
    client: Client, caller: Caller, other_caller: Caller, log_row: LogRow
) -> None:
    mine, theirs = log_row(client=caller.client), log_row(client=other_caller.client)
    ChargingRequest.objects.bulk_create([mine, theirs])

    assert listed(client, caller) == [str(mine.request_id)]
    assert listed(client, other_caller) == [str(theirs.request_id)]


# --- GET /charging-requests: cursor pagination ----------------------------------------------------


def all_pages(client: Client, caller: Caller, **params: Any) -> tuple[list[str], int]:
    """Every request_id, following next_cursor to the end, and how many pages that took."""
    seen: list[str] = []
    cursor: str | None = None
    for pages in range(1, 100):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = caller.get(client, REQUESTS, query)
        assert response.status_code == 200, response.content
        body = response.json()
        assert len(body["items"]) <= params.get("limit", 100)
        seen += [item["request_id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages
    raise AssertionError("pagination did not end")


def test_cursor_pages_show_every_row_once_newest_first(
    client: Client, caller: Caller, log_row: LogRow
) -> None:
    rows = [log_row(client=caller.client) for _ in range(7)]  # distinct requested_at, newest first
    ChargingRequest.objects.bulk_create(rows)

    seen, pages = all_pages(client, caller, limit=2)

    assert seen == [str(row.request_id) for row in rows]
    assert pages == 4


def test_cursor_pages_end_without_an_empty_page_on_an_exact_multiple(
    client: Client, caller: Caller, log_row: LogRow
) -> None:
    ChargingRequest.objects.bulk_create([log_row(client=caller.client) for _ in range(4)])

    seen, pages = all_pages(client, caller, limit=2)

    assert (len(seen), pages) == (4, 2)


def test_cursor_pages_keep_rows_with_the_same_request_time(
    client: Client, caller: Caller, log_row: LogRow
) -> None:
    same = log_row(client=caller.client).requested_at
    rows = [log_row(client=caller.client, requested_at=same) for _ in range(5)]
    rows += [log_row(client=caller.client, requested_at=same - timedelta(seconds=1)) for _ in range(2)]
    ChargingRequest.objects.bulk_create(rows)

    seen, _ = all_pages(client, caller, limit=2)

    assert sorted(seen) == sorted(str(row.request_id) for row in rows)
    assert len(seen) == len(set(seen))
    assert set(seen[-2:]) == {str(row.request_id) for row in rows[-2:]}


def test_cursor_pages_keep_the_filters(client: Client, caller: Caller, log_row: LogRow) -> None:
    rows = [log_row(client=caller.client, station_id=STATION if n % 2 else OTHER_STATION) for n in range(9)]
    ChargingRequest.objects.bulk_create(rows)

    seen, _ = all_pages(client, caller, limit=2, station_id=STATION)

    assert seen == [str(row.request_id) for row in rows if row.station_id == STATION]


def test_a_page_added_to_meanwhile_does_not_repeat_rows(
    client: Client, caller: Caller, log_row: LogRow
) -> None:
    rows = [log_row(client=caller.client) for _ in range(4)]
    ChargingRequest.objects.bulk_create(rows)
    first = caller.get(client, REQUESTS, {"limit": 2}).json()

    newest = log_row(client=caller.client, requested_at=rows[0].requested_at + timedelta(minutes=1))
    newest.save()
    second = caller.get(client, REQUESTS, {"limit": 2, "cursor": first["next_cursor"]}).json()

    assert [item["request_id"] for item in second["items"]] == ids(rows, 2, 3)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        "zzzz",
        _b64("not a cursor"),
        _b64("2024-01-01T00:00:00+00:00|not-a-uuid"),
        _b64(f"yesterday|{uuid.uuid4()}"),
        "é",
    ],
)
def test_a_bad_cursor_is_422(client: Client, caller: Caller, cursor: str) -> None:
    response = caller.get(client, REQUESTS, {"cursor": cursor})

    assert response.status_code == 422
    assert "cursor" in json.dumps(response.json())


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "5000", "ten"])
def test_a_limit_out_of_range_is_422(client: Client, caller: Caller, limit: str) -> None:
    response = caller.get(client, REQUESTS, {"limit": limit})

    assert response.status_code == 422


@pytest.mark.parametrize("limit", [1, 1000])
def test_the_limit_bounds_are_accepted(client: Client, caller: Caller, log_row: LogRow, limit: int) -> None:
    ChargingRequest.objects.bulk_create([log_row(client=caller.client) for _ in range(3)])

    assert len(listed(client, caller, limit=limit)) == min(limit, 3)


def test_list_items_carry_the_detail_fields(client: Client, caller: Caller, log_row: LogRow) -> None:
    log_row(client=caller.client).save()

    item = caller.get(client, REQUESTS).json()["items"][0]

    expected = {"request_id", "station_id", "status", "reason", "requested_at", "decided_at", "callback"}
    assert expected <= set(item)
