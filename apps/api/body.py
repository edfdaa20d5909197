"""The one request-body parser of the API: JSON on every route, and forms on the original routes.

Whatever a client can get wrong in a body ends here as BodyInvalid, naming the field (or the body as a
whole) and the reason. /api/v1 answers it 400, or 422 for a field (apps/api/errors.py); the original
routes answer their `rejected` body naming the same field (apps/api/legacy.py).
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from django.core.exceptions import BadRequest, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, RawPostDataException
from django.http.multipartparser import MultiPartParserError
from ninja.parser import Parser

from apps.access.identifiers import text_unstorable

FORM_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

Path = tuple[str | int, ...]


class BodyInvalid(ValueError):
    """The body cannot be used: `path` leads to the bad field, empty when the body as a whole is bad."""

    def __init__(self, reason: str, *, path: Path = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path

    @property
    def field(self) -> str:
        return ".".join(str(step) for step in self.path) or "body"


def _no_constant(name: str) -> Any:
    raise BodyInvalid(f"the body is not valid JSON: {name} is not a JSON value")


def text_check(data: Any) -> None:
    """BodyInvalid naming the first string (in field order) or field name the database cannot store.

    Breadth first with a queue, not recursion: JSON nested as deep as the parser allows must not
    exhaust the stack here.
    """
    pending: deque[tuple[Path, Any]] = deque([((), data)])
    while pending:
        path, value = pending.popleft()
        if isinstance(value, str):
            reason = text_unstorable(value)
            if reason is not None:
                raise BodyInvalid(reason, path=path)
        elif isinstance(value, dict):
            for key, item in value.items():
                reason = text_unstorable(key)
                if reason is not None:
                    raise BodyInvalid(f"a field name {reason}", path=path)
                pending.append(((*path, key), item))
        elif isinstance(value, list):
            pending.extend(((*path, index), item) for index, item in enumerate(value))


def json_parse(raw: bytes) -> Any:
    """A JSON body (RFC 8259: UTF-8, no NaN or Infinity) whose every string the database can store."""
    try:
        # Decoded here, not by json.loads(bytes): that would also take UTF-16 and UTF-32.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BodyInvalid("the body is not UTF-8 text (JSON must be UTF-8)") from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except BodyInvalid:
        raise
    except RecursionError:
        raise BodyInvalid("the body is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise BodyInvalid(
            f"the body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except ValueError:
        # Python refuses to convert integers of over 4,300 digits (a denial-of-service guard).
        raise BodyInvalid("the body holds a number with too many digits") from None
    text_check(data)
    return data


def legacy_fields(request: HttpRequest) -> dict[str, Any]:
    """An original route's fields: a JSON object, or a form (its parsers took both)."""
    if request.content_type in FORM_CONTENT_TYPES:
        try:
            fields = request.POST.dict()
        except MultiPartParserError as exc:
            raise BodyInvalid(f"the body is not a readable form: {exc}") from None
        except (TooManyFieldsSent, TooManyFilesSent):
            raise BodyInvalid("the body holds more form fields than allowed") from None
        except BadRequest as exc:  # Django: a form body in another charset than UTF-8
            raise BodyInvalid(f"the body is not a readable form: {exc}") from None
        text_check(fields)
        return fields
    try:
        raw = request.body
    except RawPostDataException:
        raise BodyInvalid("the body was already read as a stream") from None
    if not raw.strip():
        return {}
    data = json_parse(raw)
    if not isinstance(data, dict):
        raise BodyInvalid("the body must be a JSON object")
    return data


class BodyParser(Parser):
    """django-ninja's parser for /api/v1: the same JSON rules as the original routes.

    ninja turns whatever parse_body raises into a 400 chained to it (`from`), which
    apps/api/errors.py maps back to the BodyInvalid's own answer.
    """

    def parse_body(self, request: HttpRequest) -> Any:
        return json_parse(request.body)
