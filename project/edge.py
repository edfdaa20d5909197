"""HTTP/1.1 rules that neither gunicorn nor Django applies, kept at the WSGI edge between them.

- An HTTP/1.1 request without a Host header is answered 400 (RFC 9112 section 3.2: a server MUST).
  Django would take the listening address for it instead and serve the request.
- A connection whose request body the application leaves unread is closed after the answer. Django
  never reads a body declared over DATA_UPLOAD_MAX_MEMORY_SIZE (its 413, or a 401 or 404 answered
  before the body is read), and gunicorn, before serving a kept-alive connection again, drains at
  most 64 KiB of an unread body and drops the connection otherwise: after an answer that said
  "Connection: keep-alive", so the client's next request on it got no answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

NO_HOST = json.dumps({"detail": "an HTTP/1.1 request needs a Host header"}).encode()


def connection_close(start_response: StartResponse) -> None:
    """Have the server close the connection after this answer.

    A Connection header from the application does nothing under gunicorn: it drops every hop-by-hop
    header the application sets and writes its own (gunicorn/http/wsgi.py, Response.process_headers
    and default_headers), "close" only when its response object was told to close, which is what
    start_response is bound to. Under another server this does nothing.
    """
    force_close = getattr(getattr(start_response, "__self__", None), "force_close", None)
    if callable(force_close):
        force_close()


def _declared_length(environ: dict[str, Any]) -> int:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


class HttpEdge:
    """The WSGI application gunicorn serves: Django's, inside the rules above."""

    def __init__(self, application: WsgiApp) -> None:
        self.application = application

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("SERVER_PROTOCOL") == "HTTP/1.1" and not environ.get("HTTP_HOST"):
            connection_close(start_response)
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(NO_HOST)))]
            start_response("400 Bad Request", headers)
            return [NO_HOST]
        body_unread = _declared_length(environ) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE

        def edge_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if body_unread or status.startswith("413"):
                connection_close(start_response)
            return start_response(status, headers, exc_info)

        return self.application(environ, edge_start_response)
