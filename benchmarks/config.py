"""The benchmark's sizes and knobs: the scales, the environment variables that override them."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.processes import REPO

PYTHON = sys.executable
VENV_BIN = Path(sys.executable).parent
RESULTS = REPO / "benchmarks" / "results"
# The stack's phases, in the order they run; then the floors (with the stack stopped).
STACK_PHASES = ("burst", "accept", "ladder", "sync_callback", "sync", "ocpp")
PHASES = (*STACK_PHASES, "floors")
FLOORS = ("celery", "kafka", "http")
# BENCH_DB: which databases the stack's phases run on; "both" runs a second, shorter pass on SQLite.
DATABASES = ("postgres", "sqlite", "both")


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
    # The OCPP phase: stations on the gateway, each sending Authorize at this rate for ocpp_s; after
    # the gateway's restart, how long to wait for every station to be answered again.
    ocpp_stations: int = 200
    ocpp_rate_per_s: float = 2.0
    ocpp_s: float = 30.0
    ocpp_reconnect_wait_s: float = 20.0
    # The stack's CPU with no load at all, after the warm-up: the floor every rate pays.
    idle_s: float = 10.0
    # postgres, sqlite or both (BENCH_DB); the SQLite pass of "both" runs these phases, with ladder
    # steps of at most sqlite_step_s.
    database: str = "both"
    sqlite_phases: str = "ladder,sync_callback"
    sqlite_step_s: float = 20.0
    # Floors: requests per HTTP floor burst; Kafka round trips at these rates for floor_kafka_s each,
    # then floor_kafka_max messages as fast as the producer takes them; no-op Celery tasks per pool.
    floor_requests: int = 3000
    floor_kafka_rates: tuple[int, ...] = (100, 400, 1000)
    floor_kafka_s: float = 10.0
    floor_kafka_max: int = 20_000
    floor_celery_tasks: int = 4000
    # Both worker pools of the stack (authorize: prefork, callbacks: threads), or the first only.
    floor_celery_both_pools: bool = True
    # Floors measured while the stack starts, not after it stopped: only where no figure matters
    # (tiny, for `make test`), as their processes compete with the stack's start-up for the cores.
    floors_during_startup: bool = False


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
        ocpp_stations=10,
        ocpp_s=2,
        idle_s=1,
        database="postgres",
        sqlite_step_s=2,
        floor_requests=100,
        floor_kafka_rates=(100,),
        floor_kafka_s=1,
        floor_kafka_max=300,
        floor_celery_tasks=50,
        floor_celery_both_pools=False,
        floors_during_startup=True,
    ),
    "full": Scale(
        name="full",
        # DESIGN "Targets": a burst of 3,000 requests on 64 connections, the pipeline running.
        burst_requests=3000,
        burst_min_s=0,
        burst_concurrency=64,
        accept_rate=400,
        accept_s=30,
        # 50, then 100, 200, 300... (benchmarks.ladder.ladder_rates)
        ladder_start=50,
        ladder_step=100,
        ladder_max=1500,
        step_s=30,
        sync_s=30,
        # DESIGN "Targets": synchronous decisions on 8 connections.
        sync_concurrency=8,
        open_loop_connections=256,
        drain_stall_s=90,
        warmup_requests=200,
        e2e_p99_limit_ms=1000,
        max_run_s=5400,
    ),
}

# Environment knobs → Scale fields. Each one set is repeated in the "command" of every figure.
ENV_KNOBS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "BENCH_WARMUP_N": ("warmup_requests", int),
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
    "BENCH_OCPP_STATIONS": ("ocpp_stations", int),
    "BENCH_OCPP_RATE": ("ocpp_rate_per_s", float),
    "BENCH_OCPP_S": ("ocpp_s", float),
    "BENCH_DB": ("database", str),
    "BENCH_SQLITE_PHASES": ("sqlite_phases", str),
    "BENCH_SQLITE_STEP_S": ("sqlite_step_s", float),
    "BENCH_FLOOR_N": ("floor_requests", int),
    "BENCH_FLOOR_KAFKA_RATES": ("floor_kafka_rates", lambda v: tuple(int(r) for r in v.split(",") if r)),
    "BENCH_FLOOR_KAFKA_S": ("floor_kafka_s", float),
    "BENCH_FLOOR_KAFKA_MAX": ("floor_kafka_max", int),
    "BENCH_FLOOR_CELERY_TASKS": ("floor_celery_tasks", int),
}

# Knobs that change only these phases' figures: a figure's command leaves out the other phases' knobs
# (and the SQLite pass's, which its own commands spell out as BENCH_DB=sqlite and BENCH_STEP_S).
PHASE_KNOBS = {
    "burst": ("BENCH_BURST_",),
    "accept": ("BENCH_ACCEPT_",),
    "ladder": ("BENCH_LADDER_", "BENCH_STEP_S", "BENCH_E2E_P99_LIMIT_MS"),
    "sync_callback": ("BENCH_SYNC_",),
    "sync": ("BENCH_SYNC_",),
    "ocpp": ("BENCH_OCPP_",),
    "floors": ("BENCH_FLOOR",),
    "idle": ("BENCH_IDLE_S",),
    "sqlite": ("BENCH_SQLITE_",),
}


def figure_command(base_command: str, *, phase: str, named: dict[str, object]) -> str:
    """The command that measures one phase's figures: `named` first, then the run's own knobs less
    those it names and those of the other phases, then the command itself (`make bench`)."""
    parts = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in named.items()]
    others = tuple(prefix for name, prefixes in PHASE_KNOBS.items() if name != phase for prefix in prefixes)
    mine = PHASE_KNOBS.get(phase, ())
    rest = []
    for word in shlex.split(base_command):
        name = word.split("=", 1)[0]
        if "=" in word and (name in named or (name.startswith(others) and not name.startswith(mine))):
            continue
        rest.append(word)
    return " ".join(parts) + " " + shlex.join(rest)


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
    "CHARGE_PRODUCER_MAX_IN_FLIGHT",
    "CHARGE_CALLBACK_PUBLISH_LINGER_MS",
    "CHARGE_BRIDGE_BATCH",
    "CHARGE_BRIDGE_FETCH_MIN_BYTES",
    "CHARGE_BRIDGE_FETCH_WAIT_MS",
    "CHARGE_BRIDGE_BUSY_LINGER_MS",
    "CHARGE_BRIDGE_FETCH_BACKOFF_MS",
    "CHARGE_BRIDGE_DECIDES",
    "CHARGE_BRIDGE_CALLBACK_THREADS",
    "CELERY_WORKER_PREFETCH_MULTIPLIER",
    "DB_CONN_MAX_AGE",
    "LOG_LEVEL",
    "CHARGE_DECISION_TIMEOUT_S",
    "CHARGE_TOPIC_PARTITIONS",
    "KAFKA_HEAP_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS",
    "FLOWER_MAX_TASKS",
    "OCPP_DB_THREADS",
    "OCPP_AUTHORIZE_BATCH",
    "OCPP_AUTHORIZE_LOOPS",
    "OCPP_DB_PREPARED_STATEMENTS",
)


def scale_from_env(name: str, environ: Mapping[str, str] | None = None) -> tuple[Scale, dict[str, str]]:
    """The named scale with every knob set in the environment; and those knobs, as given."""
    environ = os.environ if environ is None else environ
    scale = SCALES[name]
    given: dict[str, str] = {}
    for var, (attr, kind) in ENV_KNOBS.items():
        if environ.get(var):
            scale = replace(scale, **{attr: kind(environ[var])})
            given[var] = environ[var]
    if scale.database not in DATABASES:
        raise SystemExit(f"bench: BENCH_DB must be one of {', '.join(DATABASES)}, not {scale.database!r}")
    return scale, given


def say(message: str) -> None:
    print(message, flush=True)
