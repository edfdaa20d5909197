"""What our own code costs per call, in one process, without the servers around it.

`make bench` measures each process of the stack under load; this measures the code those processes
run, one call after another in a single thread, so the report can tell our share of a process's
CPU from the HTTP server's, Celery's and the contention of two busy cores:

  sync_authorize     POST /api/v1/authorize through Django's WSGI handler: middleware, ninja, the
                     key check, the rate-limit script in Redis, the ACL query, the logged decision
  sync_callback      POST /api/checkauthority/ with a callback_url the same way: the decision, its
                     delivery and the callbacks.deliver publish
  accept             POST /api/v1/charging-requests the same way: validation, the key check and
                     rate limit, the produce to Kafka and the wait for its acknowledgement (a broker
                     of its own, compose/local/kafka.sh); CPU includes librdkafka's threads
  decide_N           charging_requests_decide on N pending rows: the body of charging.authorize
                     for a batch of N, including publishing callbacks.deliver to Redis once the
                     decisions commit; reported per decision
  store_N            charging_requests_store of N messages: the bridge's INSERT of pending rows
                     (CHARGE_BRIDGE_DECIDES off: then send_task, then decide_N in a worker)
  store_decided_N    charging_requests_store_decided of N messages: the bridge's whole work per
                     chunk with CHARGE_BRIDGE_DECIDES on (ACL read, decided rows, deliveries, the
                     callbacks.deliver publish); per decision
  deliver_N          deliveries_attempt on N deliveries of one receiver: the body of
                     callbacks.deliver, signed POSTs to a receiver on loopback
                     (benchmarks/receiver.py, its own process) and the attempts recorded; per callback
  send_task          Celery's send_task of one authorize message: what the bridge pays per message

    .venv/bin/python -m benchmarks.hot_paths [--calls 2000] [--only accept,sync_callback] [--out DIR]

It starts its own redis-server, PostgreSQL and Kafka on free loopback ports (compose/local/redis.sh,
postgres.sh, kafka.sh) in a temporary folder, migrates, seeds one station, token and grant, and stops both
at the end. Figures are CPU time (time.process_time: this process only, not PostgreSQL's or Redis's)
and wall time per call, after a warm-up of 10 % of the calls.
"""

# Django is imported inside functions: only after the environment points at our own services.
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from apps.core.tasks import AUTHORIZE_TASK
from benchmarks.processes import local_service, small_report_write
from harness.processes import REPO, Process, free_port, wait_until

# A task of one (a quiet poll), and the batch sizes of a busy pipeline.
BATCH_SIZES = (1, 10, 32, 100)
BATCH_PATHS = {"decide", "deliver", "store", "store_decided"}
PATHS = ("sync_authorize", "sync_callback", "accept", *sorted(BATCH_PATHS), "send_task")
BENCH_QUEUE = "bench-hot-paths"  # no worker listens: the published messages are only counted, then dropped


