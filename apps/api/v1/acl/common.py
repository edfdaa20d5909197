"""What the ACL routers share: the scopes they need, a 422 only the database can tell, PATCH changes."""

from __future__ import annotations

from typing import Any, TypeVar

from ninja import Schema
from ninja.errors import HttpError, ValidationError

from apps.clients.auth import ApiKeyAuth
from apps.clients.models import Scope

READ = ApiKeyAuth(Scope.ACL_READ)
WRITE = ApiKeyAuth(Scope.ACL_WRITE)

Row = TypeVar("Row")


def invalid(*errors: tuple[str, str], query: bool = False) -> ValidationError:
    """A 422 shaped like ninja's schema errors, for what only the database can tell (an unknown name)."""
    where = ["query"] if query else ["body", "body"]
    return ValidationError(
        [{"type": "value_error", "loc": [*where, field], "msg": message} for field, message in errors]
    )


def changes(body: Schema) -> dict[str, Any]:
    """The fields a PATCH body actually carries: the others stay as they are."""
    return body.model_dump(exclude_unset=True)


def found_or_404(found: Row | None, detail: str) -> Row:
    """The row a path names, or the API's 404 saying which kind of row is missing."""
    if found is None:
        raise HttpError(404, detail)
    return found
