"""Flower, as `make run` starts it: behind basic auth, listing the worker and its named tasks."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from harness.processes import Process, free_port, wait_until
from tests.integration.conftest import Pipeline

CELERY = str(Path(sys.executable).with_name("celery"))


def test_flower_asks_for_a_password_and_lists_the_worker_and_its_tasks(pipeline: Pipeline) -> None:
    worker = pipeline.start_worker()
    port = free_port()
    flower = Process(
        "flower",
        [
            CELERY,
            "-A",
            "workers",
            "flower",
            "--address=127.0.0.1",
            f"--port={port}",
            "--basic-auth=ops:s3cret",
        ],
        pipeline.log_dir / "flower.log",
        env=pipeline.env,
    ).start()
    pipeline.processes.append(flower)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(base, timeout=2).status_code in (200, 401), timeout=60, what="flower")

    assert httpx.get(f"{base}/api/workers", timeout=5).status_code == 401

    workers: dict[str, object] = {}

    def listed() -> bool:
        flower.ensure_running()
        answer = httpx.get(f"{base}/api/workers?refresh=1", auth=("ops", "s3cret"), timeout=10)
        workers.update(answer.json() if answer.status_code == 200 else {})
        return any(name.startswith("test-") for name in workers)

    wait_until(listed, timeout=60, what="flower to list the worker")
    assert worker.alive()
    [info] = [value for name, value in workers.items() if name.startswith("test-")]
    registered = set(info["registered"])  # type: ignore[index]
    assert {
        "charging.authorize",
        "callbacks.deliver",
        "charging.expire_overdue",
        "callbacks.dispatch_due",
    } <= registered
