"""Keyset-pagination cursors: the key of a page's last row, opaque to callers, refused if made up.

Every list of the API hands out `next_cursor` and takes it back as `?cursor=`; a cursor is its parts
joined by "|" in URL-safe base64 without padding. Each list checks what its parts mean (a kind, an
id, a moment); this module only packs and unpacks them, and says BadCursor for anything it cannot
unpack, which the API answers as a 422 on the `cursor` query parameter (apps/api/errors.py).
"""

from __future__ import annotations

import base64
import binascii

REFUSED = "not a cursor this API returned"


class BadCursor(ValueError):
    """A cursor this API did not hand out (or one altered on the way)."""

    def __init__(self, message: str = REFUSED) -> None:
        super().__init__(message)


def cursor_encode(*parts: str) -> str:
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode().rstrip("=")


def cursor_decode(cursor: str, *, parts: int) -> list[str]:
    """The `parts` non-empty parts of a cursor (the last may hold "|"); BadCursor otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor from None
    found = raw.split("|", parts - 1)
    if len(found) != parts or not all(found) or "\x00" in raw:
        raise BadCursor
    return found
