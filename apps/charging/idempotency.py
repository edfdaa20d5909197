"""Idempotency-Key for POST /api/v1/charging-requests, kept in Redis for 24 h.

A key is first *reserved* (SET NX) with the body's fingerprint and the request_id the request will
get, then marked *done* once Kafka acknowledged it, or released if it did not. A repeat with the
same body gets the first answer and produces nothing; a repeat while the first is still in flight
is told to retry; the same key with another body is the caller's mistake.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from django.conf import settings

from apps.core.kv import redis_client

KEY_MAX = 255


@dataclass(frozen=True)
class PriorUse:
    state: Literal["pending", "done"]
    fingerprint: str
    request_id: uuid.UUID


def body_fingerprint(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _redis_key(client_id: int, key: str) -> str:
    return f"charge:idem:{client_id}:{hashlib.sha256(key.encode()).hexdigest()}"


def idempotency_reserve(
    *, client_id: int, key: str, fingerprint: str, request_id: uuid.UUID
) -> PriorUse | None:
    """Reserve `key` for this request; None if it was free, else what the earlier use recorded."""
    name = _redis_key(client_id, key)
    value = json.dumps({"state": "pending", "fingerprint": fingerprint, "request_id": str(request_id)})
    client = redis_client()
    # The reservation lapses quickly if this process dies before marking it done or releasing it.
    if client.set(name, value, nx=True, ex=60):
        return None
    raw = client.get(name)
    if raw is None:  # released between our SET and GET: take it now
        return idempotency_reserve(
            client_id=client_id, key=key, fingerprint=fingerprint, request_id=request_id
        )
    prior = json.loads(raw)
    return PriorUse(
        state=prior["state"], fingerprint=prior["fingerprint"], request_id=uuid.UUID(prior["request_id"])
    )


def idempotency_complete(*, client_id: int, key: str, fingerprint: str, request_id: uuid.UUID) -> None:
    value = json.dumps({"state": "done", "fingerprint": fingerprint, "request_id": str(request_id)})
    redis_client().set(_redis_key(client_id, key), value, ex=settings.CHARGE_IDEMPOTENCY_TTL_S)


def idempotency_release(*, client_id: int, key: str) -> None:
    redis_client().delete(_redis_key(client_id, key))
