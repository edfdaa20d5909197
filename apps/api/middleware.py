"""Request checks that come before routing, so every API route answers them the same way."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse

API_PREFIX = "/api/"
JSON_ROUTES_PREFIX = "/api/v1/"
BODY_METHODS = {"POST", "PUT", "PATCH"}
# NUL can be neither a station, a token nor free text, and PostgreSQL refuses it in text columns.
_NUL_MARKERS = (b"\x00", b"\\u0000", b"%00")


class RequestShapeMiddleware:
    """415 for a non-JSON body on /api/v1 (the original routes keep accepting forms); 400 for NUL bytes."""

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
        query = request.META.get("QUERY_STRING", "").encode()
        if any(marker in query.upper() for marker in _NUL_MARKERS) or any(
            "\x00" in v for v in request.GET.values()
        ):
            return JsonResponse({"detail": "query parameters must not contain NUL characters"}, status=400)
        if request.method in BODY_METHODS and has_body and self._body_has_nul(request):
            return JsonResponse({"detail": "the body must not contain NUL characters"}, status=400)
        return self.get_response(request)

    @staticmethod
    def _body_has_nul(request: HttpRequest) -> bool:
        try:
            body = request.body
        except RequestDataTooBig:
            return False  # answered with 413 by the API's handler when the view reads the body
        return b"\x00" in body or b"\\u0000" in body or b"%00" in body
