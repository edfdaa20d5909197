"""Request checks that come before routing, so every route answers them the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost, TooManyFieldsSent
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.module_loading import import_string

from apps.access.identifiers import text_unstorable
from apps.api.errors import error_as_json, host_refused

ADMIN_PREFIX = "/admin/"
API_PREFIX = "/api/"
JSON_ROUTES_PREFIX = "/api/v1/"
BODY_METHODS = {"POST", "PUT", "PATCH"}


class RequestShapeMiddleware:
    """415 for a non-JSON body on /api/v1 (the original routes keep accepting forms); 400 for query text
    the database cannot store. Bodies are checked by their parser (apps/api/body.py), which can name
    the field."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        has_body = request.headers.get("Content-Length", "0") not in ("", "0")
        if (
            request.method in BODY_METHODS
            and request.path.startswith(JSON_ROUTES_PREFIX)
            and has_body
            and request.content_type != "application/json"
        ):
            sent = request.content_type or "no content type"
            return JsonResponse({"detail": f"send the body as application/json, not {sent}"}, status=415)
        try:
            query = request.GET.lists()
        except TooManyFieldsSent:
            return JsonResponse({"detail": "the query string holds more parameters than allowed"}, status=400)
        for name, values in query:
            for text in (name, *values):
                reason = text_unstorable(text)
                if reason is not None:
                    return JsonResponse({"detail": f"query parameter {name!r}: {reason}"}, status=400)
        return self.get_response(request)


class JsonErrorsMiddleware:
    """Every answer outside the admin is JSON, errors included, whether DEBUG is on or not.

    Outermost but for the metrics, so that it sees what Django made of an error raised anywhere
    below: its 404 page (DEBUG's lists every URL pattern), its 500 page (DEBUG's is the traceback,
    which is logged, with the answer's request_id, by Django). The Host is checked first: with
    DEBUG on, Django answers a Host it does not serve with its technical page too.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            request.get_host()
        except DisallowedHost:
            return host_refused(request, request.META.get("HTTP_HOST", ""))
        response = self.get_response(request)
        if (
            response.status_code < 400
            or request.path.startswith(ADMIN_PREFIX)
            or response.streaming
            or str(response.get("Content-Type", "")).startswith("application/json")
        ):
            return response
        return error_as_json(response)


class SiteOnlyMiddleware:
    """settings.SITE_MIDDLEWARE for every path but /api/: the admin's middleware, which API routes skip.

    Django has no per-path middleware, so this one builds the inner chain itself, the way Django's
    handler builds MIDDLEWARE (each wrapped so that an exception becomes its response), and hands
    Django the view hooks of the chain (CSRF's check lives in process_view) for site paths only.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.api_response = get_response
        handler: Callable[[HttpRequest], Any] = get_response
        chain: list[Any] = []
        for path in reversed(settings.SITE_MIDDLEWARE):
            middleware = import_string(path)(handler)
            chain.insert(0, middleware)
            handler = convert_exception_to_response(middleware)
        self.site_response: Callable[[HttpRequest], HttpResponse] = handler
        self.view_hooks = [m.process_view for m in chain if hasattr(m, "process_view")]
        self.exception_hooks = [
            m.process_exception for m in reversed(chain) if hasattr(m, "process_exception")
        ]

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(API_PREFIX):
            return self.api_response(request)
        return self.site_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        if request.path_info.startswith(API_PREFIX):
            return None
        for hook in self.view_hooks:
            response = hook(request, view, args, kwargs)
            if response is not None:
                return response
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if request.path_info.startswith(API_PREFIX):
            return None
        for hook in self.exception_hooks:
            response = hook(request, exception)
            if response is not None:
                return response
        return None
