"""`make bench`: start the application processes, drive the phases, check every request, report.

compose/local/bench.sh starts Kafka, Redis and PostgreSQL in a temporary folder and calls this with
their addresses in KAFKA_BOOTSTRAP_SERVERS, REDIS_URL and DATABASE_URL; the integration test calls it
the same way with the test fixtures' services. This module then starts, each in its own process
group and with the project's own start scripts, the api (compose/local/api.sh: gunicorn), the bridge
(bridge.sh), the authorize worker (worker.sh, prefork), the callbacks worker (worker.sh, threads),
beat and Flower, plus a callback receiver (benchmarks/receiver.py), and stops all of them at the end,
whatever happened.

Phases (BENCH_PHASES, default all, in this order):
  burst    a) accept burst: N requests as fast as the API takes them (closed loop, C connections)
  accept   a) accept latency at a fixed offered rate (open loop; DESIGN: p99 <= 25 ms at 400/s)
  ladder   b) offered 100, 200, 300... requests/s for S s each until the pipeline falls behind
  sync     c) POST /api/v1/authorize, closed loop
Resource use (d) is sampled all along. After each phase every accepted request is checked: one
decision row, one callback delivery (delivered), one callback at the receiver.

Scale (BENCH_SCALE): tiny (seconds per phase, for `make test`) or full (the measured run). Each knob
can be overridden from the environment; see SCALES and `_scale_from_env`.
"""

# Django and the apps are imported inside functions: only after the environment is prepared.
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import platform
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from benchmarks import loadgen, report
from benchmarks.processes import REPO, GroupSampler, Process, free_port, group_of, listener_pid, wait_until
from benchmarks.profiling import Profiler

PYTHON = sys.executable
VENV_BIN = Path(sys.executable).parent
RESULTS = REPO / "benchmarks" / "results"
PHASES = ("burst", "accept", "ladder", "sync")


# --- configuration ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    name: str
    burst_requests: int
    burst_min_s: float
    burst_concurrency: int
    accept_rate: float
    accept_s: float
    ladder_start: int
    ladder_step: int
    ladder_max: int
    step_s: float
    sync_s: float
    sync_concurrency: int
    open_loop_connections: int
    # Draining after a phase gives up when no callback arrived for this long (or the run's time is up).
    drain_stall_s: float
    warmup_requests: int
    # A ladder step keeps up when its callbacks come at >= 95 % of the offered rate, nothing is
    # `unknown`, nothing failed, and end-to-end p99 stays under this.
    e2e_p99_limit_ms: float
    max_run_s: float
    stations: int = 200
    tokens: int = 2000
    # The stack's CPU with no load at all, after the warm-up: the floor every rate pays.
    idle_s: float = 10.0


SCALES = {
    "tiny": Scale(
        name="tiny",
        burst_requests=200,
        burst_min_s=0,
        burst_concurrency=8,
        accept_rate=50,
        accept_s=2,
        ladder_start=25,
        ladder_step=25,
        ladder_max=50,
        step_s=2,
        sync_s=2,
        sync_concurrency=8,
        open_loop_connections=32,
        drain_stall_s=30,
        warmup_requests=10,
        e2e_p99_limit_ms=2000,
        max_run_s=380,
        stations=20,
        tokens=100,
        idle_s=2,
    ),
    "full": Scale(
        name="full",
        burst_requests=20_000,
        # DESIGN: ">= 800 requests/s over 60 s": the burst goes on until both are reached.
        burst_min_s=60,
        burst_concurrency=64,
        accept_rate=400,
        accept_s=30,
        ladder_start=100,
        ladder_step=100,
        ladder_max=1500,
        step_s=30,
        sync_s=30,
        sync_concurrency=32,
        open_loop_connections=256,
        drain_stall_s=90,
        warmup_requests=200,
        e2e_p99_limit_ms=1000,
        max_run_s=3600,
    ),
}

# Environment knobs → Scale fields. Each one set is repeated in the "command" of every figure.
ENV_KNOBS = {
    "BENCH_BURST_N": ("burst_requests", int),
    "BENCH_BURST_MIN_S": ("burst_min_s", float),
    "BENCH_BURST_CONCURRENCY": ("burst_concurrency", int),
    "BENCH_ACCEPT_RATE": ("accept_rate", float),
    "BENCH_ACCEPT_S": ("accept_s", float),
    "BENCH_LADDER_START": ("ladder_start", int),
    "BENCH_LADDER_STEP": ("ladder_step", int),
    "BENCH_LADDER_MAX": ("ladder_max", int),
    "BENCH_STEP_S": ("step_s", float),
    "BENCH_SYNC_S": ("sync_s", float),
    "BENCH_SYNC_CONCURRENCY": ("sync_concurrency", int),
    "BENCH_CONNECTIONS": ("open_loop_connections", int),
    "BENCH_DRAIN_STALL_S": ("drain_stall_s", float),
    "BENCH_E2E_P99_LIMIT_MS": ("e2e_p99_limit_ms", float),
    "BENCH_MAX_S": ("max_run_s", float),
    "BENCH_IDLE_S": ("idle_s", float),
}

# Settings of the stack that tuning moves; recorded in the report as the environment gave them.
STACK_KNOBS = (
    "API_WORKERS",
    "API_THREADS",
    "AUTHORIZE_POOL",
    "AUTHORIZE_CONCURRENCY",
    "API_ACCESS_LOG",
    "CELERY_TASK_LOG_LEVEL",
    "DB_SERVER_SIDE_BINDING",
    "CALLBACK_CONCURRENCY",
    "CHARGE_PRODUCER_LINGER_MS",
    "CHARGE_BRIDGE_BATCH",
    "CELERY_WORKER_PREFETCH_MULTIPLIER",
    "DB_CONN_MAX_AGE",
    "LOG_LEVEL",
    "CHARGE_DECISION_TIMEOUT_S",
    "CHARGE_TOPIC_PARTITIONS",
    "KAFKA_HEAP_OPTS",
    "FLOWER_MAX_TASKS",
)


def _scale_from_env(name: str) -> tuple[Scale, dict[str, str]]:
    scale = SCALES[name]
    given: dict[str, str] = {}
    for var, (attr, kind) in ENV_KNOBS.items():
        if os.environ.get(var):
            scale = replace(scale, **{attr: kind(os.environ[var])})
            given[var] = os.environ[var]
    return scale, given


def _say(message: str) -> None:
    print(message, flush=True)


# --- the stack ----------------------------------------------------------------------------------------


