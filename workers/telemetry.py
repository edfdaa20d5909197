"""Celery signal handlers: each task's log lines carry its request_id; a worker serves its metrics.

Connected when the Celery app is imported (workers/__init__.py), so every worker, beat and Flower
process has them; only worker processes ever fire them.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog
from celery.signals import task_postrun, task_prerun, worker_init
from django.conf import settings

from apps.core.tasks import SWEEP_TASKS


@task_prerun.connect
def _bind_task_context(task_id: str | None = None, task: Any = None, kwargs: Any = None, **_: Any) -> None:
    """Every line a task logs (and Celery's own "succeeded" line) carries the task's request_id."""
    structlog.contextvars.clear_contextvars()
    context = {"task": getattr(task, "name", None), "task_id": task_id}
    request_id = kwargs.get("request_id") if isinstance(kwargs, dict) else None
    if request_id:
        context["request_id"] = str(request_id)
    structlog.contextvars.bind_contextvars(**context)


@task_postrun.connect
def _clear_task_context(**_: Any) -> None:
    # A pool process or thread runs many tasks: the next one starts clean.
    structlog.contextvars.clear_contextvars()


@worker_init.connect
def _serve_worker_metrics(**_: Any) -> None:
    """The worker's main process serves what its pool processes write to PROMETHEUS_MULTIPROC_DIR."""
    from apps.monitoring.exposition import metrics_server_start  # noqa: PLC0415 - Django is set up by now

    metrics_server_start(port=settings.CHARGE_WORKER_METRICS_PORT, process="worker")


class IdleSweepFilter(logging.Filter):
    """Drops Celery's "succeeded" line of a sweep that handled nothing: at rest, the log stays quiet."""

    def filter(self, record: logging.LogRecord) -> bool:
        details = record.args if isinstance(record.args, dict) else {}
        return not (details.get("name") in SWEEP_TASKS and str(details.get("return_value")) == "0")
