"""API keys: every route but health and docs wants `Authorization: Bearer <key>` with the right scope."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from apps.clients.keys import key_generate, key_parse
from apps.clients.models import ApiKey, Scope
from apps.clients.services import ALL_SCOPES, api_key_revoke
from tests.app.callers import STATION, TOKEN, Caller, MakeCaller, bearer


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    scope: str
    # Bodies are invalid for the routes that produce to Kafka: validation answers before any produce.
    body: dict[str, Any] = field(default_factory=dict)
    # What a caller holding exactly `scope` gets for `body`.
    answer: int = 200

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


UNKNOWN_ID = "3f0c9a52-6b1e-4d7a-8c2f-1e5b9d3a7c40"
VALID_PAIR = {"station_id": STATION, "driver_token": TOKEN}

# Scopes as the plain strings callers and `create_api_key --scopes` use.
ROUTES = [
    Route("POST", "/api/chargingRequestValidator/", "charging:write", {"station_id": "bad"}),
    Route("POST", "/api/v1/charging-requests", "charging:write", {"station_id": "bad"}, 422),
    Route("POST", "/api/checkauthority/", "authorize", VALID_PAIR),
    Route("POST", "/api/v1/authorize", "authorize", VALID_PAIR),
    Route("POST", "/api/insertACL/", "acl:write", VALID_PAIR),
    Route("GET", "/api/getrequestlog/", "charging:read"),
    Route("GET", "/api/v1/charging-requests", "charging:read"),
    Route("GET", f"/api/v1/charging-requests/{UNKNOWN_ID}", "charging:read", answer=404),
]
assert {route.scope for route in ROUTES} <= {scope.value for scope in Scope}


def call(http: Client, route: Route, headers: dict[str, str]) -> Any:
    if route.method == "GET":
        return http.get(route.path, headers=headers)
    return http.post(
        route.path, data=json.dumps(route.body), content_type="application/json", headers=headers
    )


# --- 401: no key, or no live key -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_every_route_answers_401_without_an_authorization_header(client: Client, route: Route) -> None:
    response = call(client, route, {})

    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-an-api-key",
        "Bearer chg_0123456789ab_short",
        "Bearer ",
        "Bearer",
        "Token chg_0123456789ab_" + "a" * 43,
    ],
)
def test_a_malformed_authorization_is_401(client: Client, caller: Caller, authorization: str) -> None:
    response = client.get("/api/getrequestlog/", headers={"Authorization": authorization})

    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}


def test_a_well_formed_key_with_an_unknown_prefix_is_401(client: Client, caller: Caller) -> None:
    never_issued = key_generate()

    response = client.get("/api/getrequestlog/", headers=bearer(never_issued))

    assert response.status_code == 401


def test_the_right_prefix_with_a_wrong_secret_is_401(client: Client, caller: Caller) -> None:
    parsed = key_parse(caller.plaintext)
    assert parsed is not None
    other_secret = key_parse(key_generate())
    assert other_secret is not None
    forged = f"chg_{parsed.prefix}_{other_secret.secret}"

    response = client.get("/api/getrequestlog/", headers=bearer(forged))

    assert response.status_code == 401


def test_a_revoked_key_is_401(client: Client, caller: Caller) -> None:
    assert client.get("/api/getrequestlog/", headers=caller.headers).status_code == 200

    api_key_revoke(key=caller.key)
    response = client.get("/api/getrequestlog/", headers=caller.headers)

    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}


def test_an_expired_key_is_401(client: Client, make_caller: MakeCaller) -> None:
    expired = make_caller(*ALL_SCOPES, expires_at=timezone.now() - timedelta(seconds=1))

    response = client.get("/api/getrequestlog/", headers=expired.headers)

    assert response.status_code == 401


def test_a_key_that_expires_later_works_until_then(client: Client, make_caller: MakeCaller) -> None:
    expiring = make_caller(*ALL_SCOPES, expires_at=timezone.now() + timedelta(hours=1))

    response = client.get("/api/getrequestlog/", headers=expiring.headers)

    assert response.status_code == 200


def test_the_keys_of_an_inactive_client_are_401(client: Client, caller: Caller) -> None:
    caller.client.is_active = False
    caller.client.save(update_fields=["is_active"])

    response = client.get("/api/getrequestlog/", headers=caller.headers)

    assert response.status_code == 401


def test_the_bearer_scheme_name_is_case_insensitive(client: Client, caller: Caller) -> None:
    response = client.get("/api/getrequestlog/", headers={"Authorization": f"bearer {caller.plaintext}"})

    assert response.status_code == 200


# --- 403: a live key without the route's scope ----------------------------------------------------


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_a_key_without_the_routes_scope_is_403(client: Client, make_caller: MakeCaller, route: Route) -> None:
    lacking = make_caller(*[scope for scope in ALL_SCOPES if scope != route.scope])

    response = call(client, route, lacking.headers)

    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/json")
    assert "scope" in response.json()["detail"]


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_the_403_names_the_missing_scope_as_callers_know_it(
    client: Client, make_caller: MakeCaller, route: Route
) -> None:
    lacking = make_caller(*[scope for scope in ALL_SCOPES if scope != route.scope])

    response = call(client, route, lacking.headers)

    assert response.status_code == 403
    assert route.scope in response.json()["detail"]


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_the_routes_scope_alone_is_enough(client: Client, make_caller: MakeCaller, route: Route) -> None:
    only = make_caller(route.scope)

    response = call(client, route, only.headers)

    assert response.status_code == route.answer


def test_health_and_openapi_need_no_key(client: Client) -> None:
    assert client.get("/api/healthz").status_code == 200
    assert client.get("/api/openapi.json").status_code == 200


# --- last_used_at -----------------------------------------------------------------------------------


def test_using_a_key_sets_last_used_at(client: Client, caller: Caller) -> None:
    assert caller.key.last_used_at is None
    before = timezone.now()

    client.get("/api/getrequestlog/", headers=caller.headers)

    caller.key.refresh_from_db()
    assert caller.key.last_used_at is not None
    assert before <= caller.key.last_used_at <= timezone.now()


def test_last_used_at_moves_on_once_it_is_older_than_a_minute(client: Client, caller: Caller) -> None:
    long_ago = timezone.now() - timedelta(hours=2)
    ApiKey.objects.filter(pk=caller.key.pk).update(last_used_at=long_ago)

    client.get("/api/getrequestlog/", headers=caller.headers)

    caller.key.refresh_from_db()
    assert caller.key.last_used_at is not None
    assert caller.key.last_used_at > long_ago + timedelta(hours=1)


def test_a_refused_key_is_not_marked_used(client: Client, caller: Caller) -> None:
    api_key_revoke(key=caller.key)

    client.get("/api/getrequestlog/", headers=caller.headers)

    caller.key.refresh_from_db()
    assert caller.key.last_used_at is None


# --- manage.py create_api_key -------------------------------------------------------------------


@pytest.mark.django_db
def test_create_api_key_prints_a_key_that_authenticates_with_its_scopes(client: Client) -> None:
    out, err = StringIO(), StringIO()

    call_command(
        "create_api_key", "--client", "depot-north", "--scopes", "charging:write", "authorize",
        stdout=out, stderr=err,
    )  # fmt: skip

    plaintext = out.getvalue().strip()
    assert key_parse(plaintext) is not None, plaintext
    assert "cannot be shown again" in err.getvalue()
    authorized = client.post(
        "/api/v1/authorize", data=VALID_PAIR, content_type="application/json", headers=bearer(plaintext)
    )
    assert authorized.status_code == 200
    assert authorized.json()["status"] == "not_allowed"
    unscoped = client.get("/api/getrequestlog/", headers=bearer(plaintext))
    assert unscoped.status_code == 403


@pytest.mark.django_db
def test_create_api_key_stores_only_a_hash_of_the_key() -> None:
    out = StringIO()

    call_command(
        "create_api_key", "--client", "depot-south", "--scopes", "authorize", stdout=out, stderr=StringIO()
    )

    plaintext = out.getvalue().strip()
    parsed = key_parse(plaintext)
    assert parsed is not None
    row = ApiKey.objects.get(client__name="depot-south")
    stored = [str(getattr(row, f.attname)) for f in ApiKey._meta.concrete_fields]
    assert not any(plaintext in value or parsed.secret in value for value in stored), stored
    assert row.prefix == parsed.prefix
    assert row.key_hash == hashlib.sha256(parsed.secret.encode()).hexdigest()
    assert row.scopes == ["authorize"]


@pytest.mark.django_db
def test_create_api_key_refuses_an_unknown_scope() -> None:
    with pytest.raises(CommandError):
        call_command("create_api_key", "--client", "depot-east", "--scopes", "everything", stdout=StringIO())

    assert not ApiKey.objects.filter(client__name="depot-east").exists()


@pytest.mark.django_db
def test_each_create_api_key_run_prints_a_new_key_for_the_same_client(client: Client) -> None:
    keys = []
    for _ in range(2):
        out = StringIO()
        call_command(
            "create_api_key", "--client", "depot-west", "--scopes", "authorize", stdout=out, stderr=StringIO()
        )
        keys.append(out.getvalue().strip())

    assert keys[0] != keys[1]
    assert ApiKey.objects.filter(client__name="depot-west").count() == 2
    for plaintext in keys:
        response = client.post(
            "/api/v1/authorize", data=VALID_PAIR, content_type="application/json", headers=bearer(plaintext)
        )
        assert response.status_code == 200
