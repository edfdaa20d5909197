"""The identifier formats of DESIGN.md "Identifiers and validation", as plain functions.

Used by the API schemas, the Kafka message decoder and the services alike (StationId and
DriverTokenValue are the same rules as pydantic field types), so a value accepted in one place is
accepted everywhere.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from pydantic import AfterValidator

# The original service's station ids: 36 alphanumeric characters.
_LEGACY_STATION_ID = re.compile(r"^[A-Za-z0-9]{36}$")
_HEX32 = re.compile(r"^[0-9A-Fa-f]{32}$")
_HYPHENATED_UUID = re.compile(
    r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
)
# Tokens as stations send them: OCPP 2.0.1's identifierString alphabet (a-z A-Z 0-9 * - _ = : + | @ .),
# which 1.6 idTags (at most 20) and the 8-14 hex digits of RFID UIDs fit, plus the original service's
# "~"; from 1 character up to the 80 an OCPI/eMAID-style token may need.
_DRIVER_TOKEN = re.compile(r"^[A-Za-z0-9\-._~*=:+|@]{1,80}$")
# The original service's rule, kept on its four routes so they answer every input as they did.
_LEGACY_DRIVER_TOKEN = re.compile(r"^[A-Za-z0-9\-._~]{20,80}$")

STATION_ID_RULE = "a UUID (hyphenated or 32 hex digits) or a 36-character alphanumeric id"
DRIVER_TOKEN_RULE = "1 to 80 characters of A-Z a-z 0-9 - . _ ~ * = : + | @"
LEGACY_DRIVER_TOKEN_RULE = "20 to 80 characters of A-Z a-z 0-9 - . _ ~"


def station_id_normalize(value: str) -> str:
    """The stored form of a station id; ValueError when it is neither of the accepted forms.

    UUIDs are stored lowercase and hyphenated whatever form they came in; the original service's
    36-character alphanumeric ids are stored exactly as given.
    """
    if not isinstance(value, str):
        raise ValueError(f"station_id must be {STATION_ID_RULE}")
    # fullmatch, not match: "$" would also accept a trailing newline.
    if _HYPHENATED_UUID.fullmatch(value) or _HEX32.fullmatch(value):
        return str(uuid.UUID(value))
    if _LEGACY_STATION_ID.fullmatch(value):
        return value
    raise ValueError(f"station_id must be {STATION_ID_RULE}")


def driver_token_check(value: str) -> str:
    """The token as given (matched exactly, case and all); ValueError outside DRIVER_TOKEN_RULE."""
    if not isinstance(value, str) or not _DRIVER_TOKEN.fullmatch(value):
        raise ValueError(f"driver_token must be {DRIVER_TOKEN_RULE}")
    return value


def driver_token_legacy_check(value: str) -> str:
    """The original routes' narrower rule: what they refused before, they refuse still."""
    if not isinstance(value, str) or not _LEGACY_DRIVER_TOKEN.fullmatch(value):
        raise ValueError(f"driver_token must be {LEGACY_DRIVER_TOKEN_RULE}")
    return value


def text_unstorable(value: str) -> str | None:
    """Why the database cannot store this text, or None: the one rule for every text a client sends.

    PostgreSQL refuses NUL in text columns, and a lone UTF-16 surrogate (JSON's "\\ud800") is no
    character at all: it cannot be encoded as UTF-8 for the database, a Kafka message or a log line.
    """
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text, not a lone UTF-16 surrogate"
    return None


# The same rules as pydantic field types, for every schema that carries them: the API's bodies and
# paths and the Kafka message's decoder (apps/charging/messages.py).
StationId = Annotated[str, AfterValidator(station_id_normalize)]
DriverTokenValue = Annotated[str, AfterValidator(driver_token_check)]
