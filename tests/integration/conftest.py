"""Real processes for the integration layer: the bridge and Celery workers, as operators run them.

Each test gets its own topic, dead-letter topic and consumer group on the session broker, so no
test reads another's messages, and the bridge and workers it starts are stopped when it ends.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from django.test import Client

from apps.charging.topics import topics_ensure
from apps.clients.models import ApiClient
from apps.clients.services import ALL_SCOPES, api_client_get_or_create, api_key_create
from harness.processes import Process, free_port, wait_until
from tests.receiver import CallbackReceiver
from tests.stack import api_server_process

PYTHON = sys.executable
CELERY = str(Path(sys.executable).with_name("celery"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


def worker_wait_ready(
    process: Process, redis_url: str, *, queue: str = "authorize", timeout: float = 60
) -> None:
    """A worker is ready when it has run a task we sent to its queue: the ops.ping round trip."""
    from workers import app

    nonce = uuid.uuid4().hex
    app.send_task("ops.ping", kwargs={"nonce": nonce}, queue=queue)
    client = redis.Redis.from_url(redis_url)

    def ran() -> bool:
        process.ensure_running()
        return bool(client.exists(f"charge:ping:{nonce}"))

    wait_until(ran, timeout=timeout, what="celery worker")


def bridge_wait_ready(process: Process, *, timeout: float = 60) -> None:
    def assigned() -> bool:
        process.ensure_running()
        # Assigned at least one partition: an empty assignment means the topic was not seen yet.
        return '"partitions": ["' in process.log_tail(400)

    wait_until(assigned, timeout=timeout, what="bridge")


@dataclass
class Pipeline:
    """The real stack of one test: its env, topic, API client and key, processes and receiver."""

    env: dict[str, str]
    log_dir: Path
    api_client: ApiClient
    api_key: str
    receiver: CallbackReceiver
    processes: list[Process] = field(default_factory=list)

    @property
    def topic(self) -> str:
        return self.env["CHARGE_TOPIC"]

    @property
    def auth(self) -> dict[str, Any]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.api_key}"}

    def start_worker(
        self, *, queues: str = "authorize,callbacks", pool: str = "prefork", concurrency: int = 2
    ) -> Process:
        argv = [CELERY, "-A", "workers", "worker", "-Q", queues, "--pool", pool]
        argv += ["--concurrency", str(concurrency), "--loglevel", "INFO"]
        argv += ["--hostname", f"test-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "--without-gossip"]
        log = self.log_dir / f"worker-{queues.split(',', maxsplit=1)[0]}-{uuid.uuid4().hex[:6]}.log"
        process = Process("worker", argv, log, env=self.env)
        self.processes.append(process.start())
        worker_wait_ready(process, self.env["REDIS_URL"], queue=queues.split(",", maxsplit=1)[0])
        return process

    def start_beat(self) -> Process:
        argv = [
            CELERY,
            "-A",
            "workers",
            "beat",
            "--schedule",
            str(self.log_dir / "beat-schedule"),
            "-l",
            "INFO",
        ]
        process = Process("beat", argv, self.log_dir / "beat.log", env=self.env)
        self.processes.append(process.start())
        return process

    def start_bridge(self, **env: str) -> Process:
        argv = [PYTHON, "manage.py", "run_bridge"]
        process = Process(
            "bridge", argv, self.log_dir / f"bridge-{uuid.uuid4().hex[:6]}.log", env={**self.env, **env}
        )
        self.processes.append(process.start())
        bridge_wait_ready(process)
        return process

    def start_api(self, *, workers: int = 2, threads: int = 4, **env: str) -> str:
        """The api's server serving project.wsgi on a free port, as `make run` does; returns the /api
        base URL."""
        port = free_port()
        log_path = self.log_dir / f"api-{uuid.uuid4().hex[:6]}.log"
        process = api_server_process(
            "api", log_path, env={**self.env, **env}, port=port, workers=workers, threads=threads
        )
        self.processes.append(process.start())
        api_url = f"http://127.0.0.1:{port}/api"

        def healthy() -> bool:
            process.ensure_running()
            return httpx.get(f"{api_url}/healthz", timeout=1).status_code == 200

        wait_until(healthy, timeout=60, what="api")
        return api_url

    def post_json(self, client: Client, path: str, body: dict[str, Any], **headers: Any) -> Any:
        return client.post(path, body, content_type="application/json", **self.auth, **headers)

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()


@pytest.fixture
def pipeline(stack_env: dict[str, str], settings: Any, tmp_path: Path) -> Iterator[Pipeline]:
    suffix = uuid.uuid4().hex[:8]
    env = dict(stack_env)
    env.update(
        CHARGE_TOPIC=f"charging_requests-{suffix}",
        CHARGE_DLQ_TOPIC=f"charging_requests-{suffix}.dlq",
        CHARGE_BRIDGE_GROUP=f"charge-bridge-{suffix}",
        CHARGE_CALLBACK_ALLOW_PRIVATE="1",
        LOG_LEVEL="INFO",
    )
    settings.CHARGE_TOPIC = env["CHARGE_TOPIC"]
    settings.CHARGE_DLQ_TOPIC = env["CHARGE_DLQ_TOPIC"]
    settings.CHARGE_CALLBACK_ALLOW_PRIVATE = True
    # In-process (the command itself is tested in test_real_services): a subprocess costs seconds.
    topics_ensure(wait_s=30)

    api_client = api_client_get_or_create(name=f"pipeline-{suffix}")
    _, api_key = api_key_create(client=api_client, scopes=ALL_SCOPES)
    receiver = CallbackReceiver().start()
    stack = Pipeline(env=env, log_dir=tmp_path, api_client=api_client, api_key=api_key, receiver=receiver)
    try:
        yield stack
    finally:
        stack.stop_all()
        receiver.stop()
        # pytest shows a test's captured output only when it fails: the process logs then.
        for process in stack.processes:
            sys.stderr.write(f"\n--- {process.name} log ---\n{process.log_tail(60)}\n")


@pytest.fixture
def start_worker(pipeline: Pipeline) -> Callable[[], Process]:
    return pipeline.start_worker
