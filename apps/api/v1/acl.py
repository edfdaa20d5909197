"""/api/v1/stations, /token-groups, /tokens and /grants: the access-control list over HTTP.

Reads need the scope acl:read, writes acl:write. Every list is keyset-paginated the same way: ask
with ?limit= (1 to 1,000, default 100), then pass the answer's next_cursor back as ?cursor= with the
same filters until next_cursor is null; each row comes exactly once, even while rows are added.
Bad fields: 422, each error's `loc` ending in the field's name. An unknown id in the path: 404.
Creating what exists: 409.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from ninja import Query, Router, Schema
from ninja.errors import HttpError, ValidationError

from apps.access.models import DriverToken, Grant, Station, TokenGroup
from apps.access.selectors import (
    GrantFilters,
    StationFilters,
    TokenFilters,
    driver_token_get,
    driver_tokens_page,
    grant_active,
    grant_get,
    grants_page,
    station_get,
    stations_page,
    token_group_get,
    token_groups_page,
)
from apps.access.services import (
    GrantExists,
    grant_create,
    grant_revoke,
    grant_update,
    station_create,
    station_update,
    token_block,
    token_create,
    token_group_create,
    token_unblock,
    token_update,
)
from apps.api.v1.acl_schemas import (
    DriverTokenValue,
    GrantExistsOut,
    GrantId,
    GrantIn,
    GrantOut,
    GrantPage,
    GrantPatch,
    GrantQuery,
    StationId,
    StationIn,
    StationOut,
    StationPage,
    StationPatch,
    StationQuery,
    TokenGroupIn,
    TokenGroupOut,
    TokenGroupPage,
    TokenGroupQuery,
    TokenIn,
    TokenOut,
    TokenPage,
    TokenPatch,
    TokenQuery,
)
from apps.api.v1.schemas import ErrorOut, ValidationErrorOut
from apps.clients.auth import ApiKeyAuth
from apps.clients.models import Scope

READ = ApiKeyAuth(Scope.ACL_READ)
WRITE = ApiKeyAuth(Scope.ACL_WRITE)

router = Router()
stations = Router(tags=["stations"])
groups = Router(tags=["token groups"])
tokens = Router(tags=["driver tokens"])
grants = Router(tags=["grants"])


def _invalid(*errors: tuple[str, str], query: bool = False) -> ValidationError:
    """A 422 shaped like ninja's schema errors, for what only the database can tell (an unknown name)."""
    where = ["query"] if query else ["body", "body"]
    return ValidationError(
        [{"type": "value_error", "loc": [*where, field], "msg": message} for field, message in errors]
    )


def _changes(body: Schema) -> dict[str, Any]:
    """The fields a PATCH body actually carries: the others stay as they are."""
    return body.model_dump(exclude_unset=True)


# --- stations -----------------------------------------------------------------------------------


def _station_found(station_id: str) -> Station:
    found = station_get(station_id=station_id)
    if found is None:
        raise HttpError(404, "no station with this id")
    return found


@stations.get("", auth=READ, response={200: StationPage, 422: ValidationErrorOut})
def station_list(request: HttpRequest, query: Query[StationQuery]) -> StationPage:
    """Stations by id; filters `enabled` and `q` (part of the id, name or location).

    Paged by keyset cursor: ?limit= (1 to 1,000, default 100), then pass next_cursor back as ?cursor=
    with the same filters until next_cursor is null; every row comes exactly once.
    """
    page = stations_page(
        filters=StationFilters(enabled=query.enabled, q=query.q), limit=query.limit, cursor=query.cursor
    )
    return StationPage(items=[StationOut.from_orm(row) for row in page.items], next_cursor=page.next_cursor)


@stations.post("", auth=WRITE, response={201: StationOut, 409: ErrorOut, 422: ValidationErrorOut})
def station_add(request: HttpRequest, body: StationIn) -> tuple[int, Station]:
    """Add a station; the id is stored normalized (UUIDs lowercase, hyphenated). 409 if it exists."""
    return 201, station_create(**body.model_dump())


@stations.get("/{station_id}", auth=READ, response={200: StationOut, 404: ErrorOut, 422: ValidationErrorOut})
def station_detail(request: HttpRequest, station_id: StationId) -> Station:
    """One station; the id in any accepted form."""
    return _station_found(station_id)


@stations.patch(
    "/{station_id}", auth=WRITE, response={200: StationOut, 404: ErrorOut, 422: ValidationErrorOut}
)
def station_change(request: HttpRequest, station_id: StationId, body: StationPatch) -> Station:
    """Change name, location or enabled (false: the station refuses every token); others stay."""
    return station_update(station=_station_found(station_id), **_changes(body))


