"""The API's one body parser: what it gives back, and what it refuses with which field and reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.access.identifiers import text_unstorable
from apps.api.body import BodyInvalid, json_parse

# Any text, lone surrogates and NUL included: json.dumps escapes them (\ud800, \u0000) as a client
# would. A list of characters, not st.text(), which leaves surrogates out.
any_character = st.characters() | st.characters(categories=["Cs"]) | st.just("\x00")
any_text = st.lists(any_character, max_size=8).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)


def _at(data: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        data = data[step]
    return data


@given(json_values)
def test_a_body_comes_back_whole_or_is_refused_at_a_field_the_database_cannot_store(value: Any) -> None:
    raw = json.dumps(value).encode()

    try:
        parsed = json_parse(raw)
    except BodyInvalid as exc:
        found = _at(value, exc.path)
        # The path leads to the bad string, or to the object whose field name is bad.
        if isinstance(found, str):
            assert text_unstorable(found) is not None
        else:
            assert isinstance(found, dict)
            assert any(text_unstorable(key) is not None for key in found)
    else:
        # A high surrogate then a low one is a pair in JSON (one character), as any decoder reads it.
        assert parsed == json.loads(raw)


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        (b'{"callback_url": "http://x.test/\\ud800"}', "callback_url", "surrogate"),
        (b'{"a": [1, {"b": "\\u0000"}]}', "a.1.b", "NUL"),
        (b'{"\\udfff": 1}', "body", "field name"),
        (b"[" * 5000 + b"]" * 5000, "body", "nested too deeply"),
        (b'{"n": ' + b"1" * 5000 + b"}", "body", "too many digits"),
        (b'{"n": Infinity}', "body", "Infinity is not a JSON value"),
        ('{"station_id": "x"}'.encode("utf-16"), "body", "not UTF-8"),
        (b'{"station_id": ', "body", "not valid JSON"),
    ],
)
def test_refusals_name_the_field_and_the_reason(raw: bytes, field: str, reason: str) -> None:
    with pytest.raises(BodyInvalid) as refused:
        json_parse(raw)

    assert refused.value.field == field
    assert reason in refused.value.reason


def test_surrogate_pairs_and_a_utf8_byte_order_mark_are_fine() -> None:
    assert json_parse(b'\xef\xbb\xbf{"emoji": "\\ud83d\\ude00"}') == {"emoji": "\N{GRINNING FACE}"}
