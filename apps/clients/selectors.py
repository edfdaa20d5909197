"""Reads for API clients and keys, with a short in-process cache of authenticated keys.

Each api process keeps a key it has verified for CHARGE_API_KEY_CACHE_S seconds (60 by default), so
a request costs no database query for its key. The price: a key revoked in another process (the
admin, another api process) is refused by this one at most that many seconds later. Revoking through
apps.clients.services clears this process's cache at once.
"""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.clients.keys import key_parse, secret_matches
from apps.clients.models import ApiKey

# last_used_at is a hint for operators, not an audit log: write it at most once a minute per key.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_CACHE_MAX = 10_000

_cache: dict[str, tuple[float, ApiKey]] = {}
_cache_lock = threading.Lock()


def api_key_cache_clear() -> None:
    with _cache_lock:
        _cache.clear()


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
    ttl = settings.CHARGE_API_KEY_CACHE_S
    # Cache by a hash of the whole key: the plaintext is never kept in memory longer than the request.
    fingerprint = hashlib.sha256(presented.encode()).hexdigest()
    cached = _cache.get(fingerprint)
    if cached is not None and time.monotonic() - cached[0] < ttl:
        key: ApiKey | None = cached[1]
    else:
        key = _verified_key(presented)
        with _cache_lock:
            if key is None or ttl <= 0:
                _cache.pop(fingerprint, None)
            else:
                if len(_cache) >= _CACHE_MAX:
                    _cache.clear()
                _cache[fingerprint] = (time.monotonic(), key)
    if key is None:
        return None
    now = timezone.now()
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        return None
    if not key.client.is_active:
        return None
    _last_used_touch(key)
    return key


def _last_used_touch(key: ApiKey) -> None:
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
