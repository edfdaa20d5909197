"""The Redis connection of this process (rate-limit buckets, idempotency keys, health checks)."""

from __future__ import annotations

import os
import threading

import redis
from django.conf import settings

_lock = threading.Lock()
_client: redis.Redis | None = None
_client_pid: int | None = None
_client_url: str | None = None


def redis_client() -> redis.Redis:
    """A pooled client, created lazily per process (never shared across a fork)."""
    global _client, _client_pid, _client_url  # noqa: PLW0603 - the per-process client is the point
    pid, url = os.getpid(), settings.REDIS_URL
    if _client is not None and _client_pid == pid and _client_url == url:
        return _client
    with _lock:
        if _client is None or _client_pid != pid or _client_url != url:
            # Short timeouts: Redis on the request path must fail fast, not hang a request.
            _client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
            _client_pid, _client_url = pid, url
        return _client
