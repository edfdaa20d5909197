"""The Redis connection of this process (rate-limit buckets, idempotency keys, health checks)."""

from __future__ import annotations

import redis
from django.conf import settings

from apps.core.process import PerProcess


def _connect() -> redis.Redis:
    # Short timeouts: Redis on the request path must fail fast, not hang a request.
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)


# A pooled client per process, made again when REDIS_URL changes (tests point it elsewhere).
_client: PerProcess[redis.Redis] = PerProcess(_connect, key=lambda: settings.REDIS_URL)


def redis_client() -> redis.Redis:
    """This process's pooled client, created lazily (never shared across a fork)."""
    return _client.get()
