"""After each phase: every accepted request decided once, delivered once, called back once."""

# Django and the apps are imported inside functions: only after the environment is prepared.
# ruff: noqa: PLC0415

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from benchmarks import loadgen
from benchmarks.config import say
from benchmarks.context import Arrivals, PhaseContext

# Ids per query: under SQLite's oldest default limit of 999 parameters per statement.
DB_CHECK_CHUNK = 900


def accepted_ids(samples: Sequence[loadgen.Sample]) -> dict[str, loadgen.Sample]:
    out: dict[str, loadgen.Sample] = {}
    for sample in samples:
        if sample.status == 202:
            out[json.loads(sample.body)["request_id"]] = sample
    return out


def db_check(request_ids: Sequence[str], *, expect_delivery: bool) -> dict[str, Any]:
    """What the database (PostgreSQL or SQLite) holds for these requests: decisions, deliveries,
    attempts. Through the ORM, in chunks within either database's limit on query parameters."""
    from django.db.models import Count

    from apps.callbacks.models import CallbackAttempt
    from apps.charging.models import ChargingRequest

    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    delivery_status: Counter[str] = Counter()
    rows = attempts = attempt_rows = 0
    ids = list(request_ids)
    for start in range(0, len(ids), DB_CHECK_CHUNK):
        chunk = ids[start : start + DB_CHECK_CHUNK]
        groups = (
            ChargingRequest.objects.filter(request_id__in=chunk)
            .values_list("status", "reason", "delivery__status", "delivery__attempts")
            .annotate(rows=Count("request_id"))
            .order_by()
        )
        for status, reason, d_status, d_attempts, count in groups:
            rows += count
            statuses[status] += count
            reasons[f"{status}/{reason}"] += count
            delivery_status[d_status or "none"] += count
            attempts += (d_attempts or 0) * count
        attempt_rows += CallbackAttempt.objects.filter(delivery_id__in=chunk).count()
    delivered = delivery_status.get("delivered", 0)
    return {
        "requests": len(ids),
        "decision_rows": rows,
        "pending": statuses.get("pending", 0),
        "statuses": dict(statuses),
        "reasons": dict(reasons),
        "deliveries": sum(v for k, v in delivery_status.items() if k != "none"),
        "delivery_status": dict(delivery_status),
        "delivery_attempts": attempts,
        "attempt_rows": attempt_rows,
        "expect_delivery": expect_delivery,
        "delivered": delivered,
    }


def drain_and_check(
    ctx: PhaseContext,
    label: str,
    accepted: dict[str, loadgen.Sample],
    *,
    sent_end: float,
    exactly_once: bool = False,
) -> dict[str, Any]:
    """Wait until every accepted request's callback arrived, then check the database.

    Callbacks are at least once (DESIGN): a second arrival is counted, and only fails the check
    where `exactly_once` asks for it (a synchronous decision's callback, sent once on commit).

    Waiting stops early when no callback arrived for drain_stall_s, or the run's time is nearly up.
    """
    wanted = set(accepted)
    started = time.monotonic()
    last_say = 0.0
    last_progress, last_missing = started, len(wanted)
    while True:
        ctx.arrivals.refresh()
        missing = len(wanted - ctx.arrivals.first.keys())
        now = time.monotonic()
        if missing < last_missing:
            last_progress, last_missing = now, missing
        if missing == 0 or now - last_progress > ctx.scale.drain_stall_s or ctx.time_left() < 20:
            break
        if now - last_say >= 2:
            say(f"{ctx.elapsed()} {label}: draining, {len(wanted) - missing}/{len(wanted)} callbacks in")
            last_say = now
        time.sleep(0.25)
    drained_at = time.monotonic()
    # The delivery row is marked delivered just after the receiver answered: give it a moment.
    for _ in range(40):
        db = db_check(list(wanted), expect_delivery=True)
        if db["pending"] == 0 and db["delivered"] == db["requests"]:
            break
        time.sleep(0.25)
    stats = ctx.arrivals.stats
    missing = len(wanted - ctx.arrivals.first.keys())
    duplicated = len(wanted & ctx.arrivals.duplicated())
    checks = {
        "every_request_has_one_decision": db["decision_rows"] == len(wanted) and db["pending"] == 0,
        "every_request_has_one_delivery": db["deliveries"] == len(wanted),
        "every_delivery_delivered": db["delivered"] == len(wanted),
        "every_callback_arrived": missing == 0,
        "signatures_valid": stats.get("bad_signature", 0) == 0,
    }
    if exactly_once:
        checks["every_callback_arrived_once"] = duplicated == 0
    result: dict[str, Any] = {
        "passed": all(checks.values()),
        "checks": checks,
        "db": db,
        "receiver_missing": missing,
        "callbacks_arrived_twice": duplicated,
        "receiver_totals": {k: stats.get(k) for k in ("posts", "unique", "duplicates", "bad_signature")},
        "drain_s": round(drained_at - sent_end, 2),
        "waited_s": round(drained_at - started, 2),
    }
    verdict = "passed" if result["passed"] else f"FAILED {[k for k, v in checks.items() if not v]}"
    say(
        f"{ctx.elapsed()} {label}: check {verdict}: {len(wanted)} accepted, {db['decision_rows']} "
        f"decided {db['statuses']}, {db['delivered']} delivered, {missing} callbacks missing, "
        f"drain {result['drain_s']} s"
    )
    return result


def e2e_latencies(accepted: dict[str, loadgen.Sample], arrivals: Arrivals) -> list[float]:
    return [arrivals.first[rid] - s.done for rid, s in accepted.items() if rid in arrivals.first]


def status_counts(samples: Sequence[loadgen.Sample]) -> dict[str, int]:
    counts = Counter(
        "dropped" if s.status == -1 else "no_answer" if s.status == 0 else str(s.status) for s in samples
    )
    return dict(sorted(counts.items()))
