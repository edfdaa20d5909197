"""manage.py prune_decisions: old decisions go in batches, with their deliveries and attempts."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.callbacks.models import CallbackAttempt, CallbackDelivery
from apps.charging.models import ChargingRequest
from tests.app.callers import LogRow


def _with_delivery(request: ChargingRequest, attempts: int) -> ChargingRequest:
    delivery = CallbackDelivery.objects.create(request=request, url=request.callback_url, body="{}")
    for number in range(1, attempts + 1):
        CallbackAttempt.objects.create(
            delivery=delivery, number=number, started_at=request.requested_at, duration_ms=5, http_status=500
        )
    return request


@pytest.fixture
def rows(log_row: LogRow) -> dict[str, list[ChargingRequest]]:
    now = timezone.now()
    old = [log_row(client=None, requested_at=now - timedelta(days=100 + i)) for i in range(5)]
    recent = [log_row(client=None, requested_at=now - timedelta(days=10 + i)) for i in range(2)]
    stuck = log_row(
        client=None,
        requested_at=now - timedelta(days=120),
        status=ChargingRequest.DecisionStatus.PENDING,
        reason="",
        decided_at=None,
    )
    ChargingRequest.objects.bulk_create([*old, *recent, stuck])
    for request in old:
        _with_delivery(request, attempts=2)
    _with_delivery(recent[0], attempts=1)
    return {"old": old, "recent": recent, "stuck": [stuck]}


def test_old_decisions_go_with_their_deliveries_and_attempts(rows: dict[str, list[ChargingRequest]]) -> None:
    out = io.StringIO()

    call_command("prune_decisions", "--older-than", "90d", "--batch-size", "2", stdout=out)

    kept = set(ChargingRequest.objects.values_list("request_id", flat=True))
    assert kept == {r.request_id for r in rows["recent"] + rows["stuck"]}
    assert list(CallbackDelivery.objects.values_list("request_id", flat=True)) == [
        rows["recent"][0].request_id
    ]
    assert CallbackAttempt.objects.count() == 1
    lines = out.getvalue().splitlines()
    # Three batches of at most two, each reported as it commits, then the total.
    assert [line.strip() for line in lines[1:4]] == [
        "2 decisions, 2 deliveries, 4 attempts deleted (2 decisions so far)",
        "2 decisions, 2 deliveries, 4 attempts deleted (4 decisions so far)",
        "1 decisions, 1 deliveries, 2 attempts deleted (5 decisions so far)",
    ]
    assert lines[-1] == "deleted 5 decisions"


def test_a_dry_run_counts_and_deletes_nothing(rows: dict[str, list[ChargingRequest]]) -> None:
    out = io.StringIO()

    call_command("prune_decisions", "--older-than", "12w", "--dry-run", stdout=out)

    assert out.getvalue().startswith("would delete 5 decisions")
    assert ChargingRequest.objects.count() == 8


@pytest.mark.parametrize("age", ["90", "ninety days", "-5d", "3y"])
def test_an_unreadable_age_is_refused(age: str, db: None) -> None:
    with pytest.raises(CommandError, match="not a duration"):
        call_command("prune_decisions", f"--older-than={age}")
