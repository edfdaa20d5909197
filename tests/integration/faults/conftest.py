"""A whole stack under steady load for the fault tests: the api server, bridge, workers, beat, receivers.

Each test sends about FAULT_REQUESTS requests (300 by default in `make test`, 2,000 for the full run)
at FAULT_RATE requests/s (100) to the api over HTTP, breaks one part of the stack while they flow,
and then counts: every accepted request has exactly one decision and at least one delivery attempt.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from apps.access.services import acl_insert
from apps.charging.topics import topics_ensure
from harness.processes import Process, wait_until
from tests.integration.conftest import Pipeline
from tests.stack import Service, start_kafka

FAULT_REQUESTS = int(os.environ.get("FAULT_REQUESTS", "300"))
FAULT_RATE = float(os.environ.get("FAULT_RATE", "100"))
STATION = "5f0c6a0e-4b1e-4d55-9a7e-3c1f2b9d8e71"
TOKEN = "FAULT-TOKEN-0123456789"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "faults" in str(item.path):
            item.add_marker(pytest.mark.faults)


@dataclass
class Sent:
    number: int
    status: int | None  # None: no answer (connection refused or reset)
    request_id: str | None
    at: float


@dataclass
class Load:
    """An open-loop load of numbered requests; each carries its number in its callback path."""

    api_url: str
    api_key: str
    callback_base: str
    count: int = FAULT_REQUESTS
    rate: float = FAULT_RATE
    sent: list[Sent] = field(default_factory=list)
    started_at: float = 0.0
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _one(self, client: httpx.Client, number: int) -> None:
        body = {
            "station_id": STATION,
            "driver_token": TOKEN,
            "callback_url": f"{self.callback_base}/cb/{number}",
        }
        try:
            answer = client.post(f"{self.api_url}/v1/charging-requests", json=body, timeout=5)
            status: int | None = answer.status_code
            request_id = answer.json().get("request_id") if status == 202 else None
        except httpx.HTTPError:
            status, request_id = None, None
        with self._lock:
            self.sent.append(Sent(number, status, request_id, time.monotonic()))

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        with httpx.Client(headers=headers) as client, ThreadPoolExecutor(max_workers=8) as pool:
            self.started_at = time.monotonic()
            for number in range(self.count):
                # Open loop: request n leaves at n/rate s, however slow the answers are.
                delay = self.started_at + number / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self._one, client, number)

    def start(self) -> Load:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def wait_until_sent(self, fraction: float) -> None:
        wait_until(
            lambda: len(self.sent) >= self.count * fraction, timeout=120, what=f"{fraction:.0%} of the load"
        )

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join(timeout=self.count / self.rate + 120)
        wait_until(lambda: len(self.sent) == self.count, timeout=60, what="every request answered")

    @property
    def accepted(self) -> list[Sent]:
        return [s for s in self.sent if s.status == 202]

    @property
    def refused(self) -> list[Sent]:
        return [s for s in self.sent if s.status != 202]


class Supervisor:
    """Restarts a stack process that died, as a supervisor in production would (compose's restart policy).

    The tests kill processes with -9 and let this bring them back; processes that exit on their own
    (a Celery worker giving up on a broker connection, say) come back the same way, and the report
    lists every restart.
    """

    def __init__(self, report: dict[str, Any]) -> None:
        self.report = report
        self.processes: dict[str, tuple[Process, Callable[[], Process]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def add(self, name: str, process: Process, start: Callable[[], Process]) -> None:
        self.processes[name] = (process, start)

    def current(self, name: str) -> Process:
        return self.processes[name][0]

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            for name, (process, start) in list(self.processes.items()):
                if not process.alive():
                    died_at = time.monotonic()
                    self.processes[name] = (start(), start)
                    self.report.setdefault("restarted", []).append(
                        {"process": name, "back_after_s": round(time.monotonic() - died_at, 1)}
                    )

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)


@dataclass
class FaultStack:
    pipeline: Pipeline
    api: Process
    api_url: str
    supervisor: Supervisor
    report: dict[str, Any]
    own_broker: Service | None = None

    def load(self, *, callback_base: str | None = None) -> Load:
        return Load(self.api_url, self.pipeline.api_key, callback_base or self.pipeline.receiver.url(""))


@pytest.fixture
def fault_stack(
    pipeline: Pipeline, request: pytest.FixtureRequest, settings: Any, tmp_path: Path
) -> Iterator[FaultStack]:
    own_broker: Service | None = None
    if request.node.get_closest_marker("own_kafka"):
        # This test restarts the broker: a broker of its own keeps the session's one undisturbed.
        own_broker = start_kafka(tmp_path)
        settings.KAFKA_BOOTSTRAP_SERVERS = [own_broker.url]
        pipeline.env["KAFKA_BOOTSTRAP_SERVERS"] = own_broker.url
        topics_ensure(wait_s=30)
    acl_insert(station_id=STATION, driver_token=TOKEN)
    pipeline.api_client.rate_limit_per_s = 10_000
    pipeline.api_client.save()
    pipeline.env["CHARGE_REQUEUE_AFTER_S"] = "3"
    # As `make run` and compose do: the supervisor restarts the bridge under the same member id.
    pipeline.env["CHARGE_BRIDGE_INSTANCE_ID"] = f"fault-bridge-{new_id()[:8]}"
    # A delivery claimed by a worker that lost its database connection mid-attempt is due again after
    # the lease: 15 s instead of production's 60 (still three times the 5 s an attempt may last).
    pipeline.env["CHARGE_CALLBACK_CLAIM_LEASE_S"] = "15"
    api_url = pipeline.start_api()
    api = pipeline.processes[-1]
    report: dict[str, Any] = {"test": request.node.name, "requests": FAULT_REQUESTS, "rate": FAULT_RATE}
    supervisor = Supervisor(report)

    def authorize() -> Process:
        return pipeline.start_worker(queues="authorize", concurrency=2)

    def callbacks() -> Process:
        return pipeline.start_worker(queues="callbacks", pool="threads", concurrency=16)

    starters: dict[str, Callable[[], Process]] = {
        "bridge": pipeline.start_bridge,
        "authorize worker": authorize,
        "callbacks worker": callbacks,
        "beat": pipeline.start_beat,
    }
    # Start them side by side: each waits for its own readiness.
    with ThreadPoolExecutor(max_workers=len(starters)) as pool:
        started = {name: pool.submit(start) for name, start in starters.items()}
    for name, future in started.items():
        supervisor.add(name, future.result(), starters[name])
    supervisor.start()
    try:
        yield FaultStack(pipeline, api, api_url, supervisor, report, own_broker)
    finally:
        supervisor.stop()
        _report_write(report)
        if own_broker is not None:
            pipeline.stop_all()
            own_broker.process.stop()


def _report_write(report: dict[str, Any]) -> None:
    local = Path(os.environ.get("CHARGE_LOCAL_DIR", Path(__file__).resolve().parents[3] / ".local"))
    path = local / "faults-report.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(report) + "\n")
    sys.stderr.write(f"\nfault report: {json.dumps(report)}\n")


def new_id() -> str:
    return uuid.uuid4().hex