@dataclass
class Stack:
    work: Path
    env: dict[str, str]
    api_port: int
    receiver_port: int = 0
    processes: dict[str, Process] = field(default_factory=dict)
    api_key: str = ""
    callback_secret: str = ""
    client_id: int = 0

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    def start(self, name: str, argv: list[str], *, env: dict[str, str] | None = None) -> Process:
        process = Process(name, argv, self.logs / f"{name}.log", env=env or self.env).start()
        self.processes[name] = process
        return process

    def stop_all(self) -> None:
        # Producers of work first (api, bridge), then its consumers, then the receiver.
        order = ["flower", "beat", "api", "bridge", "authorize", "callbacks", "receiver"]
        for name in order + [n for n in self.processes if n not in order]:
            process = self.processes.get(name)
            if process is not None:
                process.stop()


def _redis_url(url: str, db: int | None) -> str:
    if db is None:
        return url
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def _stack_env(work: Path, args: argparse.Namespace) -> dict[str, str]:
    from apps.clients.keys import key_generate

    env = dict(os.environ)
    for var in ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        if not env.get(var):
            raise SystemExit(f"bench: {var} is not set (compose/local/bench.sh sets it)")
    suffix = uuid.uuid4().hex[:8]
    redis_url = _redis_url(env["REDIS_URL"], args.redis_db)
    env.update(
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        SECRET_KEY=env.get("SECRET_KEY") or secrets.token_urlsafe(40),
        DEBUG="0",
        # The receiver is on loopback.
        CHARGE_CALLBACK_ALLOW_PRIVATE="1",
        CHARGE_LOCAL_DIR=str(work / "local"),
        CHARGE_TOPIC=f"bench-{suffix}",
        CHARGE_DLQ_TOPIC=f"bench-{suffix}.dlq",
        CHARGE_BRIDGE_GROUP=f"bench-bridge-{suffix}",
        CHARGE_BRIDGE_METRICS_PORT=str(free_port()),
        API_PORT=env.get("BENCH_API_PORT") or str(free_port()),
        # dev_seed (run by api.sh) wants these; the benchmark uses its own client and key.
        CHARGE_ADMIN_USER="bench-admin",
        CHARGE_ADMIN_PASSWORD=secrets.token_urlsafe(16),
        CHARGE_API_KEY=key_generate(),
        CHARGE_CALLBACK_SECRET=secrets.token_urlsafe(32),
        FLOWER_USER="bench",
        FLOWER_PASSWORD=secrets.token_urlsafe(12),
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    return env


def _django_setup(env: dict[str, str]) -> None:
    for var in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "KAFKA_BOOTSTRAP_SERVERS", "SECRET_KEY"):
        os.environ[var] = env[var]
    for var in ("DEBUG", "CHARGE_TOPIC", "CHARGE_DLQ_TOPIC", "CHARGE_LOCAL_DIR"):
        os.environ[var] = env[var]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()


def _seed(stack: Stack, scale: Scale) -> list[tuple[str, str]]:
    """The benchmark's API client (rate limit far above any offered rate), its key, and an ACL.

    Returns the (station_id, driver_token) pairs the requests cycle through: 90 % granted, 5 % an
    unknown token, 5 % a known token at a station it has no grant for.
    """
    from django.core.management import call_command
    from django.db import connections

    from apps.access.models import DriverToken, Grant, Station
    from apps.clients.models import Scope
    from apps.clients.services import api_client_get_or_create, api_key_create

    call_command("migrate", verbosity=0, interactive=False)
    stack.callback_secret = secrets.token_urlsafe(32)
    client = api_client_get_or_create(
        name=f"bench-{uuid.uuid4().hex[:8]}", callback_secret=stack.callback_secret
    )
    client.rate_limit_per_s = 1_000_000
    client.save(update_fields=["rate_limit_per_s"])
    stack.client_id = client.pk
    _, stack.api_key = api_key_create(
        client=client, scopes=[Scope.CHARGING_WRITE, Scope.CHARGING_READ, Scope.AUTHORIZE], name="bench"
    )

    run = uuid.uuid4().int & 0xFFFF_FFFF
    stations = [str(uuid.UUID(int=(0xBE4C << 112) | (run << 32) | n)) for n in range(scale.stations)]
    tokens = [f"BENCH-{run:08X}-{n:08d}" for n in range(scale.tokens)]
    Station.objects.bulk_create([Station(station_id=s, name="bench") for s in stations])
    token_rows = DriverToken.objects.bulk_create([DriverToken(value=t) for t in tokens])
    # Each token may charge at two stations.
    grants = []
    for n, token in enumerate(token_rows):
        for k in (0, 1):
            grants.append(Grant(token=token, station_id=stations[(n * 7 + k) % len(stations)], note="bench"))
    Grant.objects.bulk_create(grants)
    pairs: list[tuple[str, str]] = []
    for n in range(4000):
        t = n % len(tokens)
        if n % 20 == 18:
            pairs.append((stations[n % len(stations)], f"BENCH-UNKNOWN-{n:012d}"))
        elif n % 20 == 19:
            pairs.append((stations[(t * 7 + 5) % len(stations)], tokens[t]))
        else:
            pairs.append((stations[(t * 7 + n % 2) % len(stations)], tokens[t]))
    connections.close_all()
    return pairs


def _start_stack(stack: Stack, *, flower: bool) -> None:
    env = stack.env
    scripts = REPO / "compose" / "local"
    celery = str(VENV_BIN / "celery")
    authorize_pool = env.get("AUTHORIZE_POOL", "prefork")
    authorize_n = env.get("AUTHORIZE_CONCURRENCY", "2")
    callbacks_n = env.get("CALLBACK_CONCURRENCY", "16")
    # The same commands as compose/local/Procfile, metrics ports made free.
    stack.start("api", ["bash", str(scripts / "api.sh")])
    stack.start("bridge", ["bash", str(scripts / "bridge.sh")])
    stack.start(
        "authorize",
        ["bash", str(scripts / "worker.sh"), "authorize", authorize_pool, authorize_n],
        env={**env, "CHARGE_WORKER_METRICS_PORT": str(free_port())},
    )
    stack.start(
        "callbacks",
        ["bash", str(scripts / "worker.sh"), "callbacks", "threads", callbacks_n],
        env={**env, "CHARGE_WORKER_METRICS_PORT": str(free_port())},
    )
    beat_schedule = stack.work / "celerybeat-schedule"
    stack.start(
        "beat", [celery, "-A", "workers", "beat", "--schedule", str(beat_schedule), "--loglevel", "INFO"]
    )
    if flower:
        port = free_port()
        stack.env["BENCH_FLOWER_PORT"] = str(port)
        stack.start(
            "flower",
            [
                celery,
                "-A",
                "workers",
                "flower",
                "--address=127.0.0.1",
                f"--port={port}",
                f"--basic-auth={env['FLOWER_USER']}:{env['FLOWER_PASSWORD']}",
                f"--max_tasks={env.get('FLOWER_MAX_TASKS', '2000')}",
            ],
        )


