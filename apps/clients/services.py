"""Writes for API clients and keys."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.clients.keys import key_generate, key_parse, secret_hash
from apps.clients.models import ApiClient, ApiKey, Scope
from apps.clients.selectors import api_client_cache_clear, api_key_cache_clear

ALL_SCOPES = [scope.value for scope in Scope]
# last_used_at is written at most this often per key.
LAST_USED_RESOLUTION = timedelta(minutes=1)


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


def api_clients_activate(*, clients: QuerySet[ApiClient]) -> int:
    """Let these clients' keys work again; returns how many were inactive."""
    changed = clients.filter(is_active=False).update(is_active=True)
    api_key_cache_clear()
    return changed


def api_clients_deactivate(*, clients: QuerySet[ApiClient]) -> int:
    """Stop every key of these clients at once in this process (others: within CHARGE_API_KEY_CACHE_S,
    as for a revoked key); returns how many were active."""
    changed = clients.filter(is_active=True).update(is_active=False)
    api_key_cache_clear()
    return changed


def callback_secret_rotate(*, client: ApiClient, window: timedelta, new_secret: str | None = None) -> str:
    """Give the client a new callback secret; the old one keeps signing too for `window`.

    Receivers that verify with either secret accept every callback during the switch-over.
    """
    secret = new_secret or callback_secret_generate()
    client.previous_callback_secret = client.callback_secret
    client.previous_secret_valid_until = timezone.now() + window
    client.callback_secret = secret
    client.save(update_fields=["callback_secret", "previous_callback_secret", "previous_secret_valid_until"])
    api_client_cache_clear()
    return secret


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


def api_key_update(*, key: ApiKey, name: str, scopes: Iterable[str], expires_at: datetime | None) -> ApiKey:
    """Change a key's name, scopes or expiry (its secret never changes: rotate for that). This
    process's key cache is cleared, so narrower scopes or an earlier expiry count here at once."""
    key.name, key.scopes, key.expires_at = name, _scopes_checked(scopes), expires_at
    key.save(update_fields=["name", "scopes", "expires_at"])
    api_key_cache_clear()
    return key


def api_key_used_mark(*, key: ApiKey) -> None:
    """Note that the key was used just now, at most once per LAST_USED_RESOLUTION (a hint for
    operators, not an audit log: a write per request would be a write per request)."""
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now


def api_key_revoke(*, key: ApiKey) -> ApiKey:
    """Refuse the key from now on (other api processes: within CHARGE_API_KEY_CACHE_S)."""
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    api_key_cache_clear()
    return key


def api_key_rotate(*, key: ApiKey, overlap: timedelta) -> tuple[ApiKey, str]:
    """A new key with the same scopes; the old one keeps working for `overlap`, then expires.

    Two live keys per client during the overlap let callers switch without a failed request.
    """
    new_key, plaintext = api_key_create(client=key.client, scopes=key.scopes, name=key.name)
    deadline = timezone.now() + overlap
    if key.expires_at is None or key.expires_at > deadline:
        key.expires_at = deadline
        key.save(update_fields=["expires_at"])
    api_key_cache_clear()
    return new_key, plaintext
