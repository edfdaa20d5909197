"""Request checks that come before routing, so every /api/v1 route answers them the same way."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

JSON_ROUTES_PREFIX = "/api/v1/"
BODY_METHODS = {"POST", "PUT", "PATCH"}


class JsonContentTypeMiddleware:
    """415 for a body that is not JSON on /api/v1 (the original routes keep accepting forms)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            request.method in BODY_METHODS
            and request.path.startswith(JSON_ROUTES_PREFIX)
            and request.headers.get("Content-Length", "0") not in ("", "0")
            and request.content_type != "application/json"
        ):
            return JsonResponse(
                {"detail": f"send the body as application/json, not {request.content_type or 'no content type'}"},
                status=415,
            )
        return self.get_response(request)