def _http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _wait_ready(stack: Stack, *, timeout: float) -> None:
    import redis

    from workers import app

    procs = stack.processes

    def api_ready() -> bool:
        procs["api"].ensure_running()
        return _http_get(stack.api_port, "/api/readyz")[0] == 200

    def bridge_ready() -> bool:
        procs["bridge"].ensure_running()
        return "partitions_assigned" in procs["bridge"].log_tail(400)

    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    nonces = {}
    for queue in ("authorize", "callbacks"):
        nonces[queue] = uuid.uuid4().hex
        app.send_task("ops.ping", kwargs={"nonce": nonces[queue]}, queue=queue)

    def worker_ready(queue: str) -> bool:
        procs[queue].ensure_running()
        return bool(client.exists(f"charge:ping:{nonces[queue]}"))

    started = time.monotonic()
    wait_until(api_ready, timeout=timeout, what="api")
    wait_until(bridge_ready, timeout=timeout, what="bridge")
    wait_until(lambda: worker_ready("authorize"), timeout=timeout, what="authorize worker")
    wait_until(lambda: worker_ready("callbacks"), timeout=timeout, what="callbacks worker")
    procs["beat"].ensure_running()
    if "flower" in procs:
        port = int(stack.env["BENCH_FLOWER_PORT"])

        def flower_ready() -> bool:
            procs["flower"].ensure_running()
            return _port_open(port)

        wait_until(flower_ready, timeout=timeout, what="flower")
    _say(f"bench: stack ready in {time.monotonic() - started:.1f} s")


def _port_open(port: int) -> bool:
    import socket

    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _start_receiver(stack: Stack) -> None:
    ready = stack.work / "receiver.port"
    env = {**stack.env, "BENCH_RECEIVER_SECRET": stack.callback_secret}
    process = stack.start(
        "receiver", [PYTHON, "-m", "benchmarks.receiver", "--port", "0", "--ready-file", str(ready)], env=env
    )

    def up() -> bool:
        process.ensure_running()
        return ready.exists()

    wait_until(up, timeout=30, what="callback receiver")
    stack.receiver_port = int(ready.read_text())


# --- the receiver's record ---------------------------------------------------------------------------


