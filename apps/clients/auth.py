"""django-ninja authentication: `Authorization: Bearer <api key>` with a required scope."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja.security import HttpBearer

from apps.clients.models import ApiKey
from apps.clients.selectors import api_key_authenticate


class ScopeDenied(Exception):
    def __init__(self, scope: str) -> None:
        super().__init__(f"this API key lacks the scope {scope!r}")
        self.scope = scope


class ApiKeyAuth(HttpBearer):
    """401 without a valid key (ninja's default), 403 when the key lacks `scope`."""

    def __init__(self, scope: str) -> None:
        super().__init__()
        self.scope = scope

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        key = api_key_authenticate(presented=token)
        if key is None:
            return None
        if self.scope not in key.scopes:
            raise ScopeDenied(self.scope)
        return key


def request_api_key(request: HttpRequest) -> ApiKey:
    """The key ninja authenticated for this request."""
    key: Any = getattr(request, "auth", None)
    assert isinstance(key, ApiKey)  # noqa: S101 - every caller sits behind ApiKeyAuth
    return key
