"""Request checks that come before routing, so every route answers them the same way."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import DisallowedHost, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse

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