class Arrivals:
    """The receiver's arrivals, fetched incrementally: request_id → first arrival (monotonic)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.first: dict[str, float] = {}
        self.next_from = 0
        self.stats: dict[str, Any] = {}

    def refresh(self) -> dict[str, Any]:
        status, body = _http_get(self.port, f"/_arrivals?from={self.next_from}", timeout=30)
        if status != 200:
            raise RuntimeError(f"receiver answered {status}")
        data = json.loads(body)
        for request_id, at in data.pop("arrivals"):
            self.first.setdefault(request_id, at)
        self.next_from = data["unique"]
        self.stats = data
        return data


# --- phases ----------------------------------------------------------------------------------------


@dataclass
class PhaseContext:
    stack: Stack
    scale: Scale
    pairs: list[tuple[str, str]]
    arrivals: Arrivals
    sampler: GroupSampler
    profiler: Profiler
    base_command: str
    run_started: float
    deadline: float

    def client(self, connections: int) -> loadgen.HttpClient:
        return loadgen.HttpClient(
            "127.0.0.1",
            self.stack.api_port,
            max_connections=connections,
            headers={"Authorization": f"Bearer {self.stack.api_key}"},
        )

    def charging_payloads(self, client: loadgen.HttpClient) -> list[bytes]:
        callback = f"http://127.0.0.1:{self.stack.receiver_port}/callback"
        return [
            client.prepare(
                loadgen.Request(
                    "POST",
                    "/api/v1/charging-requests",
                    json.dumps(
                        {"station_id": s, "driver_token": t, "callback_url": callback}, separators=(",", ":")
                    ).encode(),
                )
            )
            for s, t in self.pairs
        ]

    def authorize_payloads(self, client: loadgen.HttpClient) -> list[bytes]:
        return [
            client.prepare(
                loadgen.Request(
                    "POST",
                    "/api/v1/authorize",
                    json.dumps({"station_id": s, "driver_token": t}, separators=(",", ":")).encode(),
                )
            )
            for s, t in self.pairs
        ]

    def elapsed(self) -> str:
        return f"[{time.monotonic() - self.run_started:7.1f} s]"

    def time_left(self) -> float:
        return self.deadline - time.monotonic()


def _progress(ctx: PhaseContext, label: str) -> loadgen.Progress:
    def show(state: loadgen.LoadState) -> None:
        rate = state.done / state.elapsed_s if state.elapsed_s else 0.0
        callbacks = ""
        with contextlib.suppress(Exception):
            stats = json.loads(_http_get(ctx.stack.receiver_port, "/_stats", timeout=2)[1])
            callbacks = f", callbacks received so far {stats['unique']}"
        _say(
            f"{ctx.elapsed()} {label}: sent {state.offered}, answered {state.done} ({rate:.0f}/s), "
            f"ok {state.ok}, errors {state.errors}, dropped {state.dropped}{callbacks}"
        )

    return show


def _accepted_ids(samples: Sequence[loadgen.Sample]) -> dict[str, loadgen.Sample]:
    out: dict[str, loadgen.Sample] = {}
    for sample in samples:
        if sample.status == 202:
            out[json.loads(sample.body)["request_id"]] = sample
    return out


def _db_check(request_ids: Sequence[str], *, expect_delivery: bool) -> dict[str, Any]:
    """What PostgreSQL holds for these requests: decisions, deliveries, attempts."""
    from django.db import connection

    from apps.callbacks.models import CallbackAttempt, CallbackDelivery
    from apps.charging.models import ChargingRequest

    requests_t = ChargingRequest._meta.db_table
    deliveries_t = CallbackDelivery._meta.db_table
    attempts_t = CallbackAttempt._meta.db_table
    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    delivery_status: Counter[str] = Counter()
    rows = 0
    attempts = 0
    ids = list(request_ids)
    with connection.cursor() as cursor:
        for start in range(0, len(ids), 20_000):
            chunk = ids[start : start + 20_000]
            cursor.execute(
                f"""
                SELECT r.status, r.reason, d.status, COALESCE(d.attempts, 0), count(*)
                FROM {requests_t} r LEFT JOIN {deliveries_t} d ON d.request_id = r.request_id
                WHERE r.request_id = ANY(%s::uuid[])
                GROUP BY 1, 2, 3, 4
                """,  # noqa: S608 - table names come from the models; the ids are a parameter
                [chunk],
            )
            for status, reason, d_status, d_attempts, count in cursor.fetchall():
                rows += count
                statuses[status] += count
                reasons[f"{status}/{reason}"] += count
                delivery_status[d_status or "none"] += count
                attempts += d_attempts * count
            cursor.execute(
                f"SELECT count(*) FROM {attempts_t} WHERE delivery_id = ANY(%s::uuid[])",  # noqa: S608
                [chunk],
            )
            attempt_rows = cursor.fetchone()
    delivered = delivery_status.get("delivered", 0)
    return {
        "requests": len(ids),
        "decision_rows": rows,
        "pending": statuses.get("pending", 0),
        "statuses": dict(statuses),
        "reasons": dict(reasons),
        "deliveries": sum(v for k, v in delivery_status.items() if k != "none"),
        "delivery_status": dict(delivery_status),
        "delivery_attempts": attempts,
        "attempt_rows_last_chunk": attempt_rows[0] if attempt_rows else 0,
        "expect_delivery": expect_delivery,
        "delivered": delivered,
    }


def _drain_and_check(
    ctx: PhaseContext, label: str, accepted: dict[str, loadgen.Sample], *, sent_end: float
) -> dict[str, Any]:
    """Wait until every accepted request's callback arrived, then check the database.

    Waiting stops early when no callback arrived for drain_stall_s, or the run's time is nearly up.
    """
    wanted = set(accepted)
    started = time.monotonic()
    last_say = 0.0
    last_progress, last_missing = started, len(wanted)
    while True:
        ctx.arrivals.refresh()
        missing = len(wanted - ctx.arrivals.first.keys())
        now = time.monotonic()
        if missing < last_missing:
            last_progress, last_missing = now, missing
        if missing == 0 or now - last_progress > ctx.scale.drain_stall_s or ctx.time_left() < 20:
            break
        if now - last_say >= 2:
            _say(f"{ctx.elapsed()} {label}: draining, {len(wanted) - missing}/{len(wanted)} callbacks in")
            last_say = now
        time.sleep(0.25)
    drained_at = time.monotonic()
    # The delivery row is marked delivered just after the receiver answered: give it a moment.
    for _ in range(40):
        db = _db_check(list(wanted), expect_delivery=True)
        if db["pending"] == 0 and db["delivered"] == db["requests"]:
            break
        time.sleep(0.25)
    stats = ctx.arrivals.stats
    missing = len(wanted - ctx.arrivals.first.keys())
    checks = {
        "every_request_has_one_decision": db["decision_rows"] == len(wanted) and db["pending"] == 0,
        "every_request_has_one_delivery": db["deliveries"] == len(wanted),
        "every_delivery_delivered": db["delivered"] == len(wanted),
        "every_callback_arrived": missing == 0,
        "signatures_valid": stats.get("bad_signature", 0) == 0,
    }
    result: dict[str, Any] = {
        "passed": all(checks.values()),
        "checks": checks,
        "db": db,
        "receiver_missing": missing,
        "receiver_totals": {k: stats.get(k) for k in ("posts", "unique", "duplicates", "bad_signature")},
        "drain_s": round(drained_at - sent_end, 2),
        "waited_s": round(drained_at - started, 2),
    }
    verdict = "passed" if result["passed"] else f"FAILED {[k for k, v in checks.items() if not v]}"
    _say(
        f"{ctx.elapsed()} {label}: check {verdict}: {len(wanted)} accepted, {db['decision_rows']} "
        f"decided {db['statuses']}, {db['delivered']} delivered, {missing} callbacks missing, "
        f"drain {result['drain_s']} s"
    )
    return result


def _e2e(accepted: dict[str, loadgen.Sample], arrivals: Arrivals) -> list[float]:
    return [arrivals.first[rid] - s.done for rid, s in accepted.items() if rid in arrivals.first]


def _status_counts(samples: Sequence[loadgen.Sample]) -> dict[str, int]:
    counts = Counter(
        "dropped" if s.status == -1 else "no_answer" if s.status == 0 else str(s.status) for s in samples
    )
    return dict(sorted(counts.items()))


def _cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 2) for name in after}


def _stack_cpu(delta: dict[str, float], harness: Sequence[str]) -> float:
    return round(sum(v for k, v in delta.items() if k not in harness), 2)


HARNESS = ("harness_loadgen", "harness_receiver")


def phase_burst(ctx: PhaseContext) -> dict[str, Any]:
    scale = ctx.scale
    label = "a) accept burst"
    _say(
        f"{ctx.elapsed()} {label}: {scale.burst_requests} requests, {scale.burst_concurrency} connections"
        + (f", at least {scale.burst_min_s:.0f} s" if scale.burst_min_s else "")
    )

    async def go() -> loadgen.LoadState:
        client = ctx.client(scale.burst_concurrency)
        payloads = ctx.charging_payloads(client)
        try:
            return await loadgen.closed_loop(
                client,
                total=scale.burst_requests,
                concurrency=scale.burst_concurrency,
                payloads=payloads,
                ok_status=(202,),
                min_duration_s=scale.burst_min_s,
                max_duration_s=max(10.0, min(600.0, ctx.time_left() - 60)),
                progress=_progress(ctx, label),
            )
        finally:
            await client.close()

    cpu0 = ctx.sampler.cpu_seconds()
    t0 = time.monotonic()
    state = asyncio.run(go())
    t1 = time.monotonic()
    cpu1 = ctx.sampler.cpu_seconds()
    accepted = _accepted_ids(state.samples)
    duration = max(s.done for s in state.samples) - state.started if state.samples else 0.0
    check = _drain_and_check(ctx, label, accepted, sent_end=t1)
    e2e = _e2e(accepted, ctx.arrivals)
    cpu = _cpu_delta(cpu0, cpu1)
    result: dict[str, Any] = {
        "command": _phase_command(
            ctx,
            "burst",
            BENCH_BURST_N=scale.burst_requests,
            BENCH_BURST_CONCURRENCY=scale.burst_concurrency,
            BENCH_BURST_MIN_S=scale.burst_min_s,
        ),
        "what": "POST /api/v1/charging-requests, closed loop; 202 only after Kafka acks (acks=all)",
        "requests": len(state.samples),
        "concurrency": scale.burst_concurrency,
        "duration_s": round(duration, 2),
        "accepted": len(accepted),
        "answers": _status_counts(state.samples),
        "accepted_per_s": round(len(accepted) / duration, 1) if duration else None,
        "accept_latency": loadgen.latency_summary_ms([s.service_s for s in state.samples if s.status == 202]),
        "end_to_end_latency": loadgen.latency_summary_ms(e2e),
        "cpu_s": cpu,
        "stack_cpu_s_per_1000_accepts": round(_stack_cpu(cpu, HARNESS) / len(accepted) * 1000, 3)
        if accepted
        else None,
        "memory": ctx.sampler.rss_between(t0, t1),
        "consistency": check,
    }
    _say(
        f"{ctx.elapsed()} {label}: {result['accepted_per_s']} accepted/s over {result['duration_s']} s, "
        f"p50 {result['accept_latency']['p50_ms']} ms p99 {result['accept_latency']['p99_ms']} ms "
        f"max {result['accept_latency']['max_ms']} ms"
    )
    return result


def _open_loop_step(
    ctx: PhaseContext, label: str, rate: float, duration_s: float
) -> tuple[loadgen.LoadState, dict[str, loadgen.Sample], float, float, dict[str, float]]:
    async def go() -> loadgen.LoadState:
        client = ctx.client(ctx.scale.open_loop_connections)
        payloads = ctx.charging_payloads(client)
        try:
            return await loadgen.open_loop(
                client,
                rate=rate,
                duration_s=duration_s,
                payloads=payloads,
                ok_status=(202,),
                progress=_progress(ctx, label),
            )
        finally:
            await client.close()

    cpu0 = ctx.sampler.cpu_seconds()
    t0 = time.monotonic()
    state = asyncio.run(go())
    t1 = time.monotonic()
    return state, _accepted_ids(state.samples), t0, t1, cpu0


def phase_accept(ctx: PhaseContext) -> dict[str, Any]:
    scale = ctx.scale
    label = f"a) accept at {scale.accept_rate:.0f}/s"
    _say(f"{ctx.elapsed()} {label}: {scale.accept_s:.0f} s, open loop")
    state, accepted, t0, t1, _ = _open_loop_step(ctx, label, scale.accept_rate, scale.accept_s)
    check = _drain_and_check(ctx, label, accepted, sent_end=t1)
    latency = loadgen.latency_summary_ms([s.latency_s for s in state.samples if s.status == 202])
    result: dict[str, Any] = {
        "command": _phase_command(
            ctx, "accept", BENCH_ACCEPT_RATE=scale.accept_rate, BENCH_ACCEPT_S=scale.accept_s
        ),
        "what": "POST /api/v1/charging-requests at a fixed offered rate; latency from when each was due",
        "offered_per_s": scale.accept_rate,
        "duration_s": round(t1 - t0, 2),
        "requests": len(state.samples),
        "accepted": len(accepted),
        "answers": _status_counts(state.samples),
        "accept_latency": latency,
        "end_to_end_latency": loadgen.latency_summary_ms(_e2e(accepted, ctx.arrivals)),
        "consistency": check,
    }
    _say(f"{ctx.elapsed()} {label}: accept p50 {latency['p50_ms']} ms p99 {latency['p99_ms']} ms")
    return result


def phase_ladder(ctx: PhaseContext) -> dict[str, Any]:
    scale = ctx.scale
    steps: list[dict[str, Any]] = []
    rate = scale.ladder_start
    while rate <= scale.ladder_max:
        if ctx.time_left() < scale.step_s + 60:
            _say(
                f"{ctx.elapsed()} b) ladder: stopping before {rate}/s, the run's time budget is nearly spent"
            )
            break
        label = f"b) ladder {rate}/s"
        settled = _settle(ctx, label) if steps else None  # the phase itself settled before the first
        _say(f"{ctx.elapsed()} {label}: {scale.step_s:.0f} s, open loop")
        with ctx.profiler.during(f"ladder:{rate}"):
            state, accepted, t0, t1, cpu0 = _open_loop_step(ctx, label, rate, scale.step_s)
            check = _drain_and_check(ctx, label, accepted, sent_end=t1)
        cpu1 = ctx.sampler.cpu_seconds()
        t_drained = time.monotonic()
        e2e = _e2e(accepted, ctx.arrivals)
        in_window = sum(1 for rid in accepted if rid in ctx.arrivals.first and ctx.arrivals.first[rid] <= t1)
        window = t1 - t0
        callbacks_per_s = in_window / window if window else 0.0
        e2e_summary = loadgen.latency_summary_ms(e2e)
        unknown = check["db"]["statuses"].get("unknown", 0)
        failed = len(state.samples) - len(accepted)
        cpu = _cpu_delta(cpu0, cpu1)
        decided = check["db"]["decision_rows"]
        keeps_up = (
            failed == 0
            and unknown == 0
            and check["passed"]
            and callbacks_per_s >= 0.95 * rate
            and (e2e_summary["p99_ms"] or 0) <= scale.e2e_p99_limit_ms
        )
        step = {
            "offered_per_s": rate,
            "settled_before": settled,
            "duration_s": round(window, 2),
            "requests": len(state.samples),
            "accepted": len(accepted),
            "accepted_per_s": round(len(accepted) / window, 1) if window else None,
            "answers": _status_counts(state.samples),
            "decisions_per_s": round(callbacks_per_s, 1),
            "decisions_per_s_means": "callbacks of this step's requests received at the receiver "
            "before the step's last request was sent, per second of the step",
            "accept_latency": loadgen.latency_summary_ms(
                [s.latency_s for s in state.samples if s.status == 202]
            ),
            "end_to_end_latency": e2e_summary,
            "unknown": unknown,
            "statuses": check["db"]["statuses"],
            "keeps_up": keeps_up,
            "cpu_s": cpu,
            "stack_cpu_s_per_1000_decisions": round(_stack_cpu(cpu, HARNESS) / decided * 1000, 3)
            if decided
            else None,
            "memory": ctx.sampler.rss_between(t0, t_drained),
            "consistency": check,
        }
        steps.append(step)
        _say(
            f"{ctx.elapsed()} {label}: {'keeps up' if keeps_up else 'FALLS BEHIND'}: "
            f"{step['decisions_per_s']} decisions/s, e2e p50 {e2e_summary['p50_ms']} ms "
            f"p99 {e2e_summary['p99_ms']} ms, unknown {unknown}, accept p99 "
            f"{step['accept_latency']['p99_ms']} ms"
        )
        if not keeps_up:
            break
        rate += scale.ladder_step
    sustained = [s for s in steps if s["keeps_up"]]
    best = max(sustained, key=lambda s: s["offered_per_s"]) if sustained else None
    return {
        "command": _phase_command(
            ctx,
            "ladder",
            BENCH_LADDER_START=scale.ladder_start,
            BENCH_LADDER_STEP=scale.ladder_step,
            BENCH_LADDER_MAX=scale.ladder_max,
            BENCH_STEP_S=scale.step_s,
        ),
        "what": "POST /api/v1/charging-requests at fixed offered rates; end to end = 202 → callback received",
        "keeps_up_means": f"no failed request, no unknown, every check passed, decisions/s >= 95 % of the "
        f"offered rate, end-to-end p99 <= {scale.e2e_p99_limit_ms:.0f} ms",
        "steps": steps,
        "max_sustained_offered_per_s": best["offered_per_s"] if best else None,
        "max_sustained_decisions_per_s": best["decisions_per_s"] if best else None,
    }


def phase_sync(ctx: PhaseContext) -> dict[str, Any]:
    scale = ctx.scale
    label = "c) sync authorize"
    _say(f"{ctx.elapsed()} {label}: {scale.sync_s:.0f} s, {scale.sync_concurrency} connections")

    async def go() -> loadgen.LoadState:
        client = ctx.client(scale.sync_concurrency)
        payloads = ctx.authorize_payloads(client)
        try:
            return await loadgen.closed_loop(
                client,
                total=10**9,
                concurrency=scale.sync_concurrency,
                payloads=payloads,
                ok_status=(200,),
                max_duration_s=scale.sync_s,
                progress=_progress(ctx, label),
            )
        finally:
            await client.close()

    cpu0 = ctx.sampler.cpu_seconds()
    t0 = time.monotonic()
    state = asyncio.run(go())
    t1 = time.monotonic()
    cpu = _cpu_delta(cpu0, ctx.sampler.cpu_seconds())
    bodies = [json.loads(s.body) for s in state.samples if s.status == 200]
    answered = {body["request_id"]: body["status"] for body in bodies}
    db = _db_check(list(answered), expect_delivery=False)
    answered_statuses = Counter(answered.values())
    checks = {
        "every_answer_logged_once": db["decision_rows"] == len(answered),
        "logged_status_matches_answer": dict(answered_statuses) == db["statuses"],
        "no_delivery_without_callback_url": db["deliveries"] == 0,
    }
    duration = max(s.done for s in state.samples) - state.started if state.samples else 0.0
    latency = loadgen.latency_summary_ms([s.service_s for s in state.samples if s.status == 200])
    result: dict[str, Any] = {
        "command": _phase_command(
            ctx, "sync", BENCH_SYNC_S=scale.sync_s, BENCH_SYNC_CONCURRENCY=scale.sync_concurrency
        ),
        "what": "POST /api/v1/authorize, closed loop; each answer is a logged decision",
        "concurrency": scale.sync_concurrency,
        "duration_s": round(duration, 2),
        "requests": len(state.samples),
        "answers": _status_counts(state.samples),
        "answered_per_s": round(len(answered) / duration, 1) if duration else None,
        "latency": latency,
        "statuses": dict(answered_statuses),
        "cpu_s": cpu,
        "stack_cpu_s_per_1000_decisions": round(_stack_cpu(cpu, HARNESS) / len(answered) * 1000, 3)
        if answered
        else None,
        "memory": ctx.sampler.rss_between(t0, t1),
        "consistency": {"passed": all(checks.values()), "checks": checks, "db": db},
    }
    _say(
        f"{ctx.elapsed()} {label}: {result['answered_per_s']}/s, p50 {latency['p50_ms']} ms "
        f"p99 {latency['p99_ms']} ms; check {'passed' if result['consistency']['passed'] else 'FAILED'}"
    )
    return result


def _phase_command(ctx: PhaseContext, phase: str, **knobs: Any) -> str:
    parts = [f"BENCH_SCALE={ctx.scale.name}", f"BENCH_PHASES={phase}"]
    parts += [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in knobs.items()]
    named = {part.split("=", 1)[0] for part in parts}
    # The run's own knobs, less those this phase's command already names.
    rest = [word for word in shlex.split(ctx.base_command) if word.split("=", 1)[0] not in named]
    return " ".join(parts) + " " + shlex.join(rest)


def _warmup(ctx: PhaseContext) -> None:
    """A few requests through every hop, so first-use costs (connections, caches) stay out of phase a."""
    n = ctx.scale.warmup_requests

    async def go() -> loadgen.LoadState:
        client = ctx.client(4)
        payloads = ctx.charging_payloads(client)
        sync_payloads = ctx.authorize_payloads(client)
        try:
            state = await loadgen.closed_loop(
                client, total=n, concurrency=4, payloads=payloads, ok_status=(202,)
            )
            await loadgen.closed_loop(
                client, total=20, concurrency=4, payloads=sync_payloads, ok_status=(200,)
            )
            return state
        finally:
            await client.close()

    state = asyncio.run(go())
    accepted = _accepted_ids(state.samples)
    if len(accepted) != n:
        raise RuntimeError(
            f"warm-up: only {len(accepted)} of {n} requests were accepted: {_status_counts(state.samples)}"
        )
    wait_until(
        lambda: not (set(accepted) - ctx.arrivals.first.keys()) if ctx.arrivals.refresh() else False,
        timeout=60,
        what="warm-up callbacks",
    )
    _say(f"{ctx.elapsed()} warm-up: {n} requests decided and called back")


# --- the report --------------------------------------------------------------------------------------


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=True, timeout=10
        ).stdout.rstrip()  # never the left: `status --porcelain` begins with a meaningful blank
    except (OSError, subprocess.SubprocessError):
        return ""


def _machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_total = next((int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemTotal:")), None)
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "nproc": os.cpu_count(),
        "memory_bytes": mem_total,
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def _versions(env: dict[str, str]) -> dict[str, str]:
    from django.db import connection

    versions: dict[str, str] = {}
    with contextlib.suppress(Exception), connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        row = cursor.fetchone()
        versions["postgresql"] = str(row[0]) if row else "?"
    with contextlib.suppress(Exception):
        import redis

        versions["redis"] = str(redis.Redis.from_url(env["REDIS_URL"]).info("server")["redis_version"])
    pom = (REPO / "compose" / "kafka" / "pom.xml").read_text()
    if "<kafka.version>" in pom:
        versions["kafka"] = pom.split("<kafka.version>", 1)[1].split("<", 1)[0]
    import django

    versions["django"] = django.get_version()
    return versions


def _settings_used(env: dict[str, str]) -> dict[str, Any]:
    from django.conf import settings

    return {
        "environment": {k: env[k] for k in STACK_KNOBS if env.get(k)},
        "effective": {
            "api": f"gunicorn project.wsgi --workers {env.get('API_WORKERS', '2')} "
            f"--threads {env.get('API_THREADS', '4')} (compose/local/api.sh)",
            "authorize_worker": f"celery worker -Q authorize --pool {env.get('AUTHORIZE_POOL', 'prefork')} "
            "--concurrency "
            f"{env.get('AUTHORIZE_CONCURRENCY', '2')}",
            "callbacks_worker": f"celery worker -Q callbacks --pool threads --concurrency "
            f"{env.get('CALLBACK_CONCURRENCY', '16')}",
            "CHARGE_PRODUCER_LINGER_MS": settings.CHARGE_PRODUCER_LINGER_MS,
            "CHARGE_BRIDGE_BATCH": settings.CHARGE_BRIDGE_BATCH,
            "CELERY_WORKER_PREFETCH_MULTIPLIER": settings.CELERY_WORKER_PREFETCH_MULTIPLIER,
            "CONN_MAX_AGE": settings.DATABASES["default"].get("CONN_MAX_AGE"),
            "CHARGE_DECISION_TIMEOUT_S": settings.CHARGE_DECISION_TIMEOUT_S,
            "CHARGE_TOPIC_PARTITIONS": settings.CHARGE_TOPIC_PARTITIONS,
            "LOG_LEVEL": settings.LOG_LEVEL,
            "database": settings.DATABASES["default"]["ENGINE"],
        },
    }


def _resources(ctx: PhaseContext, phases: dict[str, Any], pss: dict[str, dict[str, int]]) -> dict[str, Any]:
    memory = ctx.sampler.rss_between(ctx.run_started, time.monotonic())
    ladder = phases.get("ladder", {}).get("steps", [])
    per_step = [
        {
            "offered_per_s": s["offered_per_s"],
            "stack_cpu_s_per_1000_decisions": s["stack_cpu_s_per_1000_decisions"],
        }
        for s in ladder
    ]
    sustained = [s for s in ladder if s["keeps_up"]]
    reference = (
        max(sustained, key=lambda s: s["offered_per_s"]) if sustained else (ladder[-1] if ladder else None)
    )
    groups = dict(ctx.sampler.groups)
    return {
        "command": ctx.base_command,
        "what": "resident memory: sum of RSS over each process group, sampled every second (peak and "
        "mean over the whole run); PSS (shared pages split among the processes sharing them, so the "
        "sum is what the stack occupies) every 5 s and at the end of each phase, its peak sum is the "
        "target's figure; CPU: utime+stime from /proc/<pid>/stat, deltas over each phase",
        "process_groups": groups,
        "memory_whole_run": memory,
        "pss_at_phase_end": pss,
        "stack_peak_rss_bytes": memory.get("stack_total", {}).get("peak_bytes"),
        "stack_peak_pss_bytes": max(
            [sum(p.values()) for p in pss.values()] + [sum(p.values()) for _, p in ctx.sampler.pss_series],
            default=None,
        ),
        "cpu_s_per_1000_decisions_by_ladder_step": per_step,
        "cpu_reference_step": {
            "offered_per_s": reference["offered_per_s"],
            "cpu_s_by_group": reference["cpu_s"],
            "decisions": reference["consistency"]["db"]["decision_rows"],
            "stack_cpu_s_per_1000_decisions": reference["stack_cpu_s_per_1000_decisions"],
        }
        if reference
        else None,
    }


# --- main --------------------------------------------------------------------------------------------


class Interrupted(Exception):
    pass


def _raise_interrupted(signum: int, frame: object) -> None:
    # Once: a second signal (Ctrl-C reaches bench.sh and us, then bench.sh sends TERM) must not cut
    # the cleanup short.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signal.Signals(signum).name)


@contextlib.contextmanager
def _signals(max_run_s: float) -> Iterator[None]:
    """SIGTERM/SIGINT and the run's own time limit (SIGALRM) all end in the cleanup below."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)}
    for sig in previous:
        signal.signal(sig, _raise_interrupted)
    signal.alarm(int(max_run_s) + 1)
    try:
        yield
    finally:
        signal.alarm(0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _bring_up(stack: Stack, scale: Scale, *, flower: bool) -> list[tuple[str, str]]:
    """Seed the database, start the receiver and every process of the stack, wait until all answer."""
    pairs = _seed(stack, scale)
    _start_receiver(stack)
    _start_stack(stack, flower=flower)
    # Generous: on a busy 2-core machine each manage.py in api.sh alone can take 20 s.
    _wait_ready(stack, timeout=240)
    return pairs


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=sorted(SCALES), default=os.environ.get("BENCH_SCALE", "full"))
    parser.add_argument("--out", type=Path, default=None, help="folder for the JSON and PNG (BENCH_OUT)")
    parser.add_argument("--phases", default=os.environ.get("BENCH_PHASES", ",".join(PHASES)))
    parser.add_argument(
        "--work", type=Path, default=None, help="logs and data of the run (default: a temp dir)"
    )
    parser.add_argument("--redis-db", type=int, default=None, help="use this Redis database number")
    parser.add_argument("--no-flower", action="store_true", default=os.environ.get("BENCH_FLOWER") == "0")
    parser.add_argument("--command", default=os.environ.get("BENCH_COMMAND", "make bench"))
    args = parser.parse_args(argv)
    args.phase_list = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(args.phase_list) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases {sorted(unknown)}; choose from {PHASES}")
    return args


