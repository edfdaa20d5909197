"""The retry schedule of callback deliveries (DESIGN "Callbacks")."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

# Delay before attempt n+1 after attempt n failed: +5 s, +30 s, +2 min, ... +12 h. Ten attempts in all.
RETRY_DELAYS_S = (5, 30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600)
JITTER = 0.2


def next_attempt_at(
    *, attempts_made: int, now: datetime, rng: random.Random | None = None
) -> datetime | None:
    """When to try again after `attempts_made` failed attempts; None once the schedule is exhausted."""
    if attempts_made < 1 or attempts_made > len(RETRY_DELAYS_S):
        return None
    delay = RETRY_DELAYS_S[attempts_made - 1]
    # ±20 % jitter spreads retries of many deliveries that failed together (a receiver outage).
    factor = 1 + (rng or random).uniform(-JITTER, JITTER)
    return now + timedelta(seconds=delay * factor)
