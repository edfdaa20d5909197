"""The bridge's batch stored with its decisions: one ACL read, one INSERT of decided rows, one of
their deliveries; rows stored before are left alone and handed back, so each request is decided
once. The broker is replaced (the `sent` fixture records the deliver tasks queued on commit)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.access.services import acl_insert
from apps.callbacks.models import CallbackDelivery
from apps.charging.messages import ChargeRequestV1
from apps.charging.models import ChargingRequest
from apps.charging.services import Consumed, charging_requests_store, charging_requests_store_decided
from apps.clients.services import api_client_get_or_create
from tests.app.callers import CALLBACK, OTHER_TOKEN, STATION, TOKEN, SentTasks

pytestmark = pytest.mark.django_db


def _consumed(token: str, *, age_s: float = 0.0, offset: int = 0) -> Consumed:
    received = timezone.now() - timedelta(seconds=age_s)
    message = ChargeRequestV1(
        request_id=uuid.uuid4(),
        client_id=None,
        station_id=STATION,
        driver_token=token,
        callback_url=CALLBACK,
        received_at=received,
        deadline=received + timedelta(seconds=10),
    )
    return Consumed(message=message, partition=0, offset=offset)


def _outcomes(batch: list[Consumed]) -> list[tuple[str, str]]:
    rows = {
        row.request_id: row
        for row in ChargingRequest.objects.filter(request_id__in=[c.message.request_id for c in batch])
    }
    return [(rows[c.message.request_id].status, rows[c.message.request_id].reason) for c in batch]


def test_a_mixed_batch_is_stored_decided_with_one_delivery_each(
    sent: SentTasks, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)
    batch = [
        _consumed(TOKEN, offset=0),
        _consumed(OTHER_TOKEN, offset=1),
        _consumed(TOKEN, age_s=11, offset=2),
    ]

    with django_capture_on_commit_callbacks(execute=True), CaptureQueriesContext(connection) as queries:
        stored_before = charging_requests_store_decided(consumed=batch)

    assert stored_before == []
    assert _outcomes(batch) == [
        ("allowed", "granted"),
        ("not_allowed", "unknown_token"),
        ("unknown", "timeout"),
    ]
    for row in ChargingRequest.objects.filter(request_id__in=[c.message.request_id for c in batch]):
        assert row.decided_at is not None
        assert row.kafka_partition == 0
    assert CallbackDelivery.objects.filter(request_id__in=[c.message.request_id for c in batch]).count() == 3
    assert sorted(sent.request_ids) == sorted(str(c.message.request_id) for c in batch)
    # Never written pending and read back: no UPDATE of the log, no read of it.
    table = ChargingRequest._meta.db_table
    assert not [q for q in queries if q["sql"].startswith(("UPDATE", "SELECT")) and table in q["sql"]]


def test_a_batch_read_twice_is_decided_once(
    sent: SentTasks, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)
    batch = [_consumed(TOKEN, offset=n) for n in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        charging_requests_store_decided(consumed=batch)
    first = {row.request_id: row.decided_at for row in ChargingRequest.objects.all()}

    with django_capture_on_commit_callbacks(execute=True):
        stored_before = charging_requests_store_decided(consumed=batch)

    assert sorted(stored_before) == sorted(c.message.request_id for c in batch)
    assert {row.request_id: row.decided_at for row in ChargingRequest.objects.all()} == first
    assert CallbackDelivery.objects.count() == 3
    assert len(sent.request_ids) == 3


def test_a_row_stored_pending_before_keeps_its_values_and_is_handed_back(sent: SentTasks) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)
    earlier = _consumed(TOKEN)
    charging_requests_store(consumed=[earlier])
    # The same request_id read again carrying other values (a hostile producer on the topic).
    again = Consumed(
        message=dataclasses.replace(earlier.message, driver_token=OTHER_TOKEN), partition=0, offset=9
    )

    assert charging_requests_store_decided(consumed=[again]) == [earlier.message.request_id]

    row = ChargingRequest.objects.get(request_id=earlier.message.request_id)
    assert (row.status, row.driver_token, row.kafka_offset) == ("pending", TOKEN, 0)
    assert not CallbackDelivery.objects.exists()


# --- PostgreSQL's one round trip (the bridge runs outside any transaction: so do these tests) ---

at_once = pytest.mark.django_db(transaction=True)


def _writes(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().startswith(("INSERT", "UPDATE", "DELETE"))]


@at_once
def test_on_postgresql_a_new_batch_is_one_read_of_the_acl_and_one_round_trip(sent: SentTasks) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the one-round-trip store is PostgreSQL's")
    acl_insert(station_id=STATION, driver_token=TOKEN)
    client = api_client_get_or_create(name="station-platform")
    batch = [
        _consumed(TOKEN, offset=0),
        _consumed(OTHER_TOKEN, offset=1),
        _consumed(TOKEN, age_s=11, offset=2),
    ]
    batch = [
        dataclasses.replace(c, message=dataclasses.replace(c.message, client_id=client.pk)) for c in batch
    ]

    with CaptureQueriesContext(connection) as queries:
        assert charging_requests_store_decided(consumed=batch) == []

    # The ACL's one read, then both INSERTs in one query string: no read of the clients, no BEGIN.
    assert [q["sql"].split(None, 1)[0] for q in queries] == ["WITH", "INSERT"], [
        q["sql"][:80] for q in queries
    ]
    [write] = _writes(queries)
    assert write.count("INSERT INTO") == 2
    assert _outcomes(batch) == [
        ("allowed", "granted"),
        ("not_allowed", "unknown_token"),
        ("unknown", "timeout"),
    ]
    deliveries = CallbackDelivery.objects.filter(request_id__in=[c.message.request_id for c in batch])
    assert [d.client_id for d in deliveries] == [client.pk] * 3
    assert sorted(sent.request_ids) == sorted(str(c.message.request_id) for c in batch)


@at_once
def test_a_batch_read_twice_is_decided_once_outside_a_transaction_too(sent: SentTasks) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)
    batch = [_consumed(TOKEN, offset=n) for n in range(3)]
    charging_requests_store_decided(consumed=batch[:2])
    first = {row.request_id: row.decided_at for row in ChargingRequest.objects.all()}

    # Two rows of this batch are stored already: nothing of the one round trip is written, and the
    # batch goes in row by row, the new one decided, the two others handed back untouched.
    stored_before = charging_requests_store_decided(consumed=batch)

    assert sorted(stored_before) == sorted(c.message.request_id for c in batch[:2])
    decided = {row.request_id: row.decided_at for row in ChargingRequest.objects.all()}
    assert {rid: decided[rid] for rid in first} == first
    assert len(decided) == 3
    assert CallbackDelivery.objects.count() == 3
    assert sorted(sent.request_ids) == sorted(str(c.message.request_id) for c in batch)


@at_once
def test_a_client_deleted_since_its_request_was_accepted_leaves_the_request_without_one(
    sent: SentTasks,
) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)
    gone = api_client_get_or_create(name="deleted-meanwhile")
    kept = api_client_get_or_create(name="still-here")
    batch = [_consumed(TOKEN, offset=0), _consumed(TOKEN, offset=1)]
    batch = [
        dataclasses.replace(c, message=dataclasses.replace(c.message, client_id=owner.pk))
        for c, owner in zip(batch, [gone, kept], strict=True)
    ]
    gone_pk = gone.pk
    gone.delete()

    assert charging_requests_store_decided(consumed=batch) == []

    rows = {row.request_id: row for row in ChargingRequest.objects.all()}
    assert [rows[c.message.request_id].client_id for c in batch] == [None, kept.pk]
    assert [rows[c.message.request_id].status for c in batch] == ["allowed", "allowed"]
    deliveries = {d.request_id: d.client_id for d in CallbackDelivery.objects.all()}
    assert [deliveries[c.message.request_id] for c in batch] == [None, kept.pk]
    assert gone_pk not in {row.client_id for row in rows.values()}
    assert len(sent.request_ids) == 2
