"""Callback retry schedule (DESIGN "Callbacks"): +5 s, +30 s, +2 min, ... +12 h with ±20 % jitter."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.callbacks.schedule import next_attempt_at

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

# DESIGN's schedule: the delay after the n-th failed attempt.
SCHEDULE = {
    1: timedelta(seconds=5),
    2: timedelta(seconds=30),
    3: timedelta(minutes=2),
    4: timedelta(minutes=10),
    5: timedelta(minutes=30),
    6: timedelta(hours=1),
    7: timedelta(hours=3),
    8: timedelta(hours=6),
    9: timedelta(hours=12),
}
DESIGN_DELAYS = [
    pytest.param(attempts, delay, id=f"after_attempt_{attempts}_retry_in_{int(delay.total_seconds())}s")
    for attempts, delay in SCHEDULE.items()
]


class FixedJitter(random.Random):
    """An rng whose uniform(a, b) always returns the low end, the high end, or the middle."""

    def __init__(self, where: str) -> None:
        super().__init__(0)
        self.where = where

    def uniform(self, a: float, b: float) -> float:
        return {"low": a, "high": b, "middle": (a + b) / 2}[self.where]


def delay_after(attempts_made: int, rng: random.Random) -> timedelta:
    when = next_attempt_at(attempts_made=attempts_made, now=NOW, rng=rng)
    assert when is not None
    return when - NOW


@pytest.mark.parametrize(("attempts_made", "nominal"), DESIGN_DELAYS)
def test_seeded_delay_is_within_20_percent_of_the_schedule(attempts_made: int, nominal: timedelta) -> None:
    delay = delay_after(attempts_made, random.Random(20250601 + attempts_made))

    assert nominal * 0.8 <= delay <= nominal * 1.2


@pytest.mark.parametrize(("attempts_made", "nominal"), DESIGN_DELAYS)
def test_delay_without_jitter_is_exactly_the_schedule(attempts_made: int, nominal: timedelta) -> None:
    assert delay_after(attempts_made, FixedJitter("middle")) == nominal


@pytest.mark.parametrize(("attempts_made", "nominal"), DESIGN_DELAYS)
def test_jitter_reaches_exactly_minus_and_plus_20_percent(attempts_made: int, nominal: timedelta) -> None:
    shortest = delay_after(attempts_made, FixedJitter("low"))
    longest = delay_after(attempts_made, FixedJitter("high"))

    assert shortest.total_seconds() == pytest.approx(nominal.total_seconds() * 0.8, abs=1e-3)
    assert longest.total_seconds() == pytest.approx(nominal.total_seconds() * 1.2, abs=1e-3)


def test_same_seed_gives_the_same_time() -> None:
    first = next_attempt_at(attempts_made=3, now=NOW, rng=random.Random(7))
    second = next_attempt_at(attempts_made=3, now=NOW, rng=random.Random(7))

    assert first is not None
    assert first == second


def test_default_rng_stays_within_the_jitter_bounds() -> None:
    when = next_attempt_at(attempts_made=1, now=NOW)

    assert when is not None
    assert timedelta(seconds=4) <= when - NOW <= timedelta(seconds=6)


@pytest.mark.parametrize(
    "attempts_made",
    [
        pytest.param(10, id="after_the_tenth_attempt_the_schedule_is_exhausted"),
        pytest.param(11, id="beyond_the_schedule"),
        pytest.param(0, id="no_attempt_made_yet"),
        pytest.param(-1, id="negative_count"),
    ],
)
def test_no_retry_outside_the_schedule(attempts_made: int) -> None:
    assert next_attempt_at(attempts_made=attempts_made, now=NOW, rng=random.Random(1)) is None


def test_retries_are_ordered_and_the_last_is_12_hours_after_the_ninth_failure() -> None:
    delays = [delay_after(attempts, FixedJitter("middle")) for attempts in range(1, 10)]

    assert delays == sorted(delays)
    assert delays[-1] == timedelta(hours=12)
    assert next_attempt_at(attempts_made=10, now=NOW, rng=FixedJitter("middle")) is None


@given(attempts_made=st.integers(min_value=1, max_value=9), seed=st.integers(min_value=0, max_value=2**32))
def test_any_seed_stays_within_the_jitter_bounds(attempts_made: int, seed: int) -> None:
    nominal = SCHEDULE[attempts_made]

    assert nominal * 0.8 <= delay_after(attempts_made, random.Random(seed)) <= nominal * 1.2
