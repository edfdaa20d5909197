"""Per HTTP request: a fresh log context, and the request counted by its URL pattern and status."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from apps.monitoring.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "<unmatched>"


def request_route(request: HttpRequest) -> str:
    """The URL pattern that served the request ("/api/v1/charging-requests/<request_id>"), never the path."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        # Answered before URL resolution (413, 415, 400 from a middleware): resolve it here.
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return UNMATCHED_ROUTE
    return "/" + match.route


class RequestMetricsMiddleware:
    """Counts every answer by method, route and status, and clears the log context around it.

    The services bind request_id (structlog contextvars) once they have one; clearing here, before
    and after, keeps a thread of a threaded server from carrying it into its next request.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        structlog.contextvars.clear_contextvars()
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        finally:
            structlog.contextvars.clear_contextvars()
        method = request.method if request.method in KNOWN_METHODS else "OTHER"
        route = request_route(request)
        HTTP_REQUESTS.labels(method=method, route=route, status=str(response.status_code)).inc()
        HTTP_REQUEST_SECONDS.labels(method=method, route=route).observe(time.perf_counter() - started)
        return response
