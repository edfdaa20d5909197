"""Reads for API clients and keys, with a short in-process cache of authenticated keys.

Each api process keeps a key it has verified for CHARGE_API_KEY_CACHE_S seconds (60 by default), so
a request costs no database query for its key. The price: a key revoked in another process (the
admin, another api process) is refused by this one at most that many seconds later. Revoking through
apps.clients.services clears this process's cache at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from django.conf import settings
from django.utils import timezone

from apps.clients.keys import key_parse, secret_matches
from apps.clients.models import ApiClient, ApiKey
from apps.core.cache import TtlCache

_keys: TtlCache[str, ApiKey] = TtlCache(ttl_s=lambda: settings.CHARGE_API_KEY_CACHE_S)
_clients: TtlCache[int, ApiClient] = TtlCache(ttl_s=lambda: settings.CHARGE_CLIENT_CACHE_S)


def api_key_cache_clear() -> None:
    _keys.clear()


def api_client_cache_clear() -> None:
    _clients.clear()


def _verified_key(presented: str) -> ApiKey | None:
    parsed = key_parse(presented)
    if parsed is None:
        return None
    key = ApiKey.objects.select_related("client").filter(prefix=parsed.prefix).first()
    if key is None or not secret_matches(parsed.secret, key.key_hash):
        return None
    return key


def api_key_authenticate(*, presented: str) -> ApiKey | None:
    """The live key matching `presented`, or None (malformed, unknown, wrong secret, revoked, expired)."""
    # Cache by a hash of the whole key: the plaintext is never kept in memory longer than the request.
    fingerprint = hashlib.sha256(presented.encode()).hexdigest()
    key = _keys.get(fingerprint)
    if key is None:
        key = _verified_key(presented)
        if key is None:
            _keys.pop(fingerprint)
        else:
            _keys.put(fingerprint, key)
    if key is None:
        return None
    now = timezone.now()
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        return None
    if not key.client.is_active:
        return None
    return key


def api_clients_by_id(ids: Iterable[int]) -> dict[int, ApiClient]:
    """The clients with these ids (a deleted one is absent), each read at most once every
    CHARGE_CLIENT_CACHE_S seconds in this process: every callback batch signs with its client's
    secrets, and at a hundred batches a second that read was one round trip in ten of the bridge's.
    A rotated secret signs here that many seconds later at most (the old one stays valid meanwhile,
    clients.services.callback_secret_rotate); rotating in this process takes effect at once."""
    found: dict[int, ApiClient] = {}
    missing = []
    for pk in set(ids):
        client = _clients.get(pk)
        if client is None:
            missing.append(pk)
        else:
            found[pk] = client
    if missing:
        for client in ApiClient.objects.filter(pk__in=missing):
            _clients.put(client.pk, client)
            found[client.pk] = client
    return found
