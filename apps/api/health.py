"""Liveness and readiness probes. No authentication: load balancers and supervisors call these."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router, Schema

router = Router(tags=["health"])


class Liveness(Schema):
    status: str


@router.get("/healthz", response=Liveness, auth=None)
def healthz(request: HttpRequest) -> Liveness:
    """The process is alive and serving requests; checks nothing else."""
    return Liveness(status="ok")
