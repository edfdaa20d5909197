"""Real processes for the integration layer: Celery workers and the bridge, as operators run them."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.stack import REPO, ManagedProcess, wait_until

pytestmark = pytest.mark.integration

CELERY = str(Path(sys.executable).with_name("celery"))


def worker_process(
    env: dict[str, str], log_dir: Path, *, queues: str = "authorize,callbacks"
) -> ManagedProcess:
    argv = [CELERY, "-A", "workers", "worker", "-Q", queues, "--concurrency", "2", "--loglevel", "INFO"]
    argv += ["--hostname", f"test-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "--without-gossip"]
    return ManagedProcess("worker", argv, log_dir / f"worker-{uuid.uuid4().hex[:6]}.log", env=env)


def worker_wait_ready(process: ManagedProcess, redis_url: str, *, timeout: float = 60) -> None:
    """A worker is ready when it has run a task we sent: the ops.ping round trip."""
    from workers import app

    nonce = uuid.uuid4().hex
    app.send_task("ops.ping", kwargs={"nonce": nonce})
    client = redis.Redis.from_url(redis_url)

    def ran() -> bool:
        process.ensure_running()
        return bool(client.exists(f"charge:ping:{nonce}"))

    wait_until(ran, timeout=timeout, what="celery worker")


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], ManagedProcess]]:
    """Start real `celery worker` processes; every one is stopped when the test ends."""
    started: list[ManagedProcess] = []

    def start(env: dict[str, str]) -> ManagedProcess:
        process = worker_process(env, tmp_path).start()
        started.append(process)
        worker_wait_ready(process, env["REDIS_URL"])
        return process

    yield start
    for process in started:
        process.stop()


__all__ = ["REPO"]