def _measure(name: str, calls: int, call: Callable[[int], None], *, per: int = 1) -> dict[str, Any]:
    """CPU and wall time per call, and per item where a call handles `per` items (a batch)."""
    warmup = max(calls // 10, 10)
    for i in range(warmup):
        call(i)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(warmup, warmup + calls):
        call(i)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    result = {
        "calls": calls,
        "items_per_call": per,
        "cpu_ms_per_call": round(cpu * 1000 / calls, 3),
        "wall_ms_per_call": round(wall * 1000 / calls, 3),
        "cpu_ms_per_item": round(cpu * 1000 / (calls * per), 3),
    }
    cpu_ms, wall_ms, item_ms = (
        result["cpu_ms_per_call"],
        result["wall_ms_per_call"],
        result["cpu_ms_per_item"],
    )
    print(
        f"hot paths: {name}: {cpu_ms} ms CPU, {wall_ms} ms wall per call, {item_ms} ms CPU each", flush=True
    )
    return result


def _services_start(work: Path, *, kafka: bool) -> dict[str, str]:
    redis_port, pg_port, kafka_port, controller_port = free_port(), free_port(), free_port(), free_port()
    local_service("redis.sh", "start", data=work / "redis", port=redis_port)
    local_service("postgres.sh", "start", data=work / "postgres", port=pg_port)
    local_service("postgres.sh", "ensure-db", data=work / "postgres", port=pg_port, db="charge")
    urls = {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{pg_port}/charge",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/1",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
    }
    if kafka:
        script = str(REPO / "compose" / "local" / "kafka.sh")
        subprocess.run(
            [
                *("bash", script, "start", "--data", str(work / "kafka")),
                *("--port", str(kafka_port), "--controller-port", str(controller_port)),
            ],
            check=True,
        )
        urls["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{kafka_port}"
    return urls


def _services_stop(work: Path) -> None:
    local_service("redis.sh", "stop", data=work / "redis", check=False)
    local_service("postgres.sh", "stop", data=work / "postgres", check=False)
    if (work / "kafka").exists():
        local_service("kafka.sh", "stop", data=work / "kafka", check=False)


@dataclass
class Seeded:
    station_id: str
    token: str
    api_key: str
    client: Any


def _seed() -> Seeded:
    from apps.access.services import grant_create, station_create, token_create
    from apps.clients.services import ALL_SCOPES, api_client_get_or_create, api_key_create

    station = station_create(station_id=str(uuid.uuid4()))
    token = token_create(value="HOTPATH" + uuid.uuid4().hex[:16].upper())
    grant_create(token=token, station=station)
    client = api_client_get_or_create(name="hot-paths")
    client.rate_limit_per_s = 1_000_000
    client.save()
    _, key = api_key_create(client=client, scopes=ALL_SCOPES)
    return Seeded(station_id=station.station_id, token=token.value, api_key=key, client=client)


def _route(seeded: Seeded, path: str, fields: dict[str, str], *, expect: str) -> Callable[[int], None]:
    """One POST of `fields` as JSON to `path` through Django's WSGI handler, answered `expect`."""
    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()
    body = json.dumps(fields).encode()

    def call(_: int) -> None:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_AUTHORIZATION": f"Bearer {seeded.api_key}",
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
        }
        status: list[str] = []

        def start_response(line: str, _headers: Any, _exc_info: Any = None) -> Callable[[bytes], object]:
            status.append(line)
            return lambda _data: None

        b"".join(handler(environ, start_response))
        if not status[0].startswith(expect):
            raise RuntimeError(f"{path} answered {status[0]}")

    return call


def _pending(seeded: Seeded, count: int, callback_url: str) -> list[str]:
    from django.utils import timezone

    from apps.charging.models import ChargingRequest

    now = timezone.now()
    ids = [uuid.uuid4() for _ in range(count)]
    ChargingRequest.objects.bulk_create(
        ChargingRequest(
            request_id=request_id,
            client=seeded.client,
            station_id=seeded.station_id,
            driver_token=seeded.token,
            callback_url=callback_url,
            source=ChargingRequest.Source.ASYNC,
            requested_at=now,
            deadline=now + timedelta(hours=1),
        )
        for request_id in ids
    )
    return [str(request_id) for request_id in ids]


def _messages(seeded: Seeded, count: int, callback_url: str) -> list[Any]:
    from django.utils import timezone

    from apps.charging.messages import ChargeRequestV1
    from apps.charging.services import Consumed

    now = timezone.now()
    return [
        Consumed(
            message=ChargeRequestV1(
                request_id=uuid.uuid4(),
                client_id=seeded.client.pk,
                station_id=seeded.station_id,
                driver_token=seeded.token,
                callback_url=callback_url,
                received_at=now,
                deadline=now + timedelta(hours=1),
            ),
            partition=0,
            offset=n,
        )
        for n in range(count)
    ]


def _routes_measure(seeded: Seeded, callback_url: str, calls: int, only: set[str]) -> dict[str, Any]:
    if "accept" in only:
        from apps.charging.topics import topics_ensure

        topics_ensure(wait_s=60)
    pair = {"station_id": seeded.station_id, "driver_token": seeded.token}
    with_callback = {**pair, "callback_url": callback_url}
    routes = {
        "sync_authorize": ("/api/v1/authorize", pair, "200"),
        "sync_callback": ("/api/checkauthority/", with_callback, "200"),
        "accept": ("/api/v1/charging-requests", with_callback, "202"),
    }
    return {
        name: _measure(name, calls, _route(seeded, path, fields, expect=expect))
        for name, (path, fields, expect) in routes.items()
        if name in only
    }


def _run(calls: int, work: Path, only: set[str]) -> dict[str, Any]:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)

    import redis
    from celery import current_app
    from django.conf import settings

    import workers  # noqa: F401 - the Celery app, configured from settings
    from apps.callbacks.services import deliveries_attempt
    from apps.charging.services import (
        charging_requests_decide,
        charging_requests_store,
        charging_requests_store_decided,
    )

    seeded = _seed()
    ready = work / "receiver.port"
    receiver = Process(
        "receiver",
        [sys.executable, "-m", "benchmarks.receiver", "--port", "0", "--ready-file", str(ready)],
        work / "receiver.log",
        {**os.environ, "BENCH_RECEIVER_SECRET": seeded.client.callback_secret},
    ).start()
    try:
        wait_until(ready.exists, timeout=30, what="callback receiver")
        callback_url = f"http://127.0.0.1:{int(ready.read_text())}/callback"
        results = _routes_measure(seeded, callback_url, calls, only)
        for size in BATCH_SIZES if only & BATCH_PATHS else ():
            # Rows for the warm-up and the measured calls, `size` decisions (then callbacks) per call.
            pending = _pending(seeded, (calls + max(calls // 10, 10)) * size, callback_url)
            batches = [pending[i : i + size] for i in range(0, len(pending), size)]

            def decide(i: int, batches: list[list[str]] = batches) -> None:
                if charging_requests_decide(request_ids=batches[i]) != len(batches[i]):
                    raise RuntimeError(f"batch {i} was not decided whole")

            def deliver(i: int, batches: list[list[str]] = batches) -> None:
                if sum(deliveries_attempt(request_ids=batches[i]).values()) != len(batches[i]):
                    raise RuntimeError(f"batch {i} was not attempted whole")

            if "decide" in only or "deliver" in only:
                results[f"decide_{size}"] = _measure(f"decide_{size}", calls, decide, per=size)
            if "deliver" in only:  # delivers what decide_N decided
                results[f"deliver_{size}"] = _measure(f"deliver_{size}", calls, deliver, per=size)

            count = (calls + max(calls // 10, 10)) * size
            to_store = _messages(seeded, count, callback_url)
            to_decide = _messages(seeded, count, callback_url)

            def store(i: int, size: int = size, messages: list[Any] = to_store) -> None:
                charging_requests_store(consumed=messages[i * size : (i + 1) * size])

            def store_decided(i: int, size: int = size, messages: list[Any] = to_decide) -> None:
                if charging_requests_store_decided(consumed=messages[i * size : (i + 1) * size]):
                    raise RuntimeError(f"batch {i} was stored before")

            if "store" in only:
                results[f"store_{size}"] = _measure(f"store_{size}", calls, store, per=size)
            if "store_decided" in only:
                results[f"store_decided_{size}"] = _measure(
                    f"store_decided_{size}", calls, store_decided, per=size
                )

        one = _pending(seeded, calls + max(calls // 10, 10), callback_url)

        def send_task(i: int) -> None:
            current_app.send_task(AUTHORIZE_TASK, kwargs={"request_ids": one[i : i + 1]}, queue=BENCH_QUEUE)

        if "send_task" in only:
            results["send_task"] = _measure("send_task", calls, send_task)
        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(BENCH_QUEUE)
        return results
    finally:
        receiver.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--only", default=",".join(PATHS), help=f"a subset of {','.join(PATHS)}")
    args = parser.parse_args()
    only = {name for name in args.only.split(",") if name}
    if only - set(PATHS):
        parser.error(f"--only: unknown paths {', '.join(sorted(only - set(PATHS)))}")

    work = Path(tempfile.mkdtemp(prefix="charge-hot-paths-"))
    work.chmod(0o711)  # PostgreSQL runs as the postgres user, which must reach its data directory inside
    load_before = os.getloadavg()
    try:
        os.environ.update(
            _services_start(work, kafka="accept" in only),
            DJANGO_SETTINGS_MODULE="project.settings",
            SECRET_KEY=os.environ.get("SECRET_KEY", "hot-paths-only-secret-key"),
            CHARGE_CALLBACK_ALLOW_PRIVATE="1",
            CHARGE_LOCAL_DIR=str(work / "local"),
            # One line per call would measure the terminal; the stack logs at INFO (see README).
            LOG_LEVEL=os.environ.get("LOG_LEVEL", "WARNING"),
        )
        results = _run(args.calls, work, only)
    finally:
        _services_stop(work)
        shutil.rmtree(work, ignore_errors=True)
    path = small_report_write(
        args.out,
        stem="hot-paths",
        what="CPU and wall time per call of our code in one thread of one process (see the module doc)",
        command=f".venv/bin/python -m benchmarks.hot_paths --calls {args.calls}"
        + ("" if only == set(PATHS) else f" --only {','.join(sorted(only))}"),
        load_before=load_before,
        log_level=os.environ["LOG_LEVEL"],
        results=results,
    )
    print(f"hot paths: report {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
