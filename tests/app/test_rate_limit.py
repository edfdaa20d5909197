"""The leased token bucket (apps/clients/ratelimit.py) against the real Redis of the app layer."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from apps.clients import ratelimit
from apps.clients.ratelimit import lease_size, rate_limit_leases_clear, rate_limit_take
from project.kv import redis_client


@pytest.fixture
def client_id() -> Iterator[int]:
    """A client id no other test uses, with no bucket and no lease yet."""
    rate_limit_leases_clear()
    client_id = uuid.uuid4().int % 10**12
    yield client_id
    redis_client().delete(f"charge:rate:{client_id}")
    rate_limit_leases_clear()


def bucket_tokens(client_id: int) -> float:
    return float(redis_client().hget(f"charge:rate:{client_id}", "tokens") or "nan")


def test_a_lease_is_a_few_tokens_of_the_shared_bucket_spent_without_asking_redis(client_id: int) -> None:
    lease = lease_size(rate_per_s=1000, burst=2000)
    assert lease == 50

    assert rate_limit_take(client_id=client_id, rate_per_s=1000, burst=2000).allowed
    after_first = bucket_tokens(client_id)
    for _ in range(lease - 1):
        assert rate_limit_take(client_id=client_id, rate_per_s=1000, burst=2000).allowed
    after_lease = bucket_tokens(client_id)
    assert rate_limit_take(client_id=client_id, rate_per_s=1000, burst=2000).allowed

    assert after_first == pytest.approx(2000 - lease, abs=1)
    assert after_lease == after_first  # the lease's other tokens were spent here, not in Redis
    assert bucket_tokens(client_id) < after_first - lease + 50  # the next lease came from the bucket


def test_a_small_burst_is_taken_one_token_at_a_time(client_id: int) -> None:
    assert lease_size(rate_per_s=1, burst=2) == 1
    answers = [rate_limit_take(client_id=client_id, rate_per_s=1, burst=2) for _ in range(3)]

    assert [answer.allowed for answer in answers] == [True, True, False]
    assert answers[2].retry_after_s >= 1


def test_what_is_left_of_a_lease_is_dropped_after_its_time(
    client_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "LEASE_S", 0.01)
    rate_limit_take(client_id=client_id, rate_per_s=100, burst=200)
    at_first = redis_client().hget(f"charge:rate:{client_id}", "at")
    time.sleep(0.05)

    rate_limit_take(client_id=client_id, rate_per_s=100, burst=200)

    assert redis_client().hget(f"charge:rate:{client_id}", "at") != at_first


def test_a_lease_never_holds_more_than_the_bucket_gave(client_id: int) -> None:
    assert lease_size(rate_per_s=100, burst=200) == 5
    redis_client().hset(f"charge:rate:{client_id}", mapping={"tokens": 2, "at": f"{time.time():.6f}"})

    assert rate_limit_take(client_id=client_id, rate_per_s=100, burst=200).allowed

    assert bucket_tokens(client_id) < 1  # both whole tokens granted, none invented
    assert ratelimit._leases[client_id].tokens == 1  # one spent on this request, one left
