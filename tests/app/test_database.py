import os
import sqlite3
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from tests.stack import manage_py


@pytest.mark.django_db
def test_app_tests_run_on_postgresql_with_every_migration_applied() -> None:
    applied = MigrationRecorder(connection).applied_migrations()

    assert connection.vendor == "postgresql"
    assert ("clients", "0001_initial") in applied
    assert ("admin", "0001_initial") in applied


def test_sqlite_default_migrates_in_wal_mode(tmp_path: Path) -> None:
    """`make run` without DATABASE_URL: SQLite under CHARGE_LOCAL_DIR, in WAL mode."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(CHARGE_LOCAL_DIR=str(tmp_path), SECRET_KEY="smoke", PYTHONPATH=str(Path(sys.path[0])))

    result = manage_py("migrate", "--noinput", env=env)

    assert result.returncode == 0, result.stderr
    database = tmp_path / "charge.sqlite3"
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"clients_apiclient", "clients_apikey", "django_migrations"} <= tables


def test_settings_refuse_to_start_without_secret_key_when_debug_is_off() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}

    result = manage_py("check", env=env)

    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
