"""Who calls the API in the app tests: an ApiClient with one key, and valid identifiers to send."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlencode

from django.test import Client

from apps.charging.models import ChargingRequest
from apps.clients.models import ApiClient, ApiKey
from apps.core.tasks import DELIVER_TASK

# Valid identifiers in the forms DESIGN.md "Identifiers and validation" accepts.
STATION = "5d1b6f3c-8a52-4c1e-9f0a-2b7d4e6c8a10"
OTHER_STATION = "0e6a1c9b-3f47-4d28-8b5e-7c2a9d1f4e36"
LEGACY_STATION = "ST0001abcdefghijklmnopqrstuvwxyz0123"  # the original's 36 alphanumerics
TOKEN = "04A1B2C3D4E5F6-driver.token_01"
OTHER_TOKEN = "unknown-driver-token-000000"
CALLBACK = "http://127.0.0.1:9/charge-callback"

assert len(LEGACY_STATION) == 36


def bearer(key: str) -> dict[str, str]:
    """Headers for django.test.Client(headers=...) presenting `key` as a bearer token."""
    return {"Authorization": f"Bearer {key}"}


@dataclass(frozen=True)
class Caller:
    """An API client, one of its keys, and the key's plaintext as the caller holds it."""

    client: ApiClient
    key: ApiKey
    plaintext: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.plaintext)

    def post_json(self, http: Client, path: str, body: Any) -> Any:
        """POST `body` as JSON (a str is sent as it is, to test malformed bodies)."""
        data = body if isinstance(body, str) else json.dumps(body)
        return http.post(path, data=data, content_type="application/json", headers=self.headers)

    def post_form(self, http: Client, path: str, fields: dict[str, str]) -> Any:
        return http.post(
            path,
            data=urlencode(fields),
            content_type="application/x-www-form-urlencoded",
            headers=self.headers,
        )

    def get(self, http: Client, path: str, params: dict[str, Any] | None = None) -> Any:
        return http.get(path, data=params or {}, headers=self.headers)


class MakeCaller(Protocol):
    """The make_caller fixture: a key with exactly `scopes` for the client named `client`."""

    def __call__(self, *scopes: str, client: str = ..., expires_at: datetime | None = ...) -> Caller: ...


# The log_row fixture: an unsaved decision-log row of `client`, with any field overridden.
LogRow = Callable[..., ChargingRequest]


class SentTasks:
    """Stands in for the Celery app in apps.callbacks.services (the app layer runs no broker).

    Records the delivery ids of every deliver task sent, with its countdown; `refuse` makes it act
    as a broker that is away.
    """

    def __init__(self) -> None:
        self.request_ids: list[str] = []
        self.countdowns: list[float | None] = []
        self.refuse = False

    def producer_or_acquire(self, producer: Any = None) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    def send_task(self, name: str, *, kwargs: dict[str, Any], **options: Any) -> None:
        if self.refuse:
            raise ConnectionError("broker down")
        assert name == DELIVER_TASK
        self.request_ids.extend(kwargs["request_ids"])
        self.countdowns.append(options.get("countdown"))
