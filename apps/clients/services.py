"""Writes for API clients and keys."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from apps.clients.keys import key_generate, key_parse, secret_hash
from apps.clients.models import ApiClient, ApiKey, Scope

ALL_SCOPES = [scope.value for scope in Scope]


def callback_secret_generate() -> str:
    return secrets.token_urlsafe(32)


def api_client_get_or_create(*, name: str, callback_secret: str | None = None) -> ApiClient:
    """The client called `name`, created with a fresh (or the given) callback secret if missing."""
    client, created = ApiClient.objects.get_or_create(
        name=name, defaults={"callback_secret": callback_secret or callback_secret_generate()}
    )
    if not created and callback_secret and client.callback_secret != callback_secret:
        client.callback_secret = callback_secret
        client.save(update_fields=["callback_secret"])
    return client


def _scopes_checked(scopes: Iterable[str]) -> list[str]:
    chosen = sorted(set(scopes))
    unknown = [scope for scope in chosen if scope not in ALL_SCOPES]
    if unknown:
        raise ValueError(f"unknown scopes {unknown}; choose from {ALL_SCOPES}")
    return chosen


def api_key_create(
    *,
    client: ApiClient,
    scopes: Iterable[str],
    name: str = "",
    expires_at: datetime | None = None,
    plaintext: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its plaintext, which is never stored and shown only now.

    `plaintext` lets `make run` install the key it already wrote to .local/dev.env.
    """
    key_text = plaintext or key_generate()
    parsed = key_parse(key_text)
    if parsed is None:
        raise ValueError("malformed API key")
    key = ApiKey.objects.create(
        client=client,
        name=name,
        prefix=parsed.prefix,
        key_hash=secret_hash(parsed.secret),
        scopes=_scopes_checked(scopes),
        expires_at=expires_at,
    )
    return key, key_text


@transaction.atomic
def api_key_ensure(*, client: ApiClient, plaintext: str, scopes: Iterable[str]) -> ApiKey:
    """Install a known key for `client` if its prefix is not there yet (dev seeding; idempotent)."""
    parsed = key_parse(plaintext)
    if parsed is None:
        raise ValueError("malformed API key")
    existing = ApiKey.objects.filter(prefix=parsed.prefix).first()
    if existing is not None:
        return existing
    key, _ = api_key_create(client=client, scopes=scopes, name="dev", plaintext=plaintext)
    return key


def api_key_revoke(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key