# --- token groups -------------------------------------------------------------------------------


@groups.get("", auth=READ, response={200: TokenGroupPage, 422: ValidationErrorOut})
def token_group_list(request: HttpRequest, query: Query[TokenGroupQuery]) -> TokenGroupPage:
    """Token groups by name; filter `q` (part of the name).

    Paged by keyset cursor: ?limit= (1 to 1,000, default 100), then pass next_cursor back as ?cursor=
    with the same filters until next_cursor is null; every row comes exactly once.
    """
    page = token_groups_page(q=query.q, limit=query.limit, cursor=query.cursor)
    return TokenGroupPage(
        items=[TokenGroupOut.from_orm(row) for row in page.items], next_cursor=page.next_cursor
    )


@groups.post("", auth=WRITE, response={201: TokenGroupOut, 409: ErrorOut, 422: ValidationErrorOut})
def token_group_add(request: HttpRequest, body: TokenGroupIn) -> tuple[int, TokenGroup]:
    """Add a group (a fleet): its tokens share the group's grants. 409 if the name is taken."""
    return 201, token_group_create(name=body.name, note=body.note)


# --- driver tokens ------------------------------------------------------------------------------


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
    found = driver_token_get(value=value)
    if found is None:
        raise HttpError(404, "no driver token with this value")
    return found


def _group_named(name: str | None) -> TokenGroup | None:
    if name is None:
        return None
    found = token_group_get(name=name)
    if found is None:
        raise _invalid(("group", "no token group with this name"))
    return found


@tokens.get("", auth=READ, response={200: TokenPage, 422: ValidationErrorOut})
def token_list(request: HttpRequest, query: Query[TokenQuery]) -> TokenPage:
    """Driver tokens by value, blocked ones included; filters `status`, `group`, `type`, `q` (part of the
    value or note).

    Paged by keyset cursor: ?limit= (1 to 1,000, default 100), then pass next_cursor back as ?cursor=
    with the same filters until next_cursor is null; every row comes exactly once.
    """
    filters = TokenFilters(status=query.status, group=query.group, type=query.type, q=query.q)
    page = driver_tokens_page(filters=filters, limit=query.limit, cursor=query.cursor)
    return TokenPage(items=[_token_out(token) for token in page.items], next_cursor=page.next_cursor)


@tokens.post("", auth=WRITE, response={201: TokenOut, 409: ErrorOut, 422: ValidationErrorOut})
def token_add(request: HttpRequest, body: TokenIn) -> tuple[int, TokenOut]:
    """Add an active token, optionally in an existing group. 409 if the value exists.

    Tokens are never deleted (OCPI keeps them) and there is no DELETE: block a token to revoke it.
    """
    fields = body.model_dump()
    fields["group"] = _group_named(body.group)
    return 201, _token_out(token_create(**fields))


@tokens.get("/{value}", auth=READ, response={200: TokenOut, 404: ErrorOut, 422: ValidationErrorOut})
def token_detail(request: HttpRequest, value: DriverTokenValue) -> TokenOut:
    """One token."""
    return _token_out(_token_found(value))


@tokens.patch("/{value}", auth=WRITE, response={200: TokenOut, 404: ErrorOut, 422: ValidationErrorOut})
def token_change(request: HttpRequest, value: DriverTokenValue, body: TokenPatch) -> TokenOut:
    """Change type, valid_until, group (null: none) or note; others stay. Status: block / unblock."""
    token = _token_found(value)
    fields = _changes(body)
    if "group" in fields:
        fields["group"] = _group_named(fields["group"])
    return _token_out(token_update(token=token, **fields))


@tokens.post("/{value}/block", auth=WRITE, response={200: TokenOut, 404: ErrorOut, 422: ValidationErrorOut})
def token_block_route(request: HttpRequest, value: DriverTokenValue) -> TokenOut:
    """Refuse this token everywhere (token_blocked), its grants kept: how a token is revoked."""
    return _token_out(token_block(token=_token_found(value)))


@tokens.post("/{value}/unblock", auth=WRITE, response={200: TokenOut, 404: ErrorOut, 422: ValidationErrorOut})
def token_unblock_route(request: HttpRequest, value: DriverTokenValue) -> TokenOut:
    """Let a blocked token charge again wherever its grants allow."""
    return _token_out(token_unblock(token=_token_found(value)))


