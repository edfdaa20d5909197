"""A benchmark-only WSGI app: what the api's figures are bounded by on this machine.

benchmarks/floors.py serves it with the api's own server script (compose/local/serve.sh: granian,
workers, threads, access log) and the project's settings and middleware (benchmarks.floor_settings
only swaps the URLconf for this module), then drives it with the benchmark's load generator:

  POST /api/floor/noop     a django-ninja route that does nothing: the server, Django's middleware
                           and ninja per request; the floor of the synchronous routes
  POST /api/floor/produce  produces the body's station_id, driver_token and callback_url as a
                           ChargeRequestV1 with the api's producer (apps.charging.producer: acks=all,
                           idempotence, the same linger) and answers 202 once the broker acknowledged;
                           the accept route without its key check, rate limit, validation and
                           idempotency; the floor of the accept figures

Never part of project/urls.py: only a server started with DJANGO_SETTINGS_MODULE=
benchmarks.floor_settings serves it.
"""

# Django is set up first: ninja and the apps read the settings when they are imported.
# ruff: noqa: E402

from __future__ import annotations

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.floor_settings"

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()

import json
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import path
from django.utils import timezone
from ninja import NinjaAPI

from apps.charging.messages import ChargeRequestV1
from apps.charging.producer import ProduceFailed, request_produce

api = NinjaAPI(title="Charge Service benchmark floors", urls_namespace="floor", docs_url=None)


@api.post("/noop", response=dict)
def noop(request: HttpRequest) -> dict[str, Any]:
    """Nothing at all."""
    return {}


@api.post("/produce", response={202: dict, 503: dict})
def produce(request: HttpRequest) -> tuple[int, dict[str, Any]]:
    """One request to Kafka through the api's producer, answered once the broker acknowledged it."""
    fields = json.loads(request.body)
    now = timezone.now()
    message = ChargeRequestV1(
        request_id=uuid.uuid4(),
        client_id=None,
        station_id=fields["station_id"],
        driver_token=fields["driver_token"],
        callback_url=fields["callback_url"],
        received_at=now,
        deadline=now + timedelta(seconds=settings.CHARGE_DECISION_TIMEOUT_S),
    )
    try:
        request_produce(message=message)
    except ProduceFailed:
        return 503, {"status": "failed"}
    return 202, {"request_id": str(message.request_id)}


urlpatterns = [path("api/floor/", api.urls)]
