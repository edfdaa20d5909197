"""The Celery app. Workers, beat and Flower start from here: `celery -A workers ...`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("charge")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"], related_name="tasks")

# Signal handlers: request_id in task logs, the worker's metrics port.
from workers import telemetry  # noqa: E402, F401
