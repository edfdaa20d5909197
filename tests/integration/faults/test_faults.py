"""Kill or restart each part of the stack under load; count that nothing accepted was lost.

After each fault: every request that got 202 has exactly one decision row, that row is decided, its
delivery has at least one attempt, and its callback arrived (or, for failing receivers, is scheduled
for retry); requests answered 503 left no row. Duplicated callbacks (allowed: delivery is at least
once) and recovery times go to the fault report ($CHARGE_LOCAL_DIR/faults-report.jsonl).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest
from django.db import connection

from apps.callbacks.models import CallbackDelivery
from apps.charging.models import ChargingRequest
from harness.processes import wait_until
from tests.conftest import Endpoint
from tests.integration.faults.conftest import STATION, TOKEN, FaultStack, Load, new_id
from tests.receiver import CallbackReceiver, Reply

SETTLE_S = 120


def _rows(ids: list[str]) -> dict[str, str]:
    with contextlib.suppress(Exception):
        rows = ChargingRequest.objects.filter(request_id__in=ids).values_list("request_id", "status")
        return {str(request_id): status for request_id, status in rows}
    connection.close()  # a connection from before a database restart
    return {}


SETTLE_FIGURES = frozenset(
    {
        "sent",
        "accepted",
        "answered_503",
        "no_answer",
        "other_answers",
        "decisions",
        "duplicate_callbacks",
        "settled_after_load_s",
        "slowest_decision_s",
    }
)


def _settle(stack: FaultStack, load: Load, *, callbacks_arrive: bool = True) -> None:
    """Wait for the pipeline to finish every accepted request, then count and report."""
    load_done = time.monotonic()
    accepted = [s.request_id for s in load.accepted if s.request_id]
    assert accepted, "nothing was accepted at all"

    def all_decided() -> bool:
        rows = _rows(accepted)
        return len(rows) == len(accepted) and "pending" not in {str(v) for v in rows.values()}

    wait_until(all_decided, timeout=SETTLE_S, what="every accepted request to be decided", interval=0.5)
    wait_until(
        lambda: (
            CallbackDelivery.objects.filter(request_id__in=accepted, attempts__gte=1).count() == len(accepted)
        ),
        timeout=SETTLE_S,
        what="a delivery attempt for every decision",
        interval=0.5,
    )
    receiver = stack.pipeline.receiver
    if callbacks_arrive:
        wait_until(
            lambda: {r.headers.get("x-charge-request-id") for r in receiver.received} >= set(accepted),
            timeout=SETTLE_S,
            what="every callback to arrive",
            interval=0.5,
        )
    settled_s = time.monotonic() - load_done

    # Exactly one decision row per accepted request, and none for the requests answered 503.
    assert ChargingRequest.objects.filter(request_id__in=accepted).count() == len(accepted)
    refused_urls = [f"{stack.pipeline.receiver.url('')}/cb/{s.number}" for s in load.sent if s.status == 503]
    assert not ChargingRequest.objects.filter(callback_url__in=refused_urls).exists()
    assert CallbackDelivery.objects.filter(request_id__in=accepted).count() == len(accepted)

    latencies = [
        (decided - requested).total_seconds()
        for requested, decided in ChargingRequest.objects.filter(request_id__in=accepted).values_list(
            "requested_at", "decided_at"
        )
        if decided is not None
    ]
    per_request = collections.Counter(r.headers.get("x-charge-request-id") for r in receiver.received)
    statuses = collections.Counter(
        ChargingRequest.objects.filter(request_id__in=accepted).values_list("status", flat=True)
    )
    stack.report.update(
        sent=len(load.sent),
        accepted=len(accepted),
        answered_503=sum(1 for s in load.sent if s.status == 503),
        no_answer=sum(1 for s in load.sent if s.status is None),
        other_answers=sorted(
            {s.status for s in load.sent if s.status is not None and s.status not in (202, 503)}
        ),
        decisions=dict(statuses),
        duplicate_callbacks=sum(count - 1 for count in per_request.values() if count > 1),
        settled_after_load_s=round(settled_s, 1),
        slowest_decision_s=round(max(latencies, default=0.0), 2),
    )


def _first_accept_after(load: Load, moment: float) -> float | None:
    later = [s.at for s in load.accepted if s.at > moment]
    return round(min(later) - moment, 2) if later else None


def test_bridge_killed_and_restarted(fault_stack: FaultStack) -> None:
    load = fault_stack.load().start()
    load.wait_until_sent(0.3)

    fault_stack.supervisor.current("bridge").kill()  # the supervisor starts a new one
    load.join()

    _settle(fault_stack, load)
    assert fault_stack.report["no_answer"] == 0
    assert [r["process"] for r in fault_stack.report["restarted"]] == ["bridge"]
    # The restarted bridge (same static member id) takes the partitions back at once, not after the
    # dead one's session: every request is decided, none runs out its 10 s deadline as `unknown`.
    assert fault_stack.report["decisions"].get("unknown", 0) == 0, fault_stack.report


def test_poison_messages_under_load(fault_stack: FaultStack) -> None:
    """Another producer writes what the database cannot store into the flowing topic, on the same
    station key as the load (one partition): the requests behind it are decided in time all the same."""
    from django.conf import settings
    from kafka import KafkaProducer

    load = fault_stack.load().start()
    load.wait_until_sent(0.3)
    producer = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, acks="all")
    for n in range(5):
        poison = {
            "v": 1,
            "request_id": new_id(),
            "client_id": None,
            "station_id": STATION,
            "driver_token": TOKEN,
            "callback_url": f"http://127.0.0.1:9/p{n}\ud800",
            "received_at": "2026-01-01T00:00:00+00:00",
            "deadline": "2026-01-01T00:00:10+00:00",
        }
        producer.send(fault_stack.pipeline.topic, value=json.dumps(poison).encode(), key=STATION.encode())
    producer.flush(timeout=10)
    producer.close()
    load.join()

    _settle(fault_stack, load)
    assert fault_stack.report["decisions"].get("unknown", 0) == 0, fault_stack.report


# The callbacks worker is on every request's path; the authorize worker on the fallback's (the bridge
# decides, CHARGE_BRIDGE_DECIDES), and the requeue sweep's.
@pytest.mark.parametrize("worker", ["callbacks worker", "authorize worker"])
def test_worker_killed_and_restarted(fault_stack: FaultStack, worker: str) -> None:
    load = fault_stack.load().start()
    load.wait_until_sent(0.3)

    fault_stack.supervisor.current(worker).kill()  # the supervisor starts a new one
    load.join()

    _settle(fault_stack, load)
    # Everything may be settled before the new worker is ready (the supervisor lists it then).
    wait_until(
        lambda: worker in [r["process"] for r in fault_stack.report.get("restarted", [])],
        timeout=60,
        what=f"the {worker} to be back",
    )


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def test_an_api_process_killed(fault_stack: FaultStack) -> None:
    load = fault_stack.load().start()
    load.wait_until_sent(0.3)
    workers = _children(fault_stack.api.pid)
    [victim, *_] = workers

    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    load.join()

    _settle(fault_stack, load)
    fault_stack.report["first_accept_after_kill_s"] = _first_accept_after(load, killed_at)
    assert fault_stack.api.alive()

    # The server starts a worker in the killed one's place (granian --respawn-failed-workers).
    def respawned() -> bool:
        now = _children(fault_stack.api.pid)
        return victim not in now and len(now) == len(workers)

    wait_until(respawned, timeout=30, what="a new api worker in place of the killed one", interval=0.2)


def test_redis_restarted(fault_stack: FaultStack, redis_endpoint: Endpoint) -> None:
    redis = redis_endpoint.owned()
    load = fault_stack.load().start()
    load.wait_until_sent(0.3)

    started = time.monotonic()
    redis.restart()
    fault_stack.report["redis_down_s"] = round(time.monotonic() - started, 1)
    load.join()

    _settle(fault_stack, load)


@pytest.mark.own_kafka
def test_kafka_restarted(fault_stack: FaultStack) -> None:
    kafka = fault_stack.own_broker
    assert kafka is not None
    load = fault_stack.load().start()
    load.wait_until_sent(0.3)

    stopped_at = time.monotonic()
    kafka.restart()
    fault_stack.report["kafka_down_s"] = round(time.monotonic() - stopped_at, 1)
    load.join()

    _settle(fault_stack, load)
    fault_stack.report["first_accept_after_restart_began_s"] = _first_accept_after(load, stopped_at)
    # While the broker was away the api said so (503), quickly, instead of hanging or failing.
    assert all(s.status in (202, 503) for s in load.sent)


def test_postgresql_restarted(fault_stack: FaultStack, postgres_endpoint: Endpoint) -> None:
    postgres = postgres_endpoint.owned()
    load = fault_stack.load().start()
    load.wait_until_sent(0.3)

    started = time.monotonic()
    postgres.restart()
    connection.close()
    fault_stack.report["postgres_down_s"] = round(time.monotonic() - started, 1)
    load.join()

    _settle(fault_stack, load)


def _bad_receiver_test(fault_stack: FaultStack, reply: Reply, *, count: int) -> None:
    bad = CallbackReceiver(lambda got: reply).start()
    try:
        load = fault_stack.load(callback_base=bad.url("")).start()
        load.count = count
        load.join()
        fault_stack.pipeline.receiver = bad  # so the report counts what the bad receiver got
        _settle(fault_stack, load, callbacks_arrive=False)
        accepted = [s.request_id for s in load.accepted]
        # Every delivery is waiting for its next try, none was dropped.
        retrying = CallbackDelivery.objects.filter(request_id__in=accepted, status="retrying")
        assert retrying.count() == len(accepted)
        assert not retrying.filter(next_attempt_at=None).exists()
    finally:
        bad.stop()


BAD_RECEIVERS = {
    "answering_500": (Reply(500), 200),
    "redirecting": (Reply(307, headers={"Location": "http://127.0.0.1:9/elsewhere"}), 200),
    # Each attempt waits out the 5 s timeout: 16 callback threads take three rounds (~15 s) for 48.
    "hanging": (Reply(200, hang_s=30), 48),
}


def test_failing_receivers(fault_stack: FaultStack) -> None:
    """One stack, three bad receivers in turn (they break nothing the next one needs)."""
    per_receiver: dict[str, dict[str, object]] = {}
    for name, (reply, count) in BAD_RECEIVERS.items():
        _bad_receiver_test(fault_stack, reply, count=min(count, fault_stack.report["requests"]))
        per_receiver[name] = {
            key: fault_stack.report.pop(key) for key in list(fault_stack.report) if key in SETTLE_FIGURES
        }
    fault_stack.report["receivers"] = per_receiver
