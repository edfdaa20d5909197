"""Reads for API clients and keys."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apps.clients.keys import key_parse, secret_matches
from apps.clients.models import ApiKey

# last_used_at is a hint for operators, not an audit log: write it at most once a minute per key.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def api_key_authenticate(*, presented: str) -> ApiKey | None:
    """The live key matching `presented`, or None (malformed, unknown, wrong secret, revoked, expired)."""
    parsed = key_parse(presented)
    if parsed is None:
        return None
    key = ApiKey.objects.select_related("client").filter(prefix=parsed.prefix).first()
    if key is None or not secret_matches(parsed.secret, key.key_hash):
        return None
    now = timezone.now()
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        return None
    if not key.client.is_active:
        return None
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key
