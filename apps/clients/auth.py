"""django-ninja authentication: `Authorization: Bearer <api key>` with a required scope."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja.security import HttpBearer

from apps.clients.models import ApiKey
from apps.clients.ratelimit import rate_limit_take
from apps.clients.selectors import api_key_authenticate
from apps.clients.services import api_key_used_mark


class ScopeDenied(Exception):
    def __init__(self, scope: str) -> None:
        super().__init__(f"this API key lacks the scope '{scope}'")
        self.scope = scope


class RateLimited(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"rate limit exceeded; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class ApiKeyAuth(HttpBearer):
    """401 without a valid key (ninja's default), 403 when the key lacks `scope`, 429 over the rate."""

    def __init__(self, scope: str) -> None:
        super().__init__()
        self.scope = str(scope)

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        key = api_key_authenticate(presented=token)
        if key is None:
            return None
        api_key_used_mark(key=key)
        if self.scope not in key.scopes:
            raise ScopeDenied(self.scope)
        rate = key.client.rate_limit_per_s or settings.CHARGE_RATE_LIMIT_PER_S
        if rate > 0:
            decision = rate_limit_take(
                client_id=key.client_id,
                rate_per_s=rate,
                burst=max(1, int(rate * settings.CHARGE_RATE_BURST_S)),
            )
            if not decision.allowed:
                raise RateLimited(decision.retry_after_s)
        return key


def request_api_key(request: HttpRequest) -> ApiKey:
    """The key ninja authenticated for this request."""
    key: Any = getattr(request, "auth", None)
    assert isinstance(key, ApiKey)  # noqa: S101 - every caller sits behind ApiKeyAuth
    return key
