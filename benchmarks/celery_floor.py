"""What one Celery task costs on this machine before any work of ours: the pipeline's floor.

Every batch of decisions is two Celery tasks (charging.authorize, then callbacks.deliver). This measures a
task that does almost nothing (`ops.ping`: one Redis SET) through the same broker settings as the
stack (Redis, acks_late, task events on), for each pool, so the report can say how much of the CPU
per decision is Celery's own and what throughput two tasks per batch allow at most.

    .venv/bin/python -m benchmarks.celery_floor [--tasks 4000] [--out benchmarks/results]

It starts its own redis-server on a free loopback port (compose/local/redis.sh) and a worker per
pool in its own process group, and stops both. `make bench` measures the same (`measure`) on its
own Redis with the stack's two pools, as one of its floors (benchmarks/floors.py). Per pool: a
warm-up task, then N tasks queued at once; the figures are wall time and the worker's CPU seconds
(main process + pool) from the first of the N tasks queued to the last one done, per task.
"""

# Django is imported inside functions: only after the environment points at our Redis.
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from apps.core.tasks import PING_TASK
from benchmarks.processes import GroupSampler, local_service, small_report_write
from harness.processes import REPO, Process, free_port, wait_until

QUEUE = "bench-floor"
POOLS = (("prefork", 2), ("threads", 8), ("solo", 1))


def _redis(port: int, db: int) -> str:
    return f"redis://127.0.0.1:{port}/{db}"


def measure(
    *,
    pool: str,
    concurrency: int,
    tasks: int,
    broker_url: str,
    pings_url: str,
    work: Path,
    base_env: dict[str, str] | None = None,
) -> dict[str, object]:
    """Start a worker of `pool` on queue bench-floor, run `tasks` no-op tasks through it, stop it.

    The broker may be shared (make bench uses the stack's Redis, the stack stopped): only this
    queue and keys named by this run's nonces are touched.
    """
    import redis
    from celery import current_app

    broker = redis.Redis.from_url(broker_url)
    pings = redis.Redis.from_url(pings_url)  # ops.ping writes one key per task here
    broker.delete(QUEUE)
    run = uuid.uuid4().hex[:8]
    keys = [f"charge:ping:floor-{run}-{i}" for i in range(tasks)]
    env = {
        **(os.environ if base_env is None else base_env),
        "CELERY_BROKER_URL": broker_url,
        "REDIS_URL": pings_url,
        "CELERY_TASK_LOG_LEVEL": "WARNING",
        "LOG_LEVEL": "WARNING",
    }
    argv = [str(Path(sys.executable).parent / "celery"), "-A", "workers", "worker", "-Q", QUEUE, "-E"]
    argv += ["--pool", pool, "--concurrency", str(concurrency), "--loglevel", "WARNING"]
    hostname = f"floor-{pool}-{run}@%h"
    argv += ["--hostname", hostname]
    worker = Process(f"worker-{pool}", argv, work / f"floor-worker-{pool}.log", env).start()
    try:
        warm = f"floor-{run}-warm-up"
        current_app.send_task(PING_TASK, kwargs={"nonce": warm}, queue=QUEUE)

        def warmed() -> bool:
            worker.ensure_running()
            return pings.exists(f"charge:ping:{warm}") == 1

        wait_until(warmed, timeout=120, what=f"{pool} worker")
        sampler = GroupSampler({"worker": worker.pid}).start()
        cpu_before = sampler.cpu_seconds()["worker"]
        started = time.monotonic()
        with current_app.producer_or_acquire() as producer:
            for i in range(tasks):
                current_app.send_task(
                    PING_TASK, kwargs={"nonce": f"floor-{run}-{i}"}, queue=QUEUE, producer=producer
                )

        def all_done() -> bool:
            # The last one sent is among the last done: only then count them all.
            return pings.exists(keys[-1]) == 1 and pings.exists(*keys) == tasks

        wait_until(all_done, timeout=600, what=f"{tasks} tasks", interval=0.05)
        wall = time.monotonic() - started
        cpu = sampler.cpu_seconds()["worker"] - cpu_before
        sampler.stop()
    finally:
        worker.stop()
        broker.close()
        pings.close()
    result = {
        "pool": pool,
        "concurrency": concurrency,
        "worker_hostname": hostname,
        "tasks": tasks,
        "wall_s": round(wall, 2),
        "tasks_per_s": round(tasks / wall, 1),
        "worker_cpu_s": round(cpu, 2),
        "cpu_ms_per_task": round(cpu * 1000 / tasks, 2),
    }
    print(
        f"floor: {pool} x{concurrency}: {result['tasks_per_s']} tasks/s, "
        f"{result['cpu_ms_per_task']} ms CPU per task",
        flush=True,
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=4000)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()

    load_before = os.getloadavg()  # before our own Redis and workers add to it
    work = Path(tempfile.mkdtemp(prefix="charge-floor-"))
    port = free_port()
    local_service("redis.sh", "start", data=work / "redis", port=port)
    try:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="project.settings",
            SECRET_KEY=os.environ.get("SECRET_KEY", "celery-floor-only-secret-key"),
            CELERY_BROKER_URL=_redis(port, 0),
            REDIS_URL=_redis(port, 1),
            CHARGE_LOCAL_DIR=str(work / "local"),
        )
        import django

        django.setup()
        results = [
            measure(
                pool=pool,
                concurrency=n,
                tasks=args.tasks,
                broker_url=_redis(port, 0),
                pings_url=_redis(port, 1),
                work=work,
            )
            for pool, n in POOLS
        ]
    finally:
        local_service("redis.sh", "stop", data=work / "redis", check=False)
    path = small_report_write(
        args.out,
        stem="celery-floor",
        what="CPU and wall time of a near-empty Celery task (ops.ping: one Redis SET), task events on",
        command=f".venv/bin/python -m benchmarks.celery_floor --tasks {args.tasks}",
        load_before=load_before,
        results=results,
    )
    print(f"floor: report {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
