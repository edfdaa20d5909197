"""Bodies no well-behaved client sends: text the database cannot store, JSON that breaks parsers, odd
encodings. Every route answers them in its own documented shape, never with a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from apps.access.models import DriverToken, Station, TokenGroup
from apps.charging.models import ChargingRequest
from tests.app.callers import CALLBACK, STATION, TOKEN, Caller

VALIDATOR = "/api/chargingRequestValidator/"
CHECK = "/api/checkauthority/"
INSERT = "/api/insertACL/"
LEGACY_ROUTES = [VALIDATOR, CHECK, INSERT]
GOOD = {"station_id": STATION, "driver_token": TOKEN, "callback_url": CALLBACK}

# JSON text of a lone UTF-16 surrogate: json.loads turns it into a str that cannot be encoded as UTF-8.
LONE_SURROGATE = "\\ud800"
NUL = "\\u0000"


def json_with(field: str, escaped: str, base: dict[str, Any] | None = None) -> str:
    """`base` as JSON with `field` set to a string holding the raw JSON escape `escaped`."""
    body = dict(base if base is not None else GOOD)
    body[field] = "PLACEHOLDER"
    return json.dumps(body).replace('"PLACEHOLDER"', f'"http://example.test/{escaped}"')


def legacy_refusal(path: str, field: str) -> dict[str, str]:
    if path == INSERT:
        return {"flag": "error"}
    return {"status": "rejected", "message": f"{field} is invalid."}


def bad_fields(response: Any) -> set[str]:
    return {str(error["loc"][-1]) for error in response.json()["detail"]}


def nothing_stored() -> bool:
    return not (ChargingRequest.objects.exists() or DriverToken.objects.exists() or Station.objects.exists())


# --- text the database cannot store ---------------------------------------------------------------


@pytest.mark.parametrize("escaped", [LONE_SURROGATE, "\\udfff", NUL])
@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/charging-requests", "callback_url"),
        ("/api/v1/charging-requests", "driver_token"),
        ("/api/v1/authorize", "station_id"),
        ("/api/v1/authorize", "padding"),  # an unknown field is ignored, but not when it cannot be read
    ],
)
def test_v1_answers_unstorable_text_with_422_naming_the_field(
    client: Client, caller: Caller, path: str, field: str, escaped: str
) -> None:
    response = caller.post_json(client, path, json_with(field, escaped))

    assert response.status_code == 422
    assert bad_fields(response) == {field}
    assert nothing_stored()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/stations", {"station_id": STATION, "name": "PLACEHOLDER"}),
        ("/api/v1/token-groups", {"name": "PLACEHOLDER"}),
        ("/api/v1/tokens", {"value": TOKEN, "note": "PLACEHOLDER"}),
    ],
)
def test_v1_acl_routes_answer_a_lone_surrogate_with_422_naming_the_field(
    client: Client, caller: Caller, path: str, body: dict[str, str]
) -> None:
    field = next(name for name, value in body.items() if value == "PLACEHOLDER")

    response = caller.post_json(client, path, json_with(field, LONE_SURROGATE, body))

    assert response.status_code == 422
    assert bad_fields(response) == {field}
    assert not TokenGroup.objects.exists()
    assert nothing_stored()


@pytest.mark.parametrize("escaped", [LONE_SURROGATE, NUL])
@pytest.mark.parametrize("field", ["station_id", "driver_token", "callback_url"])
@pytest.mark.parametrize("path", LEGACY_ROUTES)
def test_original_routes_refuse_unstorable_text_by_field_name(
    client: Client, caller: Caller, path: str, field: str, escaped: str
) -> None:
    response = caller.post_json(client, path, json_with(field, escaped))

    assert response.status_code == 200
    assert response.json() == legacy_refusal(path, field)
    assert nothing_stored()


@pytest.mark.parametrize("path", LEGACY_ROUTES)
def test_original_routes_refuse_a_nul_in_a_form_field_by_name(
    client: Client, caller: Caller, path: str
) -> None:
    response = caller.post_form(client, path, {**GOOD, "callback_url": "http://example.test/\x00"})

    assert response.json() == legacy_refusal(path, "callback_url")
    assert nothing_stored()


def test_text_that_only_looks_like_nul_is_accepted(client: Client, caller: Caller) -> None:
    # "%00" in a URL and an escaped backslash before "u0000" are ordinary characters.
    url = "http://127.0.0.1:9/cb?x=%00"
    body = json.dumps({"station_id": STATION, "driver_token": TOKEN, "callback_url": url, "note": "\\u0000"})

    response = caller.post_json(client, CHECK, body)

    assert response.json()["status"] == "not_allowed"
    assert ChargingRequest.objects.get().callback_url == url


# --- bodies that break parsers --------------------------------------------------------------------

MALFORMED = {
    "nested 10,000 deep": "[" * 10_000 + "]" * 10_000,
    "nested 30,000 deep": '{"station_id": ' + "[" * 30_000 + "]" * 30_000 + "}",
    "a 5,000-digit integer": '{"station_id": ' + "9" * 5_000 + "}",
    "NaN": '{"station_id": NaN}',
    "UTF-16": json.dumps(GOOD).encode("utf-16").decode("latin-1"),
    "not UTF-8": '{"station_id": "\xff\xfe"}',
}


def _send(client: Client, caller: Caller, path: str, body: str) -> Any:
    # latin-1 maps each character to the byte of the same number: the bytes are exactly the test's.
    return client.post(
        path, data=body.encode("latin-1"), content_type="application/json", headers=caller.headers
    )


@pytest.mark.parametrize("name", list(MALFORMED))
@pytest.mark.parametrize("path", LEGACY_ROUTES)
def test_original_routes_answer_a_malformed_body_with_their_refusal(
    client: Client, caller: Caller, path: str, name: str
) -> None:
    response = _send(client, caller, path, MALFORMED[name])

    assert response.status_code == 200
    assert response.json() == legacy_refusal(path, "body")


@pytest.mark.parametrize("name", list(MALFORMED))
@pytest.mark.parametrize("path", ["/api/v1/authorize", "/api/v1/charging-requests", "/api/v1/stations"])
def test_v1_answers_a_malformed_body_with_400_saying_why(
    client: Client, caller: Caller, path: str, name: str
) -> None:
    response = _send(client, caller, path, MALFORMED[name])

    assert response.status_code == 400
    assert response.json()["detail"].startswith("the body ")


@pytest.mark.parametrize("path", LEGACY_ROUTES)
def test_original_routes_refuse_a_multipart_body_without_a_boundary(
    client: Client, caller: Caller, path: str
) -> None:
    response = client.post(
        path, data=b"station_id=x", content_type="multipart/form-data", headers=caller.headers
    )

    assert response.status_code == 200
    assert response.json() == legacy_refusal(path, "body")


def test_a_utf16_body_is_answered_as_an_encoding_error(client: Client, caller: Caller) -> None:
    response = _send(client, caller, "/api/v1/authorize", MALFORMED["UTF-16"])

    assert response.status_code == 400
    assert "UTF-8" in response.json()["detail"]
    assert "NUL" not in response.json()["detail"]


@pytest.mark.parametrize("path", LEGACY_ROUTES)
def test_original_routes_refuse_a_form_of_too_many_fields(client: Client, caller: Caller, path: str) -> None:
    body = "&".join(f"f{n}=1" for n in range(2_000))

    response = client.post(
        path, data=body, content_type="application/x-www-form-urlencoded", headers=caller.headers
    )

    assert response.json() == legacy_refusal(path, "body")


# --- callback hosts no resolver could look up -----------------------------------------------------

UNRESOLVABLE_HOSTS = ["a" * 64 + ".example.test", "\u2603.example.test", "hooks..example.test"]


@pytest.mark.parametrize("host", UNRESOLVABLE_HOSTS)
def test_v1_refuses_a_callback_host_no_resolver_could_look_up(
    client: Client, caller: Caller, host: str
) -> None:
    body = {**GOOD, "callback_url": f"https://{host}/cb"}

    response = caller.post_json(client, "/api/v1/charging-requests", body)

    assert response.status_code == 422
    assert bad_fields(response) == {"callback_url"}


@pytest.mark.parametrize("host", UNRESOLVABLE_HOSTS)
@pytest.mark.parametrize("path", [VALIDATOR, CHECK])
def test_original_routes_reject_a_callback_host_no_resolver_could_look_up(
    client: Client, caller: Caller, path: str, host: str
) -> None:
    response = caller.post_json(client, path, {**GOOD, "callback_url": f"https://{host}/cb"})

    assert response.json() == legacy_refusal(path, "callback_url")
    assert nothing_stored()


@pytest.mark.parametrize("path", LEGACY_ROUTES)
def test_original_routes_refuse_a_form_in_another_charset_than_utf8(
    client: Client, caller: Caller, path: str
) -> None:
    response = client.post(
        path,
        data=b"station_id=x",
        content_type="application/x-www-form-urlencoded; charset=utf-16",
        headers=caller.headers,
    )

    assert response.json() == legacy_refusal(path, "body")
