"""/api/v1/tokens: drivers' RFID cards and app tokens; blocked, never deleted."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Query, Router

from apps.access.models import DriverToken, TokenGroup
from apps.access.selectors import TokenFilters, driver_token_get, driver_tokens_page, token_group_get
from apps.access.services import token_block, token_create, token_unblock, token_update
from apps.api.v1.acl.common import READ, WRITE, changes, found_or_404, invalid
from apps.api.v1.acl_schemas import DriverTokenValue, TokenIn, TokenOut, TokenPage, TokenPatch, TokenQuery
from apps.api.v1.schemas import ErrorOut, ValidationErrorOut

router = Router(tags=["driver tokens"])


def _token_out(token: DriverToken) -> TokenOut:
    return TokenOut(
        value=token.value,
        type=token.type,
        status=token.status,  # type: ignore[arg-type]
        valid_until=token.valid_until,
        group=token.group.name if token.group else None,
        note=token.note,
        created_at=token.created_at,
        updated_at=token.updated_at,
    )


def _token_found(value: str) -> DriverToken:
    return found_or_404(driver_token_get(value=value), "no driver token with this value")


def _group_named(name: str | None) -> TokenGroup | None:
    if name is None:
        return None
    found = token_group_get(name=name)
    if found is None:
        raise invalid(("group", "no token group with this name"))
    return found


@router.get("", auth=READ, response={200: TokenPage, 422: ValidationErrorOut})
def token_list(request: HttpRequest, query: Query[TokenQuery]) -> TokenPage:
    """Driver tokens by value, blocked ones included; filters `status`, `group`, `type`, `q` (part of the
    value or note).

    Paged by keyset cursor: ?limit= (1 to 1,000, default 100), then pass next_cursor back as ?cursor=
    with the same filters until next_cursor is null; every row comes exactly once.
    """
    filters = TokenFilters(status=query.status, group=query.group, type=query.type, q=query.q)
    page = driver_tokens_page(filters=filters, limit=query.limit, cursor=query.cursor)
    return TokenPage(items=[_token_out(token) for token in page.items], next_cursor=page.next_cursor)


@router.post("", auth=WRITE, response={201: TokenOut, 409: ErrorOut, 422: ValidationErrorOut})
def token_add(request: HttpRequest, body: TokenIn) -> tuple[int, TokenOut]:
    """Add an active token, optionally in an existing group. 409 if the value exists.

    Tokens are never deleted (OCPI keeps them) and there is no DELETE: block a token to revoke it.
    """
    fields = body.model_dump()
    fields["group"] = _group_named(body.group)
    return 201, _token_out(token_create(**fields))


@router.get("/{value}", auth=READ, response={200: TokenOut, 404: ErrorOut, 422: ValidationErrorOut})
def token_detail(request: HttpRequest, value: DriverTokenValue) -> TokenOut:
    """One token."""
    return _token_out(_token_found(value))


@router.patch("/{value}", auth=WRITE, response={200: TokenOut, 404: ErrorOut, 422: ValidationErrorOut})
def token_change(request: HttpRequest, value: DriverTokenValue, body: TokenPatch) -> TokenOut:
    """Change type, valid_until, group (null: none) or note; others stay. Status: block / unblock."""
    token = _token_found(value)
    fields = changes(body)
    if "group" in fields:
        fields["group"] = _group_named(fields["group"])
    return _token_out(token_update(token=token, **fields))


@router.post("/{value}/block", auth=WRITE, response={200: TokenOut, 404: ErrorOut, 422: ValidationErrorOut})
def token_block_route(request: HttpRequest, value: DriverTokenValue) -> TokenOut:
    """Refuse this token everywhere (token_blocked), its grants kept: how a token is revoked."""
    return _token_out(token_block(token=_token_found(value)))


@router.post("/{value}/unblock", auth=WRITE, response={200: TokenOut, 404: ErrorOut, 422: ValidationErrorOut})
def token_unblock_route(request: HttpRequest, value: DriverTokenValue) -> TokenOut:
    """Let a blocked token charge again wherever its grants allow."""
    return _token_out(token_unblock(token=_token_found(value)))
