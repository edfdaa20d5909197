"""Liveness and readiness probes. No authentication: load balancers and supervisors call these."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from ninja import Router, Schema

from apps.monitoring.readiness import readiness_check

router = Router(tags=["health"])


class Liveness(Schema):
    status: str


class CheckOut(Schema):
    ok: bool
    ms: float
    error: str | None = None


class Readiness(Schema):
    status: str
    checks: dict[str, CheckOut]


@router.get("/healthz", response=Liveness, auth=None)
def healthz(request: HttpRequest) -> Liveness:
    """The process is alive and serving requests; checks nothing else."""
    return Liveness(status="ok")


# Out of the OpenAPI document: a probe for the platform (like /metrics), not a route for API clients.
@router.get("/readyz", response={200: Readiness, 503: Readiness}, auth=None)
def readyz(request: HttpRequest) -> tuple[int, Readiness]:
    """Ready for traffic: the database, Redis and Kafka (the request topic's metadata) each answered
    within CHARGE_READYZ_TIMEOUT_S (1 s); 503 naming the failed check otherwise."""
    results = readiness_check(timeout_s=settings.CHARGE_READYZ_TIMEOUT_S)
    ready = all(result.ok for result in results.values())
    checks = {
        name: CheckOut(ok=result.ok, ms=result.ms, error=result.error) for name, result in results.items()
    }
    return (200 if ready else 503), Readiness(status="ok" if ready else "unavailable", checks=checks)