def _service_groups(stack: Stack) -> dict[str, int]:
    """Process groups to watch: ours by leader pid; Kafka, Redis, PostgreSQL by their listening port."""
    groups = {name: p.pid for name, p in stack.processes.items() if name != "receiver"}
    for name, var in (
        ("kafka", "KAFKA_BOOTSTRAP_SERVERS"),
        ("redis", "REDIS_URL"),
        ("postgres", "DATABASE_URL"),
    ):
        port = _port_of(stack.env[var])
        pid = listener_pid(port) if port else None
        pgid = group_of(pid) if pid else None
        if pgid:
            groups[name] = pgid
        else:
            _say(f"bench: cannot find the {name} process (port {port}); its memory and CPU are not counted")
    return groups


# Tasks a worker has taken but not acknowledged yet (acks_late) sit in this hash of the Redis transport.
CELERY_UNACKED_KEY = "unacked"


def _settle(ctx: PhaseContext, label: str, *, max_wait_s: float = 600.0) -> dict[str, Any]:
    """Wait until the Celery queues are empty, so a phase does not pay for the backlog of the one before.

    A step that fell behind leaves tasks queued for requests the deadline sweep has already answered
    `unknown`: they are no-ops for the decision log, yet each still costs a worker a task's CPU.
    """
    import redis

    from workers.tasks import AUTHORIZE_QUEUE, CALLBACKS_QUEUE

    client = redis.Redis.from_url(ctx.stack.env["REDIS_URL"])
    started = time.monotonic()
    limit = min(max_wait_s, max(ctx.time_left() - 60.0, 0.0))
    shown = started
    try:
        while True:
            backlog = {queue: int(client.llen(queue)) for queue in (AUTHORIZE_QUEUE, CALLBACKS_QUEUE)}
            backlog["unacked"] = int(client.hlen(CELERY_UNACKED_KEY))
            waited = time.monotonic() - started
            if not any(backlog.values()) or waited >= limit:
                break
            if time.monotonic() - shown >= 5.0:
                _say(f"{ctx.elapsed()} {label}: waiting for the queues to empty first: {backlog}")
                shown = time.monotonic()
            time.sleep(0.5)
    finally:
        client.close()
    if any(backlog.values()):
        _say(f"{ctx.elapsed()} {label}: starting with tasks still queued after {waited:.0f} s: {backlog}")
    return {"waited_s": round(waited, 1), "left_queued": backlog}


