"""Hardening a caller or an attacker would notice: rate limits, content types, key life, admin logins."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from apps.clients.models import ApiClient, ApiKey
from apps.clients.services import api_clients_activate, api_clients_deactivate, api_key_revoke, api_key_rotate
from tests.app.callers import STATION, TOKEN, Caller, bearer

AUTHORIZE = {"station_id": STATION, "driver_token": TOKEN}


@pytest.mark.django_db
def test_over_the_clients_rate_the_answer_is_429_with_retry_after(client: Client, caller: Caller) -> None:
    caller.client.rate_limit_per_s = 1
    caller.client.save()
    # Burst is two seconds' worth: two requests pass at once, the third waits for a token.
    answers = [caller.post_json(client, "/api/v1/authorize", AUTHORIZE) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2]["Retry-After"]) >= 1
    assert "rate limit" in answers[2].json()["detail"]


@pytest.mark.django_db
def test_the_rate_limit_is_per_client(client: Client, caller: Caller, other_caller: Caller) -> None:
    caller.client.rate_limit_per_s = 1
    caller.client.save()
    for _ in range(3):
        caller.post_json(client, "/api/v1/authorize", AUTHORIZE)

    assert other_caller.post_json(client, "/api/v1/authorize", AUTHORIZE).status_code == 200


@pytest.mark.django_db
def test_a_form_body_on_v1_is_415(client: Client, caller: Caller) -> None:
    response = caller.post_form(client, "/api/v1/authorize", AUTHORIZE)

    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]


@pytest.mark.django_db
def test_malformed_json_on_v1_is_400_and_on_the_original_routes_rejected(
    client: Client, caller: Caller
) -> None:
    assert caller.post_json(client, "/api/v1/authorize", '{"station_id": ').status_code == 400
    legacy = caller.post_json(client, "/api/chargingRequestValidator/", '{"station_id": ')
    assert legacy.status_code == 200
    assert legacy.json()["status"] == "rejected"


@pytest.mark.django_db
def test_a_revoked_key_is_refused_at_once_in_the_process_that_revoked_it(
    client: Client, caller: Caller
) -> None:
    assert caller.post_json(client, "/api/v1/authorize", AUTHORIZE).status_code == 200

    api_key_revoke(key=caller.key)

    assert caller.post_json(client, "/api/v1/authorize", AUTHORIZE).status_code == 401


@pytest.mark.django_db
def test_a_deactivated_client_is_refused_at_once_here_and_let_in_again_when_activated(
    client: Client, caller: Caller
) -> None:
    assert caller.post_json(client, "/api/v1/authorize", AUTHORIZE).status_code == 200  # key now cached
    clients = ApiClient.objects.filter(pk=caller.client.pk)

    assert api_clients_deactivate(clients=clients) == 1
    assert caller.post_json(client, "/api/v1/authorize", AUTHORIZE).status_code == 401
    assert api_clients_deactivate(clients=clients) == 0  # already inactive

    assert api_clients_activate(clients=clients) == 1
    assert caller.post_json(client, "/api/v1/authorize", AUTHORIZE).status_code == 200


@pytest.mark.django_db
def test_a_rotated_key_overlaps_with_its_successor_then_expires(client: Client, caller: Caller) -> None:
    new_key, plaintext = api_key_rotate(key=caller.key, overlap=timedelta(minutes=5))

    assert caller.post_json(client, "/api/v1/authorize", AUTHORIZE).status_code == 200
    assert (
        client.post(
            "/api/v1/authorize", AUTHORIZE, content_type="application/json", headers=bearer(plaintext)
        ).status_code
        == 200
    )
    assert sorted(new_key.scopes) == sorted(caller.key.scopes)
    assert ApiKey.objects.filter(client=caller.client, revoked_at=None).count() == 2

    ApiKey.objects.filter(pk=caller.key.pk).update(expires_at=caller.key.created_at)
    api_key_revoke(key=new_key)  # clears the cache too; the old key's expiry is then read afresh
    assert caller.post_json(client, "/api/v1/authorize", AUTHORIZE).status_code == 401


@pytest.mark.django_db
def test_the_key_never_appears_in_an_error_answer(client: Client, caller: Caller) -> None:
    wrong = caller.plaintext[:-4] + "AAAA"
    response = client.get("/api/getrequestlog/", headers=bearer(wrong))

    assert response.status_code == 401
    assert wrong not in response.content.decode()
    assert caller.plaintext not in response.content.decode()


@pytest.mark.django_db
def test_admin_logins_are_locked_out_after_repeated_failures(client: Client, django_user_model: Any) -> None:
    django_user_model.objects.create_superuser("ops", "ops@example.test", "right-password-123")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/?next=/admin/", {"username": "ops", "password": "wrong"})

    locked = client.post("/admin/login/?next=/admin/", {"username": "ops", "password": "right-password-123"})

    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_cookies_are_secure_and_headers_hardened_when_debug_is_off() -> None:
    assert settings.DEBUG is False
    assert settings.SESSION_COOKIE_SECURE is True
    assert settings.CSRF_COOKIE_SECURE is True
    assert settings.SESSION_COOKIE_HTTPONLY is True
    assert settings.X_FRAME_OPTIONS == "DENY"
    assert settings.SECURE_CONTENT_TYPE_NOSNIFF is True


@pytest.mark.django_db
def test_the_admin_login_form_keeps_its_csrf_protection(django_user_model: Any) -> None:
    django_user_model.objects.create_superuser("ops", "ops@example.test", "right-password-123")
    strict = Client(enforce_csrf_checks=True)

    response = strict.post(
        "/admin/login/?next=/admin/", {"username": "ops", "password": "right-password-123"}
    )

    assert response.status_code == 403


@pytest.mark.django_db
def test_api_routes_skip_the_admins_middleware_and_the_admin_keeps_it(client: Client, caller: Caller) -> None:
    api = client.post("/api/v1/authorize", AUTHORIZE, content_type="application/json", headers=caller.headers)
    admin = client.get("/admin/login/")

    assert api.status_code == 200
    assert not hasattr(api.wsgi_request, "session")
    assert not hasattr(api.wsgi_request, "user")
    assert "X-Frame-Options" not in api
    assert api["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware runs for every path
    assert admin.status_code == 200
    assert admin["X-Frame-Options"] == "DENY"
    assert "csrftoken" in admin.cookies
    assert hasattr(admin.wsgi_request, "session")


def test_the_system_checks_ask_for_the_admins_middleware_in_site_middleware(settings: Any) -> None:
    from apps.api.checks import site_middleware_check

    complete = list(settings.SITE_MIDDLEWARE)
    assert site_middleware_check() == []
    settings.SITE_MIDDLEWARE = [m for m in complete if "sessions" not in m]
    assert [error.id for error in site_middleware_check()] == ["api.E002"]
    settings.SITE_MIDDLEWARE = [*reversed(complete)]
    assert "api.E003" in [error.id for error in site_middleware_check()]
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.endswith("SiteOnlyMiddleware")]
    assert "api.E001" in [error.id for error in site_middleware_check()]


@pytest.mark.django_db
def test_nul_characters_are_refused_before_they_reach_the_database(client: Client, caller: Caller) -> None:
    query = client.get("/api/v1/charging-requests?driver_token=%00abc", headers=caller.headers)
    body = caller.post_json(client, "/api/insertACL/", '{"station_id": "x\\u0000", "driver_token": "y"}')
    v1 = caller.post_json(client, "/api/v1/token-groups", '{"name": "x\\u0000"}')

    assert query.status_code == 400
    assert "driver_token" in query.json()["detail"]
    assert "NUL" in query.json()["detail"]
    # The body parser names the field: the original route's own refusal, /api/v1's 422.
    assert (body.status_code, body.json()) == (200, {"flag": "error"})
    assert v1.status_code == 422
    assert v1.json()["detail"][0]["loc"][-1] == "name"
    assert "NUL" in v1.json()["detail"][0]["msg"]
