"""Every exception the API turns into an answer, registered in one place, and the JSON answers for
the errors Django itself answers (unknown paths, a Host not served, a crash outside the API)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI
from ninja.errors import HttpError

from apps.access.services import AclConflict, AclInvalid
from apps.api.body import BodyInvalid
from apps.clients.auth import RateLimited, ScopeDenied
from apps.core.cursors import BadCursor

logger = structlog.get_logger(__name__)


class ServiceUnavailable(Exception):
    """A part we depend on is down: 503 with Retry-After, never a 500."""

    def __init__(self, detail: str, *, retry_after_s: int = 5) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after_s = retry_after_s


INTERNAL_ERROR = "internal error: it has been logged with this request_id"


def error_request_id() -> str:
    """The id a 500 is reported under: the charging request's when one is bound to the log context
    already, else a new one, bound now so that the log line with the traceback carries it too."""
    bound = structlog.contextvars.get_contextvars().get("request_id")
    if bound:
        return str(bound)
    request_id = str(uuid.uuid4())
    structlog.contextvars.bind_contextvars(request_id=request_id)
    return request_id


def bind_error_request_id(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """On got_request_exception (sent before Django logs the traceback and renders its page)."""
    error_request_id()


def host_refused(request: HttpRequest, host: str) -> JsonResponse:
    logger.warning("host_refused", host=host[:200], path=request.path)
    return JsonResponse({"detail": f"this service does not answer to the Host {host[:200]!r}"}, status=400)


def error_as_json(response: HttpResponse) -> HttpResponse:
    """Django's own error page (or DEBUG's technical one) turned into a JSON answer, headers kept."""
    if response.status_code >= 500:
        body: dict[str, str] = {"detail": INTERNAL_ERROR, "request_id": error_request_id()}
    else:
        body = {"detail": response.reason_phrase.lower()}
    response.content = json.dumps(body).encode()
    response["Content-Type"] = "application/json"
    if response.has_header("Content-Length"):
        response["Content-Length"] = str(len(response.content))
    return response


def body_invalid_answer(api: NinjaAPI, request: HttpRequest, exc: BodyInvalid) -> HttpResponse:
    """400 for a body that is unusable as a whole; 422 in the schema errors' shape for one bad field."""
    if not exc.path:
        return api.create_response(request, {"detail": exc.reason}, status=400)
    return field_invalid_answer(api, request, ["body", "body", *exc.path], exc.reason)


def field_invalid_answer(
    api: NinjaAPI, request: HttpRequest, loc: list[str | int], message: str
) -> HttpResponse:
    """422 in the shape of ninja's schema errors, for what only a service or the database can tell."""
    error = {"type": "value_error", "loc": loc, "msg": message}
    return api.create_response(request, {"detail": [error]}, status=422)


def register_error_handlers(api: NinjaAPI) -> None:
    @api.exception_handler(Exception)
    def unexpected_error(request: HttpRequest, exc: Exception) -> HttpResponse:
        # Ours, not ninja's: that one re-raises with DEBUG off and answers the traceback with it on.
        request_id = error_request_id()
        logger.error("unexpected_error", method=request.method, path=request.path, exc_info=exc)
        return api.create_response(request, {"detail": INTERNAL_ERROR, "request_id": request_id}, status=500)

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        # ninja answers whatever the body parser raised with its own 400 "Cannot parse request body",
        # raised from the parser's exception: ours says what is wrong, and where.
        if isinstance(exc.__cause__, BodyInvalid):
            return body_invalid_answer(api, request, exc.__cause__)
        return api.create_response(request, {"detail": str(exc)}, status=exc.status_code)

    @api.exception_handler(ScopeDenied)
    def scope_denied(request: HttpRequest, exc: ScopeDenied) -> HttpResponse:
        return api.create_response(request, {"detail": str(exc)}, status=403)

    @api.exception_handler(RateLimited)
    def rate_limited(request: HttpRequest, exc: RateLimited) -> HttpResponse:
        response = api.create_response(request, {"detail": str(exc)}, status=429)
        response["Retry-After"] = str(exc.retry_after_s)
        return response

    @api.exception_handler(RequestDataTooBig)
    def body_too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
        limit_kib = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 1024
        return api.create_response(
            request, {"detail": f"the request body is over {limit_kib} KiB"}, status=413
        )

    # The domain's errors, each answered the same way on every route that can meet it.
    @api.exception_handler(AclInvalid)
    def acl_invalid(request: HttpRequest, exc: AclInvalid) -> HttpResponse:
        # loc as ninja's own errors spell it for the parameter every v1 route names `body`.
        return field_invalid_answer(api, request, ["body", "body", exc.field], exc.message)

    @api.exception_handler(AclConflict)
    def acl_conflict(request: HttpRequest, exc: AclConflict) -> HttpResponse:
        return api.create_response(request, {"detail": str(exc)}, status=409)

    @api.exception_handler(BadCursor)
    def bad_cursor(request: HttpRequest, exc: BadCursor) -> HttpResponse:
        return field_invalid_answer(api, request, ["query", "cursor"], str(exc))

    @api.exception_handler(ServiceUnavailable)
    def service_unavailable(request: HttpRequest, exc: ServiceUnavailable) -> HttpResponse:
        response = api.create_response(request, {"detail": exc.detail}, status=503)
        response["Retry-After"] = str(exc.retry_after_s)
        return response

    @api.exception_handler(OperationalError)
    @api.exception_handler(InterfaceError)
    def database_unavailable(request: HttpRequest, exc: Exception) -> HttpResponse:
        logger.error("database_unavailable", path=request.path, error=repr(exc))
        response = api.create_response(
            request, {"detail": "the database is unavailable; try again"}, status=503
        )
        response["Retry-After"] = "5"
        return response
