"""The `ocpp` package's schema checks, with a compiled validator in front.

The package checks every call and every answer against its JSON schemas with jsonschema's
Draft4Validator, pure Python: about half of the package's time per Authorize and a tenth of the
gateway's CPU per call (py-spy, benchmarks "ocpp"). Here each of its cached validators gets a
jsonschema-rs validator of the same schema in front: a payload that one accepts is valid and costs
a few microseconds; any other goes to the package's own validator, which raises the error the
package maps to its CALLERROR (TypeConstraintViolation, FormatViolation, …) exactly as before.
So the compiled validator only ever says yes early: what is refused, and how, stays the package's.

Both read the schemas as Draft 4 without format checks (jsonschema checks formats only when
given a format checker, and the package gives none). The schemas the package reads with
decimal.Decimal floats (1.6 charging profiles, for multipleOf) keep the package's validator alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema_rs
from ocpp import messages

_package_get_validator = messages.get_validator


class FastAccept:
    """A Draft4Validator whose validate() asks a compiled validator of its schema first."""

    def __init__(self, validator: Any) -> None:
        self.explaining = validator
        self._accepts = jsonschema_rs.Draft4Validator(validator.schema, validate_formats=False).is_valid

    def validate(self, payload: Any) -> None:
        if not self._accepts(payload):
            self.explaining.validate(payload)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.explaining, name)


_fast: dict[int, FastAccept] = {}


def get_validator(
    message_type_id: int, action: str, ocpp_version: str, parse_float: Callable[[str], Any] = float
) -> Any:
    """The package's get_validator (which caches its validators), fronted."""
    validator = _package_get_validator(message_type_id, action, ocpp_version, parse_float=parse_float)
    if parse_float is not float:
        return validator
    fast = _fast.get(id(validator))
    if fast is None or fast.explaining is not validator:
        fast = _fast[id(validator)] = FastAccept(validator)
    return fast


def install() -> None:
    """From now on the package validates through get_validator above (idempotent)."""
    messages.get_validator = get_validator
