"""The gateway's database work: prepared statements on PostgreSQL, the same decisions; the connected mark."""

from __future__ import annotations

import copy
import os
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from apps.access.policy import Status
from apps.access.services import grant_create, station_create, token_create
from apps.charging.models import ChargingRequest
from apps.ocpp.gateway import statements_prepared
from apps.ocpp.models import ChargePointState
from apps.ocpp.services import (
    boot_record,
    connection_closed,
    connection_opened,
    token_authorize,
    tokens_authorize,
)
from tests.stack import manage_py

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
    connection_closed(station_id=STATION, connected_at=first, at=first + timedelta(minutes=1))
    again = timezone.now()
    connection_opened(station_id=STATION, protocol="ocpp2.0.1", at=again)

    state = ChargePointState.objects.get(station_id=STATION)
    assert (state.protocol, state.connected_at) == ("ocpp2.0.1", again)
    assert (state.vendor, state.model, state.last_boot_at) == ("Acme", "AC-22", first)
    assert state.disconnected_at == first + timedelta(minutes=1)
    assert ChargePointState.objects.count() == 1


def test_the_close_of_a_replaced_connection_leaves_the_new_one_connected() -> None:
    # With several gateway processes a station may reconnect to another one before the first sees
    # its old socket close: that late close must not mark the station disconnected.
    station_create(station_id=STATION)
    first = timezone.now() - timedelta(minutes=5)
    connection_opened(station_id=STATION, protocol="ocpp1.6", at=first)
    again = first + timedelta(seconds=30)
    connection_opened(station_id=STATION, protocol="ocpp1.6", at=again)
    connection_closed(station_id=STATION, connected_at=first, at=again + timedelta(seconds=10))

    state = ChargePointState.objects.get(station_id=STATION)
    assert (state.connected_at, state.disconnected_at) == (again, None)

    connection_closed(station_id=STATION, connected_at=again, at=again + timedelta(seconds=20))
    state.refresh_from_db()
    assert (state.connected_at, state.disconnected_at) == (None, again + timedelta(seconds=20))


OTHER_STATION = "6e2c7a4d-9b63-4d2f-8a1b-3c8e5f7d9b21"
# A script for a SQLite database: the same batch, its rows read back through the ORM.
_SQLITE_BATCH = """
from django.core.management import call_command
call_command("migrate", verbosity=0)
from apps.access.services import grant_create, station_create, token_create
from apps.charging.models import ChargingRequest
from apps.ocpp.services import tokens_authorize
grant_create(token=token_create(value="04A1B2C3"), station=station_create(station_id="{station}"))
for asks in ([("{station}", "04A1B2C3")], [("{station}", "04A1B2C3"), ("{other}", "04A1B2C3")]):
    for answer in tokens_authorize(asks=asks):
        row = ChargingRequest.objects.get(request_id=answer.request_id)
        ok = row.decided_at == row.requested_at and row.deadline > row.requested_at
        print(row.station_id, row.status, row.reason, row.source, repr(row.callback_url), row.client_id, ok)
"""


def _batch_rows_as_read_back() -> list[str]:
    lines = []
    for asks in ([(STATION, RFID_UID)], [(STATION, RFID_UID), (OTHER_STATION, RFID_UID)]):
        for answer in tokens_authorize(asks=asks):
            row = ChargingRequest.objects.get(request_id=answer.request_id)
            ok = row.decided_at == row.requested_at and row.deadline > row.requested_at
            fields = (row.station_id, row.status, row.reason, row.source, repr(row.callback_url))
            lines.append(" ".join([*fields, str(row.client_id), str(ok)]))
    return lines


EXPECTED_BATCH_ROWS = [
    f"{STATION} allowed granted ocpp '' None True",
    f"{STATION} allowed granted ocpp '' None True",
    f"{OTHER_STATION} not_allowed no_grant ocpp '' None True",
]


def test_a_batch_of_decisions_is_stored_as_the_orm_reads_it_on_postgresql() -> None:
    grant_create(token=token_create(value=RFID_UID), station=station_create(station_id=STATION))

    assert _batch_rows_as_read_back() == EXPECTED_BATCH_ROWS


def test_a_batch_of_decisions_is_stored_as_the_orm_reads_it_on_sqlite(tmp_path: Path) -> None:
    # The rows are written from plain values; SQLite needs them prepared by their fields.
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(CHARGE_LOCAL_DIR=str(tmp_path), SECRET_KEY="batch", PYTHONPATH=str(Path(sys.path[0])))
    script = _SQLITE_BATCH.format(station=STATION, other=OTHER_STATION)

    result = manage_py("shell", "-c", script, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-3:] == EXPECTED_BATCH_ROWS