# --- grants -------------------------------------------------------------------------------------


def _grant_out(grant: Grant, at: datetime) -> GrantOut:
    return GrantOut(
        id=grant.pk,
        token=grant.token.value if grant.token else None,
        group=grant.group.name if grant.group else None,
        station_id=grant.station_id,
        valid_from=grant.valid_from,
        valid_until=grant.valid_until,
        revoked_at=grant.revoked_at,
        active=grant_active(grant=grant, at=at),
        note=grant.note,
        created_by=grant.created_by.get_username() if grant.created_by else None,
        created_at=grant.created_at,
    )


def _grant_found(grant_id: int) -> Grant:
    found = grant_get(grant_id=grant_id)
    if found is None:
        raise HttpError(404, "no grant with this id")
    return found


@grants.get("", auth=READ, response={200: GrantPage, 422: ValidationErrorOut})
def grant_list(request: HttpRequest, query: Query[GrantQuery]) -> GrantPage:
    """Grants newest first; filters `token`, `group`, `station_id`, `all_stations` and `active` (not revoked
    and valid now).

    Paged by keyset cursor: ?limit= (1 to 1,000, default 100), then pass next_cursor back as ?cursor=
    with the same filters until next_cursor is null; every row comes exactly once.
    """
    now = timezone.now()
    filters = GrantFilters(
        token=query.token,
        group=query.group,
        station_id=query.station_id,
        all_stations=query.all_stations,
        active=query.active,
    )
    page = grants_page(filters=filters, at=now, limit=query.limit, cursor=query.cursor)
    return GrantPage(items=[_grant_out(grant, now) for grant in page.items], next_cursor=page.next_cursor)


@grants.post("", auth=WRITE, response={201: GrantOut, 409: GrantExistsOut, 422: ValidationErrorOut})
def grant_add(request: HttpRequest, body: GrantIn) -> tuple[int, GrantOut | GrantExistsOut]:
    """Let a token, or every token of a group, charge at one station or (station_id null) at all.

    The token, group and station must exist (422 naming the field otherwise). An identical live grant
    (same holder, station and window) is not duplicated: 409 with that grant.
    """
    token = driver_token_get(value=body.token) if body.token is not None else None
    group = token_group_get(name=body.group) if body.group is not None else None
    station = station_get(station_id=body.station_id) if body.station_id is not None else None
    unknown = [
        (field, f"no {what} with this {key}")
        for field, given, found, what, key in [
            ("token", body.token, token, "driver token", "value"),
            ("group", body.group, group, "token group", "name"),
            ("station_id", body.station_id, station, "station", "id"),
        ]
        if given is not None and found is None
    ]
    if unknown:
        raise _invalid(*unknown)
    now = timezone.now()
    try:
        grant = grant_create(
            token=token,
            group=group,
            station=station,
            valid_from=body.valid_from,
            valid_until=body.valid_until,
            note=body.note,
        )
    except GrantExists as exc:
        return 409, GrantExistsOut(detail=str(exc), grant=_grant_out(exc.grant, now))
    return 201, _grant_out(grant_get(grant_id=grant.pk) or grant, now)


@grants.get("/{grant_id}", auth=READ, response={200: GrantOut, 404: ErrorOut, 422: ValidationErrorOut})
def grant_detail(request: HttpRequest, grant_id: GrantId) -> GrantOut:
    """One grant, revoked or not."""
    return _grant_out(_grant_found(grant_id), timezone.now())


@grants.patch(
    "/{grant_id}", auth=WRITE, response={200: GrantOut, 404: ErrorOut, 409: ErrorOut, 422: ValidationErrorOut}
)
def grant_change(request: HttpRequest, grant_id: GrantId, body: GrantPatch) -> GrantOut:
    """Change valid_from, valid_until (null: unbounded) or note of a live grant; 409 if it is revoked."""
    grant = grant_update(grant=_grant_found(grant_id), **_changes(body))
    return _grant_out(grant, timezone.now())


@grants.post(
    "/{grant_id}/revoke", auth=WRITE, response={200: GrantOut, 404: ErrorOut, 422: ValidationErrorOut}
)
def grant_revoke_route(request: HttpRequest, grant_id: GrantId) -> GrantOut:
    """End the grant for good: it no longer counts (no_grant where it was the only one). Idempotent."""
    return _grant_out(grant_revoke(grant=_grant_found(grant_id)), timezone.now())


router.add_router("/stations", stations)
router.add_router("/token-groups", groups)
router.add_router("/tokens", tokens)
router.add_router("/grants", grants)
