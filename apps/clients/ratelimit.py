"""Per-client rate limits: a token bucket in Redis, so the limit holds across every api process.

A bucket holds up to `burst` tokens and refills at `rate` tokens a second; a request takes one. The
check-and-take runs as one Lua script, atomic on the Redis server. No maintained Python library
offers a Redis token bucket (limits has fixed and sliding windows only), and a token bucket lets a
station burst after a quiet minute without letting anyone exceed the sustained rate.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

import redis
import structlog

from project.kv import redis_client

logger = structlog.get_logger(__name__)

# KEYS[1] bucket; ARGV: rate (tokens/s), burst, now (s, float). Returns {allowed, wait_ms}.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
local wait_ms = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait_ms = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, wait_ms}
"""


# EVALSHA by the script's digest: its text is sent (and hashed by Redis) only when Redis does not
# know it yet: the first request after a start or a restart of Redis.
_TAKE_SHA = hashlib.sha1(_TAKE.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1


def _take(key: str, *args: str | float) -> list[int]:
    client = redis_client()
    try:
        return client.evalsha(_TAKE_SHA, 1, key, *args)
    except redis.exceptions.NoScriptError:
        return client.eval(_TAKE, 1, key, *args)


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: int


def rate_limit_take(*, client_id: int, rate_per_s: float, burst: int) -> RateDecision:
    """Take one token from the client's bucket. Fails open (allowed) when Redis is unreachable."""
    try:
        allowed, wait_ms = _take(f"charge:rate:{client_id}", rate_per_s, burst, f"{time.time():.6f}")
    except redis.RedisError as exc:
        # An unreachable Redis must not take the API down with it; the limit is a guard, not a gate.
        logger.warning("rate_limit_unavailable", client_id=client_id, error=repr(exc))
        return RateDecision(allowed=True, retry_after_s=0)
    return RateDecision(allowed=bool(allowed), retry_after_s=max(1, math.ceil(int(wait_ms) / 1000)))
