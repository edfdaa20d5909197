"""The leased token bucket (apps/clients/ratelimit.py) against the real Redis of the app layer."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from apps.clients import ratelimit
from apps.clients.ratelimit import lease_size, rate_limit_leases_clear, rate_limit_take
from apps.core.kv import redis_client


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
    assert lease == 100

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


def test_what_an_expired_lease_did_not_spend_goes_back_to_the_bucket(client_id: int) -> None:
    assert lease_size(rate_per_s=100, burst=200) == 10
    rate_limit_take(client_id=client_id, rate_per_s=100, burst=200)  # a lease of 10, one spent
    assert bucket_tokens(client_id) == pytest.approx(190, abs=1)
    ratelimit._leases[client_id].until = 0.0  # its time is up with 9 unspent

    rate_limit_take(client_id=client_id, rate_per_s=100, burst=200)

    # 190 + the 9 back (+ a moment's refill, capped at the burst) - the next lease of 10
    assert bucket_tokens(client_id) == pytest.approx(189, abs=1)
    assert ratelimit._leases[client_id].tokens == 9


def test_a_client_at_its_rate_through_four_processes_is_never_refused(
    client_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Four processes' leases (10 tokens each), taking turns at the client's full rate for 1.5 s: each
    # lease expires with ~7 unspent, which must not be taken from the client.
    assert lease_size(rate_per_s=100, burst=100) == 10
    leases: list[dict[int, object]] = [{}, {}, {}, {}]
    refused = 0
    started = time.monotonic()
    for n in range(150):
        monkeypatch.setattr(ratelimit, "_leases", leases[n % 4])
        refused += not rate_limit_take(client_id=client_id, rate_per_s=100, burst=100).allowed
        time.sleep(max(0.0, started + (n + 1) / 100 - time.monotonic()))

    assert refused == 0


def test_a_lease_never_holds_more_than_the_bucket_gave(client_id: int) -> None:
    assert lease_size(rate_per_s=100, burst=200) == 10
    redis_client().hset(f"charge:rate:{client_id}", mapping={"tokens": 2, "at": f"{time.time():.6f}"})

    assert rate_limit_take(client_id=client_id, rate_per_s=100, burst=200).allowed

    assert bucket_tokens(client_id) < 1  # both whole tokens granted, none invented
    assert ratelimit._leases[client_id].tokens == 1  # one spent on this request, one left
