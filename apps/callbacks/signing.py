"""X-Charge-Signature: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, one v1 per live secret.

During a secret rotation both the new and the previous secret sign, so a receiver verifying with
either one accepts the callback.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable


def signature_compute(*, secret: str, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(*, secrets: Iterable[str], timestamp: int, body: bytes) -> str:
    parts = [f"t={timestamp}"]
    parts += [f"v1={signature_compute(secret=secret, timestamp=timestamp, body=body)}" for secret in secrets]
    return ",".join(parts)


def signature_verify(*, header: str, secret: str, body: bytes, now: int, tolerance_s: int = 300) -> bool:
    """What a receiver does (and what our tests do): any v1 matches and t is recent."""
    fields = [part.partition("=") for part in header.split(",")]
    timestamps = [value for key, _, value in fields if key == "t"]
    # isascii(): str.isdigit() also accepts digits like "²" that int() refuses.
    if len(timestamps) != 1 or not (timestamps[0].isascii() and timestamps[0].isdigit()):
        return False
    timestamp = int(timestamps[0])
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = signature_compute(secret=secret, timestamp=timestamp, body=body).encode()
    return any(
        hmac.compare_digest(expected, value.encode(errors="replace"))
        for key, _, value in fields
        if key == "v1"
    )
