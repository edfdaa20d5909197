"""Request checks that come before routing, so every API route answers them the same way."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse

from apps.access.identifiers import text_unstorable

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
