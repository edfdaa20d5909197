"""Session fixtures for the real services.

Kafka, Redis and PostgreSQL start on free ports under a temporary folder the first time a test asks
for them, and stop when the session ends, whether tests failed or not. Where KAFKA_BOOTSTRAP_SERVERS,
REDIS_URL or DATABASE_URL are set in the environment, those running services are used instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.stack import Service, start_kafka, start_postgres, start_redis


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # SIGTERM (a CI time limit, a kill) and SIGINT interrupt the run like Ctrl-C does, so the
    # fixtures' teardown still stops every service and process they started.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)


@dataclass
class Endpoint:
    """Where a service answers; `service` is None when it was given, not started, by us."""

    url: str
    service: Service | None

    def owned(self) -> Service:
        if self.service is None:
            pytest.skip("this test restarts the service, so it needs one started by the fixtures")
        return self.service


def _endpoint(env_var: str, start: Any, root: Path) -> Iterator[Endpoint]:
    given = os.environ.get(env_var)
    if given:
        yield Endpoint(given, None)
        return
    service: Service = start(root)
    try:
        yield Endpoint(service.url, service)
    finally:
        service.process.stop()


@pytest.fixture(scope="session")
def stack_root() -> Iterator[Path]:
    """Data of the fixture services: short (Unix socket paths) and enterable by the postgres user."""
    root = Path(tempfile.mkdtemp(prefix="charge-stack-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_endpoint(stack_root: Path) -> Iterator[Endpoint]:
    yield from _endpoint("REDIS_URL", start_redis, stack_root)


@pytest.fixture(scope="session")
def kafka_endpoint(stack_root: Path) -> Iterator[Endpoint]:
    yield from _endpoint("KAFKA_BOOTSTRAP_SERVERS", start_kafka, stack_root)


@pytest.fixture(scope="session")
def postgres_endpoint(stack_root: Path) -> Iterator[Endpoint]:
    yield from _endpoint("DATABASE_URL", start_postgres, stack_root)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(postgres_endpoint: Endpoint) -> None:
    """App tests run on PostgreSQL: point the default connection at the fixture server."""
    import environ
    from django.conf import settings
    from django.db import connections

    if postgres_endpoint.service is None:
        return  # DATABASE_URL was given: settings already use it.
    default = settings.DATABASES["default"]
    # Update in place: Django's connection handler holds this very dict (and its defaults).
    parsed = environ.Env.db_url_config(postgres_endpoint.url)
    for key in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT"):
        default[key] = parsed.get(key, "")
    default.update({"CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False, "OPTIONS": {}})
    # The backend project/settings.py picks for PostgreSQL (its health check needs no round trip).
    if default["ENGINE"] == "django.db.backends.postgresql":
        default["ENGINE"] = "apps.core.postgresql"
    del connections["default"]


@pytest.fixture(scope="session")
def services(redis_endpoint: Endpoint, kafka_endpoint: Endpoint) -> Iterator[dict[str, str]]:
    """Point this process's settings and Celery app at the fixture Redis and Kafka."""
    from django.conf import settings

    from workers import app

    saved = {
        key: getattr(settings, key) for key in ("REDIS_URL", "CELERY_BROKER_URL", "KAFKA_BOOTSTRAP_SERVERS")
    }
    settings.REDIS_URL = redis_endpoint.url
    settings.CELERY_BROKER_URL = redis_endpoint.url
    settings.KAFKA_BOOTSTRAP_SERVERS = [kafka_endpoint.url]
    app.conf.update(broker_url=redis_endpoint.url)
    yield {"REDIS_URL": redis_endpoint.url, "KAFKA_BOOTSTRAP_SERVERS": kafka_endpoint.url}
    for key, value in saved.items():
        setattr(settings, key, value)


@pytest.fixture
def stack_env(services: dict[str, str], django_db_blocker: Any, transactional_db: None) -> dict[str, str]:
    """Environment for child processes (bridge, worker, manage.py) sharing this test's database."""
    from django.db import connection

    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = dict(os.environ)
    env.update(services)
    env["DATABASE_URL"] = url
    return env
