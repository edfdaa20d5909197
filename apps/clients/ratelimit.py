"""Per-client rate limits: a token bucket in Redis, so the limit holds across every api process.

A bucket holds up to `burst` tokens and refills at `rate` tokens a second; a request takes one. The
check-and-take runs as one Lua script, atomic on the Redis server. No maintained Python library
offers a Redis token bucket (limits has fixed and sliding windows only), and a token bucket lets a
station burst after a quiet minute without letting anyone exceed the sustained rate.

A process takes its tokens a few at a time (a lease) and spends them itself: one Redis round trip
per lease instead of one per request (~0.2 ms of an accepted request's ~1.8 ms CPU, README
"Benchmarks"). A lease is at most LEASE_S worth of the rate and a tenth of the burst; what is left
of it after LEASE_S goes back into the bucket with the process's next take, so a client sending at
its rate through several processes is never refused for tokens a lease took and did not spend. The
limit is the one bucket every api process shares: no token is spent twice, and at most a lease per
process (one token for a client whose burst is under 20) waits in a process instead of the bucket.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import redis
import structlog
from redis.commands.core import Script

from apps.core.kv import redis_client

logger = structlog.get_logger(__name__)

LEASE_S = 0.1
LEASE_MAX = 100
# Leases of clients that stopped calling are dropped together once there are this many.
_LEASES_MAX = 10_000

# KEYS[1] bucket; ARGV: rate (tokens/s), burst, now (s, float), tokens wanted, tokens given back (an
# expired lease's). Returns {granted, wait_ms}: up to the tokens wanted while the bucket holds a
# whole one, else 0 and the wait for one.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
local returned = tonumber(ARGV[5])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate + returned)
local granted = 0
local wait_ms = 0
if tokens >= 1 then
  granted = math.min(wanted, math.floor(tokens))
  tokens = tokens - granted
else
  wait_ms = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {granted, wait_ms}
"""


@dataclass
class _Lease:
    tokens: int
    until: float  # time.monotonic()


_leases: dict[int, _Lease] = {}
_leases_lock = threading.Lock()
_script: tuple[redis.Redis, Script] | None = None


def _take(key: str, *args: str | float) -> list[int]:
    """The script, by its SHA-1 once Redis knows it (redis-py sends the text again after a restart)."""
    global _script  # noqa: PLW0603 - one registration per client of this process
    client = redis_client()
    if _script is None or _script[0] is not client:
        _script = (client, client.register_script(_TAKE))
    return _script[1](keys=[key], args=args)


def lease_size(*, rate_per_s: float, burst: int) -> int:
    return max(1, min(LEASE_MAX, burst // 10, math.ceil(rate_per_s * LEASE_S)))


def rate_limit_leases_clear() -> None:
    with _leases_lock:
        _leases.clear()


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: int


ALLOWED = RateDecision(allowed=True, retry_after_s=0)


def rate_limit_take(*, client_id: int, rate_per_s: float, burst: int) -> RateDecision:
    """Take one token for the client: from this process's lease, else from the shared bucket.

    Fails open (allowed) when Redis is unreachable.
    """
    with _leases_lock:
        lease = _leases.get(client_id)
        if lease is not None and lease.tokens > 0 and time.monotonic() < lease.until:
            lease.tokens -= 1
            return ALLOWED
        # Expired or spent: what is left goes back with this take.
        returned = _leases.pop(client_id).tokens if lease is not None else 0
    wanted = lease_size(rate_per_s=rate_per_s, burst=burst)
    try:
        granted, wait_ms = _take(
            f"charge:rate:{client_id}", rate_per_s, burst, f"{time.time():.6f}", wanted, returned
        )
    except redis.RedisError as exc:
        # An unreachable Redis must not take the API down with it; the limit is a guard, not a gate.
        logger.warning("rate_limit_unavailable", client_id=client_id, error=repr(exc))
        return ALLOWED
    if int(granted) < 1:
        return RateDecision(allowed=False, retry_after_s=max(1, math.ceil(int(wait_ms) / 1000)))
    if int(granted) > 1:
        with _leases_lock:
            if len(_leases) >= _LEASES_MAX:
                _leases.clear()
            _leases[client_id] = _Lease(tokens=int(granted) - 1, until=time.monotonic() + LEASE_S)
    return ALLOWED