def _run_phases(ctx: PhaseContext, phases: Sequence[str]) -> dict[str, Any]:
    runners = {"burst": phase_burst, "accept": phase_accept, "ladder": phase_ladder, "sync": phase_sync}
    results: dict[str, Any] = {}
    pss: dict[str, dict[str, int]] = {}
    _warmup(ctx)
    idle = _idle(ctx)
    for phase in PHASES:
        if phase in phases:
            settled = _settle(ctx, phase)
            # The ladder profiles each of its steps by itself.
            with contextlib.nullcontext() if phase == "ladder" else ctx.profiler.during(phase):
                results[phase] = runners[phase](ctx)
            results[phase]["settled_before"] = settled
            pss[phase] = ctx.sampler.pss()
    results["resources"] = _resources(ctx, results, pss)
    results["resources"]["idle"] = idle
    return results


def _idle(ctx: PhaseContext) -> dict[str, Any]:
    """CPU of every process while nothing is sent: polling, heartbeats, sweeps, Flower's refreshes."""
    _settle(ctx, "idle")
    seconds = ctx.scale.idle_s
    cpu0 = ctx.sampler.cpu_seconds()
    time.sleep(seconds)
    cpu = _cpu_delta(cpu0, ctx.sampler.cpu_seconds())
    cores = {name: round(value / seconds, 3) for name, value in cpu.items()}
    stack = round(_stack_cpu(cpu, HARNESS) / seconds, 3)
    _say(f"{ctx.elapsed()} idle: the stack uses {stack} cores with no load ({seconds:g} s)")
    return {
        "what": "CPU cores used by each process with no load, after the warm-up and with the queues empty",
        "duration_s": seconds,
        "cpu_cores": cores,
        "stack_cpu_cores": stack,
    }


