"""The benchmark's sizes and knobs: the scales, the environment variables that override them."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.processes import REPO

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


def scale_from_env(name: str) -> tuple[Scale, dict[str, str]]:
    scale = SCALES[name]
    given: dict[str, str] = {}
    for var, (attr, kind) in ENV_KNOBS.items():
        if os.environ.get(var):
            scale = replace(scale, **{attr: kind(os.environ[var])})
            given[var] = os.environ[var]
    return scale, given


def say(message: str) -> None:
    print(message, flush=True)
