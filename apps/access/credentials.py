"""A station's OCPP credentials: its identity and its password (OCPP security profile 1).

The identity is what the station is configured with: the last segment of its WebSocket URL and the
user name of HTTP Basic on the upgrade. The password is stored as a salted SHA-256, not a slow
password hash: OCPP passwords are 16 to 40 characters a machine holds (ours are generated with 240
bits of entropy), and a gateway restart has every station authenticate at once, where a deliberately
slow hash (PBKDF2 at Django's default ~0.3 s of CPU each) would keep 200 stations out for a minute.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Annotated

from pydantic import AfterValidator

# OCPP 2.0.1 part 4: an identity of at most 48 characters; no ':' (Basic auth's separator) and no '/'
# (the URL's). Printable ASCII without space: what station configuration screens accept.
_IDENTITY = re.compile(r"^[\x21-\x7e]{1,48}$")
IDENTITY_RULE = "1 to 48 printable ASCII characters, without space, ':' or '/'"
# OCPP 2.0.1 BasicAuthPassword (passwordString) and 1.6's AuthorizationKey: 16 to 40 characters.
_PASSWORD = re.compile(r"^[\x21-\x7e]{16,40}$")
PASSWORD_RULE = "16 to 40 printable ASCII characters, without space"
_SCHEME = "sha256"


def identity_check(value: str) -> str:
    if not isinstance(value, str) or not _IDENTITY.fullmatch(value) or ":" in value or "/" in value:
        raise ValueError(f"ocpp_identity must be {IDENTITY_RULE}")
    return value


def password_check(value: str) -> str:
    if not isinstance(value, str) or not _PASSWORD.fullmatch(value):
        raise ValueError(f"ocpp_password must be {PASSWORD_RULE}")
    return value


def password_generate() -> str:
    # 30 random bytes in URL-safe base64: 40 characters, the most OCPP allows.
    return secrets.token_urlsafe(30)


def password_hash(password: str) -> str:
    salt = secrets.token_hex(16)
    digest = hashlib.sha256(f"{salt}:{password}".encode()).hexdigest()
    return f"{_SCHEME}${salt}${digest}"


def password_matches(password: str, stored: str) -> bool:
    """Does `password` match the stored hash? False for an empty or foreign hash. Constant time."""
    scheme, _, rest = stored.partition("$")
    salt, _, digest = rest.partition("$")
    if scheme != _SCHEME or not salt or not digest:
        # Still hash once, so an unknown identity costs what a wrong password does.
        hashlib.sha256(password.encode()).hexdigest()
        return False
    presented = hashlib.sha256(f"{salt}:{password}".encode()).hexdigest()
    return hmac.compare_digest(presented, digest)


# The same rules as pydantic field types, for the API's bodies.
OcppIdentity = Annotated[str, AfterValidator(identity_check)]
OcppPassword = Annotated[str, AfterValidator(password_check)]
