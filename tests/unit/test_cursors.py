"""The one cursor codec every paged list uses (apps/core/cursors.py)."""

from __future__ import annotations

import base64

import pytest

from apps.core.cursors import BadCursor, cursor_decode, cursor_encode


def test_a_cursor_gives_back_its_parts_and_the_last_may_hold_the_separator() -> None:
    assert cursor_decode(cursor_encode("grant", "42"), parts=2) == ["grant", "42"]
    assert cursor_decode(cursor_encode("2026-01-01T00:00:00+00:00", "a|b"), parts=2) == [
        "2026-01-01T00:00:00+00:00",
        "a|b",
    ]
    assert "=" not in cursor_encode("x", "y")  # no padding in a query string


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%",  # not base64
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),  # not UTF-8
        cursor_encode("only-one-part"),
        cursor_encode("grant", ""),  # an empty part
        cursor_encode("grant", "4\x002"),  # a NUL the database would refuse
    ],
)
def test_anything_this_api_did_not_hand_out_is_a_bad_cursor(cursor: str) -> None:
    with pytest.raises(BadCursor, match="not a cursor this API returned"):
        cursor_decode(cursor, parts=2)
