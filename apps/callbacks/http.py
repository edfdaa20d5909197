"""One HTTP POST of a callback, to the address the SSRF guard checked, never following redirects."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from apps.callbacks.urlguard import CheckedTarget

# DESIGN: connect 2 s, 5 s in all.
CONNECT_TIMEOUT_S = 2.0
TOTAL_TIMEOUT_S = 5.0
EXCERPT_CHARS = 500

_local = threading.local()


@dataclass(frozen=True)
class PostResult:
    http_status: int | None
    error: str
    response_excerpt: str
    duration_ms: int


def _client() -> httpx.Client:
    # One pooled client per thread: keep-alive to busy receivers, no sharing across threads.
    client: httpx.Client | None = getattr(_local, "client", None)
    if client is None:
        client = httpx.Client(
            timeout=httpx.Timeout(TOTAL_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            follow_redirects=False,
            limits=httpx.Limits(max_keepalive_connections=20, keepalive_expiry=30),
            trust_env=False,
        )
        _local.client = client
    return client


def _address_url(url: str, target: CheckedTarget) -> str:
    parts = urlsplit(url)
    host = f"[{target.address}]" if ":" in target.address else target.address
    return urlunsplit((parts.scheme, f"{host}:{target.port}", parts.path or "/", parts.query, ""))


def callback_post(*, url: str, target: CheckedTarget, body: bytes, headers: dict[str, str]) -> PostResult:
    """POST `body` to the checked address with the URL's host name in Host and TLS SNI."""
    started = time.monotonic()
    parts = urlsplit(url)
    default_port = 443 if parts.scheme == "https" else 80
    host_header = target.hostname if target.port == default_port else f"{target.hostname}:{target.port}"
    request_headers = {**headers, "Host": host_header, "Content-Type": "application/json"}
    try:
        with _client().stream(
            "POST",
            _address_url(url, target),
            content=body,
            headers=request_headers,
            extensions={"sni_hostname": target.hostname},
        ) as response:
            excerpt = b""
            for chunk in response.iter_bytes():
                excerpt += chunk
                # Read a little for the record, and never let a slow body outlast the total timeout.
                if len(excerpt) >= EXCERPT_CHARS or time.monotonic() - started > TOTAL_TIMEOUT_S:
                    break
            return PostResult(
                http_status=response.status_code,
                error="",
                response_excerpt=excerpt[:EXCERPT_CHARS].decode(errors="replace"),
                duration_ms=int((time.monotonic() - started) * 1000),
            )
    except httpx.TimeoutException as exc:
        error = f"timeout: {type(exc).__name__}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:EXCERPT_CHARS]
    return PostResult(None, error, "", int((time.monotonic() - started) * 1000))
