"""The report's document: machine, commit, versions, settings, resources, and the phases' results."""

# Django and the apps are imported inside functions: only after the environment is prepared.
# ruff: noqa: PLC0415

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.config import STACK_KNOBS, Scale
from benchmarks.context import PhaseContext
from benchmarks.profiling import Profiler
from harness.processes import REPO

# --- the report --------------------------------------------------------------------------------------


def git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=True, timeout=10
        ).stdout.rstrip()  # never the left: `status --porcelain` begins with a meaningful blank
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict[str, Any]:
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


def versions(env: dict[str, str]) -> dict[str, str]:
    from django.db import connection

    versions: dict[str, str] = {}
    if connection.vendor == "sqlite":
        import sqlite3

        versions["sqlite"] = sqlite3.sqlite_version
    else:
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


def settings_used(env: dict[str, str]) -> dict[str, Any]:
    from django.conf import settings

    return {
        "environment": {k: env[k] for k in STACK_KNOBS if env.get(k)},
        "effective": {
            "api": f"granian project.wsgi:application --workers {env.get('API_WORKERS', '1')} "
            f"--blocking-threads {env.get('API_THREADS', '8')} (compose/local/serve.sh)",
            "authorize_worker": f"celery worker -Q authorize --pool {env.get('AUTHORIZE_POOL', 'threads')} "
            "--concurrency "
            f"{env.get('AUTHORIZE_CONCURRENCY', '4')}",
            "callbacks_worker": f"celery worker -Q callbacks --pool threads --concurrency "
            f"{env.get('CALLBACK_CONCURRENCY', '16')}",
            "CHARGE_PRODUCER_LINGER_MS": settings.CHARGE_PRODUCER_LINGER_MS,
            "CHARGE_PRODUCER_MAX_IN_FLIGHT": settings.CHARGE_PRODUCER_MAX_IN_FLIGHT,
            "CHARGE_BRIDGE_BATCH": settings.CHARGE_BRIDGE_BATCH,
            "CELERY_WORKER_PREFETCH_MULTIPLIER": settings.CELERY_WORKER_PREFETCH_MULTIPLIER,
            "CONN_MAX_AGE": settings.DATABASES["default"].get("CONN_MAX_AGE"),
            "CHARGE_DECISION_TIMEOUT_S": settings.CHARGE_DECISION_TIMEOUT_S,
            "CHARGE_TOPIC_PARTITIONS": settings.CHARGE_TOPIC_PARTITIONS,
            "LOG_LEVEL": settings.LOG_LEVEL,
            "database": settings.DATABASES["default"]["ENGINE"],
        },
    }


def resources_summary(
    ctx: PhaseContext, phases: dict[str, Any], pss: dict[str, dict[str, int]]
) -> dict[str, Any]:
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
            "cpu_ms_per_decision": reference["cpu_ms_per_decision"],
            "stack_cpu_ms_per_decision": reference["stack_cpu_ms_per_decision"],
            "stack_cpu_s_per_1000_decisions": reference["stack_cpu_s_per_1000_decisions"],
        }
        if reference
        else None,
    }


def consistency_passed(results: dict[str, Any]) -> bool:
    checked = [r["consistency"]["passed"] for name, r in results.items() if "consistency" in r]
    checked += [s["consistency"]["passed"] for s in results.get("ladder", {}).get("steps", [])]
    return bool(checked) and all(checked)


def document_build(
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
        "schema": "charge-bench/2",
        "scale": scale.name,
        # What the stack's phases ran on: postgres (DATABASE_URL) or sqlite (`make run`'s default).
        "database": "postgres" if env.get("DATABASE_URL") else "sqlite",
        "scale_parameters": asdict(scale),
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - run_started, 1),
        "command": base_command,
        "machine": {**machine(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "commit": {
            "sha": git("rev-parse", "HEAD"),
            # -z: NUL-separated "XY path" entries, paths never quoted. Reports (this run's own
            # SQLite pass among them) are not the code measured.
            "dirty_files": [
                entry[3:]
                for entry in git("status", "--porcelain", "-z").split("\0")
                if entry and not entry[3:].startswith("benchmarks/results/")
            ],
        },
        "versions": versions(env),
        "settings": settings_used(env),
        "phases": results,
        "profiles": profiler.outputs,
        "interrupted": failed,
        "consistency_passed": consistency_passed(results),
    }
