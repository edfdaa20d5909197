"""Retention of the decision log: old decisions go, with their callback deliveries and attempts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import QuerySet

from apps.callbacks.models import CallbackAttempt, CallbackDelivery
from apps.charging.models import ChargingRequest

_DURATION = re.compile(r"^\s*(\d+)\s*([wdhms])\s*$")
_UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}


def duration_parse(text: str) -> timedelta:
    """ "90d", "12w", "36h", "30m", "45s" -> timedelta. ValueError for anything else."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 90d, 12w, 36h, 30m or 45s")
    return timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])


@dataclass(frozen=True)
class PruneProgress:
    """One committed batch: what it deleted, and the totals so far."""

    requests: int
    deliveries: int
    attempts: int
    total_requests: int


def _old_decisions(before: datetime) -> QuerySet[ChargingRequest]:
    # Pending rows are never pruned: the overdue sweep decides them first.
    return ChargingRequest.objects.filter(requested_at__lt=before).exclude(
        status=ChargingRequest.DecisionStatus.PENDING
    )


def decisions_prune_count(*, before: datetime) -> int:
    """How many decisions a prune with this cutoff would delete."""
    return _old_decisions(before).count()


def decisions_prune(*, before: datetime, batch_size: int = 1000) -> Iterator[PruneProgress]:
    """Delete decided requests made before `before`, oldest first, one transaction per batch.

    Each batch takes its deliveries and attempts with it (ON DELETE CASCADE in the models); short
    transactions keep locks brief and let the api and workers write in between. Yields per batch.
    """
    total = 0
    while True:
        with transaction.atomic():
            ids = list(
                _old_decisions(before)
                .order_by("requested_at")
                .values_list("request_id", flat=True)[:batch_size]
            )
            if not ids:
                return
            attempts, _ = CallbackAttempt.objects.filter(delivery_id__in=ids).delete()
            deliveries, _ = CallbackDelivery.objects.filter(request_id__in=ids).delete()
            requests, _ = ChargingRequest.objects.filter(request_id__in=ids).delete()
        total += requests
        yield PruneProgress(requests=requests, deliveries=deliveries, attempts=attempts, total_requests=total)