def _consistency_passed(results: dict[str, Any]) -> bool:
    checked = [r["consistency"]["passed"] for name, r in results.items() if "consistency" in r]
    checked += [s["consistency"]["passed"] for s in results.get("ladder", {}).get("steps", [])]
    return bool(checked) and all(checked)


def _document(
    *,
    scale: Scale,
    env: dict[str, str],
    results: dict[str, Any],
    started_at: datetime,
    run_started: float,
    load_before: tuple[float, float, float],
    base_command: str,
    profiler: Profiler,
    failed: str | None,
) -> dict[str, Any]:
    return {
        "schema": "charge-bench/1",
        "scale": scale.name,
        "scale_parameters": asdict(scale),
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - run_started, 1),
        "command": base_command,
        "machine": {**_machine(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "commit": {
            "sha": _git("rev-parse", "HEAD"),
            # -z: NUL-separated "XY path" entries, paths never quoted.
            "dirty_files": [entry[3:] for entry in _git("status", "--porcelain", "-z").split("\0") if entry],
        },
        "versions": _versions(env),
        "settings": _settings_used(env),
        "phases": results,
        "profiles": profiler.outputs,
        "interrupted": failed,
        "consistency_passed": _consistency_passed(results),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    scale, knobs = _scale_from_env(args.scale)
    out_dir = args.out or Path(
        os.environ.get("BENCH_OUT") or (RESULTS if scale.name == "full" else REPO / ".local" / "bench")
    )
    base_command = " ".join([*(f"{k}={shlex.quote(v)}" for k, v in knobs.items()), args.command])
    work = args.work or Path(tempfile.mkdtemp(prefix="charge-bench-run-"))
    work.mkdir(parents=True, exist_ok=True)

    env = _stack_env(work, args)
    _django_setup(env)
    stack = Stack(work=work, env=env, api_port=int(env["API_PORT"]))
    run_started = time.monotonic()
    started_at = datetime.now(UTC)
    load_before = os.getloadavg()
    _say(
        f"bench: scale {scale.name}, phases {','.join(args.phase_list)}, load average {load_before[0]:.2f} "
        f"on {os.cpu_count()} cores, work dir {work}"
    )
    if load_before[0] > 1.5 and scale.name == "full":
        _say("bench: WARNING the machine is busy (load > 1.5): figures will be lower than on a quiet one")
    results: dict[str, Any] = {}
    profiler = Profiler.from_env(out_dir / "profiles", stamp=started_at.strftime("%Y%m%d-%H%M%S"))
    sampler: GroupSampler | None = None
    failed: str | None = None
    try:
        with _signals(scale.max_run_s):
            pairs = _bring_up(stack, scale, flower=not args.no_flower)
            sampler = GroupSampler(
                _service_groups(stack),
                harness={"harness_loadgen": os.getpid(), "harness_receiver": stack.processes["receiver"].pid},
            ).start()
            profiler.attach({name: p.pid for name, p in stack.processes.items()})
            ctx = PhaseContext(
                stack=stack,
                scale=scale,
                pairs=pairs,
                arrivals=Arrivals(stack.receiver_port),
                sampler=sampler,
                profiler=profiler,
                base_command=base_command,
                run_started=run_started,
                deadline=run_started + scale.max_run_s,
            )
            results = _run_phases(ctx, args.phase_list)
    except (Interrupted, KeyboardInterrupt) as exc:
        failed = f"interrupted ({exc})"
    except Exception as exc:
        failed = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if sampler is not None:
            sampler.stop()
        profiler.stop()
        _say(f"bench: stopping the stack{' (' + failed + ')' if failed else ''}")
        if failed:
            for name, process in stack.processes.items():
                _say(f"--- {name} log tail ---\n{process.log_tail(15)}")
        stack.stop_all()

    document = _document(
        scale=scale,
        env=env,
        results=results,
        started_at=started_at,
        run_started=run_started,
        load_before=load_before,
        base_command=base_command,
        profiler=profiler,
        failed=failed,
    )
    document["targets"] = report.targets(document)
    paths = report.write(document, out_dir)
    _say(f"bench: report {paths['json']}")
    _say(f"bench: plot   {paths['png']}")
    _say("")
    _say(report.markdown_table(document))
    if failed:
        return 1
    return 0 if document["consistency_passed"] else 3


def _port_of(url: str) -> int | None:
    netloc = url if "://" not in url else urlsplit(url).netloc
    host_port = netloc.rsplit("@", 1)[-1].split(",")[0]
    try:
        return int(host_port.rsplit(":", 1)[1].split("/")[0])
    except (IndexError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main())
