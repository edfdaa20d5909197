"""The PostgreSQL backend's health check: no round trip for an idle connection, and a connection the
server ended is found unusable (apps/core/postgresql/base.py), on a real PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def other() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A second connection to the same database, as an operator's psql would be."""
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as conn:
        yield conn


def _last_statement(other: psycopg.Connection[tuple[object, ...]], pid: int) -> str:
    row = other.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    assert row is not None
    return str(row[0])


def test_the_backend_is_ours() -> None:
    assert connection.settings_dict["ENGINE"] == "apps.core.postgresql"
    assert connection.vendor == "postgresql"


def test_an_idle_connection_is_usable_without_a_statement(
    other: psycopg.Connection[tuple[object, ...]],
) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), 'the last statement'")
        pid = cursor.fetchone()[0]
    assert connection.is_usable()
    assert _last_statement(other, pid) == "SELECT pg_backend_pid(), 'the last statement'"


def test_a_connection_the_server_ended_is_not_usable(other: psycopg.Connection[tuple[object, ...]]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    other.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 5
    while connection.is_usable():  # the server's goodbye takes a moment to arrive
        assert time.monotonic() < deadline, "a terminated connection still looks usable"
        time.sleep(0.02)
    # Django's check at the start of a request (CONN_HEALTH_CHECKS) closes it; the next query reconnects.
    connection.health_check_enabled = True  # type: ignore[attr-defined]
    connection.health_check_done = False  # type: ignore[attr-defined]
    connection.close_if_health_check_failed()
    assert connection.connection is None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


def test_inside_a_transaction_it_asks_the_server(other: psycopg.Connection[tuple[object, ...]]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
        assert connection.is_usable()
        assert _last_statement(other, pid) == "SELECT 1"
        cursor.execute("ROLLBACK")
