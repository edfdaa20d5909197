"""The API key format: `chg_<prefix>_<secret>`. The prefix finds the row; the secret is only hashed.

The secret part has 256 bits of entropy, so one SHA-256 is enough (a slow password hash would
only slow every request without making a random key harder to guess).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

KEY_PATTERN = re.compile(r"^chg_(?P<prefix>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class ParsedKey:
    prefix: str
    secret: str


def key_generate() -> str:
    return f"chg_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


def key_parse(presented: str) -> ParsedKey | None:
    match = KEY_PATTERN.match(presented)
    if match is None:
        return None
    return ParsedKey(prefix=match["prefix"], secret=match["secret"])


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    # Constant-time: the comparison must not leak how many leading characters matched.
    return hmac.compare_digest(secret_hash(secret), stored_hash)
