"""A synchronous decision with a callback is stored with its delivery in one statement on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from apps.access.services import acl_insert
from apps.callbacks.models import CallbackDelivery
from apps.charging.models import ChargingRequest
from apps.charging.services import charging_request_decide_sync
from tests.app.callers import CALLBACK, STATION, TOKEN, SentTasks

pytestmark = pytest.mark.usefixtures("transactional_db")


def decide(callback_url: str = CALLBACK) -> Any:
    return charging_request_decide_sync(
        client=None,
        station_id=STATION,
        driver_token=TOKEN,
        callback_url=callback_url,
        source=ChargingRequest.Source.SYNC,
    )


@pytest.fixture
def deliveries_refused(transactional_db: None) -> Iterator[None]:
    table = CallbackDelivery._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION deliveries_refused() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'deliveries are refused by the test'; END $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            f"CREATE TRIGGER deliveries_refused BEFORE INSERT ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION deliveries_refused()"
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER IF EXISTS deliveries_refused ON {table}")
            cursor.execute("DROP FUNCTION IF EXISTS deliveries_refused()")


def test_the_decision_and_its_delivery_are_one_statement_after_the_acl_read(sent: SentTasks) -> None:
    acl_insert(station_id=STATION, driver_token=TOKEN)

    with CaptureQueriesContext(connection) as queries:
        request, decision = decide()

    assert decision.status.value == "allowed"
    assert len(queries) == 2, [q["sql"][:80] for q in queries]  # the ACL read, then the WITH … INSERT
    delivery = CallbackDelivery.objects.get()
    assert delivery.request_id == request.request_id
    assert delivery.dispatched_at is not None
    assert delivery.created_at is not None
    assert ChargingRequest.objects.get().status == "allowed"


def test_without_a_callback_the_decision_is_one_insert(sent: SentTasks) -> None:
    with CaptureQueriesContext(connection) as queries:
        decide(callback_url="")

    assert len(queries) == 2
    assert CallbackDelivery.objects.count() == 0
    assert sent.request_ids == []


@pytest.mark.usefixtures("deliveries_refused")
def test_a_delivery_the_database_refuses_takes_its_decision_with_it(sent: SentTasks) -> None:
    with pytest.raises(DatabaseError):
        decide()

    assert ChargingRequest.objects.count() == 0
    assert sent.request_ids == []
