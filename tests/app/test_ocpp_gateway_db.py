"""The gateway's database work: prepared statements on PostgreSQL, the same decisions; the connected mark."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from apps.access.policy import Status
from apps.access.services import grant_create, station_create, token_create
from apps.ocpp.gateway import statements_prepared
from apps.ocpp.models import ChargePointState
from apps.ocpp.services import boot_record, connection_closed, connection_opened, token_authorize

STATION = "5d1b6f3c-8a52-4c1e-9f0a-2b7d4e6c8a10"
RFID_UID = "04A1B2C3"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def prepared() -> Iterator[None]:
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    before = copy.deepcopy(connection.settings_dict.get("OPTIONS", {}))
    statements_prepared()
    yield
    connection.settings_dict["OPTIONS"] = before


def _on_a_new_thread(work: Any) -> Any:
    # As the gateway's database threads do: a thread of its own, so a connection of its own.
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(work())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    return result[0]


def test_a_gateway_thread_prepares_the_authorize_statements_and_decides_as_before(prepared: None) -> None:
    grant_create(token=token_create(value=RFID_UID), station=station_create(station_id=STATION))

    def authorize_six_times() -> tuple[list[Status], int]:
        statuses = [token_authorize(station_id=STATION, id_token=RFID_UID).decision.status for _ in range(6)]
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            (count,) = cursor.fetchone()
        return statuses, count

    statuses, prepared_count = _on_a_new_thread(authorize_six_times)

    assert statuses == [Status.ALLOWED] * 6
    # The ACL read and the log's INSERT, each seen five times by then.
    assert prepared_count >= 2


def test_a_station_noted_connected_again_keeps_what_it_said_before() -> None:
    station_create(station_id=STATION)
    first = timezone.now() - timedelta(minutes=5)
    connection_opened(station_id=STATION, protocol="ocpp1.6", at=first)
    boot_record(
        station_id=STATION, vendor="Acme", model="AC-22", firmware_version="1.2", serial_number="S1", at=first
    )
    connection_closed(station_id=STATION, at=first + timedelta(minutes=1))
    again = timezone.now()
    connection_opened(station_id=STATION, protocol="ocpp2.0.1", at=again)

    state = ChargePointState.objects.get(station_id=STATION)
    assert (state.protocol, state.connected_at) == ("ocpp2.0.1", again)
    assert (state.vendor, state.model, state.last_boot_at) == ("Acme", "AC-22", first)
    assert state.disconnected_at == first + timedelta(minutes=1)
    assert ChargePointState.objects.count() == 1
