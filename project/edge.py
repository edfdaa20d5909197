"""HTTP/1.1 rules that neither the server (granian) nor Django applies, kept at the WSGI edge between them.

- An HTTP/1.1 request without a Host header is answered 400 (RFC 9112 section 3.2: a server MUST),
  and its connection closed. Django would take the listening address for it instead and serve it.
- A connection whose request body the application leaves unread is closed after the answer. Django
  never reads a body declared over DATA_UPLOAD_MAX_MEMORY_SIZE (its 413, or a 401 or 404 answered
  before the body is read), and granian, before reading the next request of a kept-alive connection,
  drains a bounded part of an unread body (20 KiB were drained, 100 KiB were not, on granian 2.8) and
  drops the connection otherwise: after an answer that said nothing of closing, so the client's next
  request on it got no answer.
- What granian's WSGI environ says differently from PEP 3333 is put right first: an HTTP/1.0 request
  arrives as SERVER_PROTOCOL "HTTP/1", and a request without a Host header with HTTP_HOST "" (Django
  then refuses the empty host with a 400 where it should use SERVER_NAME, as for any HTTP/1.0 client).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

NO_HOST = json.dumps({"detail": "an HTTP/1.1 request needs a Host header"}).encode()
# granian (hyper underneath) takes this header from the application as its cue to close the
# connection after the answer, and sends it on to the client.
CLOSE = ("Connection", "close")


def _declared_length(environ: dict[str, Any]) -> int:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def environ_normalize(environ: dict[str, Any]) -> None:
    """PEP 3333's environ from granian's: the HTTP/1.0 protocol name, no HTTP_HOST without a Host."""
    if environ.get("SERVER_PROTOCOL") == "HTTP/1":
        environ["SERVER_PROTOCOL"] = "HTTP/1.0"
    if environ.get("HTTP_HOST") == "":
        del environ["HTTP_HOST"]


class HttpEdge:
    """The WSGI application the server serves: Django's, inside the rules above."""

    def __init__(self, application: WsgiApp) -> None:
        self.application = application

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        environ_normalize(environ)
        if environ.get("SERVER_PROTOCOL") == "HTTP/1.1" and "HTTP_HOST" not in environ:
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(NO_HOST))), CLOSE]
            start_response("400 Bad Request", headers)
            return [NO_HOST]
        body_unread = _declared_length(environ) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE

        def edge_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if body_unread or status.startswith("413"):
                headers = [*headers, CLOSE]
            return start_response(status, headers, exc_info)

        return self.application(environ, edge_start_response)
