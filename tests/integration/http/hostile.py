"""Hypothesis strategies for what a hostile or careless client can send through an HTTP library.

Bodies: JSON objects of our fields holding wrong types, lone surrogates, NUL, huge strings and
extreme timestamps, in odd encodings and under content types that may not match; raw bodies
that break parsers (deep nesting, thousands of digits, NaN, bytes that are not text). Query
strings of known and unknown parameters. Nothing here sends a request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

STATION = "5f0c6a0e-4b1e-4d55-9a7e-3c1f2b9d8e71"
LEGACY_STATION = "ST0001abcdefghijklmnopqrstuvwxyz0123"
TOKEN = "FUZZ-TOKEN-0123456789"
CALLBACK = "http://127.0.0.1:9/cb"

VALID: dict[str, list[Any]] = {
    "station_id": [STATION, STATION.upper(), STATION.replace("-", ""), LEGACY_STATION],
    "driver_token": [TOKEN, "A" * 20, "z" * 80],
    "callback_url": [CALLBACK, "https://hooks.example.test/cb?x=1", "https://bücher.example/cb"],
    "value": [TOKEN],
    "token": [TOKEN],
    "name": ["Depot 1", ""],
    "note": ["", "fleet"],
    "type": ["rfid", "app"],
    "enabled": [True, False],
}
TIME_FIELDS = ("request_time", "valid_from", "valid_until")
FIELDS = (*VALID, *TIME_FIELDS, "group")

# A lone surrogate or NUL now and then among ordinary characters; st.text() never holds surrogates.
character = st.characters() | st.characters(categories=["Cs"]) | st.just("\x00")
short_hostile_text = st.lists(character, max_size=24).map("".join) | st.text(max_size=40)
hostile_text = st.one_of(
    short_hostile_text,
    st.integers(1_000, 70_000).map(lambda n: "x" * n),  # up to beyond the 64 KiB body limit
    st.sampled_from(["", " ", "\n", "null", "0", "-1", "1e400", "NaN", "%00", "\\u0000"]),
)
json_scalar = st.none() | st.booleans() | st.integers() | st.floats() | hostile_text
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=6,
)

offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59))
moments = st.builds(
    lambda moment, offset: moment.replace(tzinfo=timezone(offset)).isoformat(),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    offsets.map(lambda delta: timedelta(minutes=delta // timedelta(minutes=1))),
)
time_value = st.one_of(
    moments,
    st.sampled_from(
        [
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-23:59",
            "9999-12-31T23:59:59+23:59",
            253402300799,
            "253402300799",
            -62135596800,
            "1e10",
            datetime.now(UTC).isoformat(),
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    json_value,
)


def field_value(name: str) -> st.SearchStrategy[Any]:
    if name in TIME_FIELDS:
        return time_value
    valid = st.sampled_from(VALID.get(name, ["fleet-a"]))
    twisted = st.tuples(valid, st.sampled_from(["\n", " ", "\x00", "\ud800", "é", "/../", "%"])).map(
        lambda pair: f"{pair[0]}{pair[1]}"
    )
    return st.one_of(valid, valid, twisted, json_value)


fields_object = st.fixed_dictionaries({}, optional={name: field_value(name) for name in FIELDS})
extra_fields = st.dictionaries(hostile_text, json_value, max_size=3)
random_object = st.builds(lambda known, extra: {**extra, **known}, fields_object, extra_fields)
# A valid body with a change or two: reaches the accepting paths, and refusals one field at a time.
valid_object = st.fixed_dictionaries({name: st.sampled_from(VALID[name]) for name in VALID})
changes = st.lists(
    st.sampled_from(FIELDS).flatmap(lambda name: st.tuples(st.just(name), field_value(name))), max_size=2
)
near_valid_object = st.builds(
    lambda valid, changed, extra: {**valid, **dict(changed), **extra},
    valid_object,
    changes,
    st.dictionaries(hostile_text, json_value, max_size=1),
)
body_object = st.one_of(near_valid_object, near_valid_object, random_object)


def _form(fields: dict[str, Any]) -> bytes:
    pairs = (
        f"{quote_text(key)}={quote_text(value if isinstance(value, str) else json.dumps(value))}"
        for key, value in fields.items()
    )
    return "&".join(pairs).encode()


def quote_text(text: str) -> str:
    """Percent-encoded as UTF-8; a lone surrogate as the bytes a careless encoder would send."""
    return quote(text, safe="", errors="surrogatepass")


def _multipart(fields: dict[str, Any], boundary: str) -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{quote_text(key)}"\r\n\r\n'.encode()
        + (value if isinstance(value, str) else json.dumps(value)).encode("utf-8", "surrogatepass")
        + b"\r\n"
        for key, value in fields.items()
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


ENCODERS = {
    "json": lambda fields: json.dumps(fields).encode(),  # escapes: \ud800, \u0000
    "json-raw-utf8": lambda fields: json.dumps(fields, ensure_ascii=False).encode("utf-8", "surrogatepass"),
    "json-utf16": lambda fields: json.dumps(fields).encode("utf-16"),
    "json-utf32": lambda fields: json.dumps(fields).encode("utf-32"),
    "json-bom": lambda fields: b"\xef\xbb\xbf" + json.dumps(fields).encode(),
    "form": _form,
    "multipart": lambda fields: _multipart(fields, "fuzzboundary"),
}
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=utf-16",
    "application/json; charset=bogus",
    "APPLICATION/JSON",
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-16",
    "multipart/form-data",
    "multipart/form-data; boundary=fuzzboundary",
    "multipart/form-data; boundary=",
    "",
]
RAW_BODIES = st.one_of(
    st.integers(1, 32_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 20_000).map(lambda n: b'{"station_id": ' + b"[" * n + b"]" * n + b"}"),
    st.integers(1, 20_000).map(lambda n: b'{"station_id": ' + b"9" * n + b"}"),
    st.sampled_from([b"", b" ", b"null", b"[]", b'"text"', b"NaN", b'{"a": Infinity}', b"{", b'{"a": 1,}']),
    st.binary(max_size=2_000),
)


@dataclass(frozen=True)
class Body:
    content: bytes
    content_type: str
    fields: dict[str, Any] | None  # the object before encoding, when there was one

    def __repr__(self) -> str:  # hypothesis prints failing examples: keep huge bodies readable
        shown = self.content if len(self.content) <= 300 else self.content[:300] + b"..."
        return f"Body(content_type={self.content_type!r}, {len(self.content)} bytes: {shown!r})"


encoded_bodies = st.builds(
    lambda fields, encoding, content_type: Body(ENCODERS[encoding](fields), content_type, fields),
    body_object,
    st.sampled_from(list(ENCODERS)),
    st.sampled_from(CONTENT_TYPES),
)
raw_bodies = st.builds(
    lambda raw, content_type: Body(raw, content_type, None), RAW_BODIES, st.sampled_from(CONTENT_TYPES)
)
# Mostly well-typed JSON, so that validation and the accepting paths are reached, not only the parser.
json_bodies = st.builds(
    lambda fields: Body(json.dumps(fields).encode(), "application/json", fields), body_object
)
bodies = st.one_of(json_bodies, json_bodies, encoded_bodies, raw_bodies)

QUERY_NAMES = [
    "station_id", "driver_token", "status", "reason", "since", "until", "cursor", "limit", "offset",
    "enabled", "q", "group", "type", "token", "all_stations", "active",
]  # fmt: skip
query_value = st.one_of(
    st.sampled_from([*VALID["station_id"], *VALID["driver_token"], "pending", "allowed", "granted"]),
    moments,
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "253402300799", "true", "2"]),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.text(alphabet="0123456789-+:TZ.", max_size=40),
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=", max_size=60
    ),  # cursors
    short_hostile_text,
)
# The request line stays under 4 KiB, below any limit of the servers the api has run on (gunicorn's
# was 4,094 bytes, granian's is its HTTP/1 buffer): beyond one the server answers itself, before the
# application sees the request.
QUERY_MAX = 3_500
query_strings = st.lists(
    st.tuples(st.sampled_from(QUERY_NAMES) | short_hostile_text, query_value),
    max_size=6,
).map(
    lambda pairs: "&".join(f"{quote_text(name)}={quote_text(str(value))}" for name, value in pairs)[
        :QUERY_MAX
    ]
)
