"""/api/v1/grants: which token or group may charge where, and when."""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from django.utils import timezone
from ninja import Query, Router

from apps.access.models import Grant
from apps.access.selectors import (
    GrantFilters,
    driver_token_get,
    grant_active,
    grant_get,
    grants_page,
    station_get,
    token_group_get,
)
from apps.access.services import GrantExists, grant_create, grant_revoke, grant_update
from apps.api.v1.acl.common import READ, WRITE, changes, found_or_404, invalid
from apps.api.v1.acl_schemas import (
    GrantExistsOut,
    GrantId,
    GrantIn,
    GrantOut,
    GrantPage,
    GrantPatch,
    GrantQuery,
)
from apps.api.v1.schemas import ErrorOut, ValidationErrorOut

router = Router(tags=["grants"])


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
    return found_or_404(grant_get(grant_id=grant_id), "no grant with this id")


@router.get("", auth=READ, response={200: GrantPage, 422: ValidationErrorOut})
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


@router.post("", auth=WRITE, response={201: GrantOut, 409: GrantExistsOut, 422: ValidationErrorOut})
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
        raise invalid(*unknown)
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


@router.get("/{grant_id}", auth=READ, response={200: GrantOut, 404: ErrorOut, 422: ValidationErrorOut})
def grant_detail(request: HttpRequest, grant_id: GrantId) -> GrantOut:
    """One grant, revoked or not."""
    return _grant_out(_grant_found(grant_id), timezone.now())


@router.patch(
    "/{grant_id}", auth=WRITE, response={200: GrantOut, 404: ErrorOut, 409: ErrorOut, 422: ValidationErrorOut}
)
def grant_change(request: HttpRequest, grant_id: GrantId, body: GrantPatch) -> GrantOut:
    """Change valid_from, valid_until (null: unbounded) or note of a live grant; 409 if it is revoked."""
    grant = grant_update(grant=_grant_found(grant_id), **changes(body))
    return _grant_out(grant, timezone.now())


@router.post(
    "/{grant_id}/revoke", auth=WRITE, response={200: GrantOut, 404: ErrorOut, 422: ValidationErrorOut}
)
def grant_revoke_route(request: HttpRequest, grant_id: GrantId) -> GrantOut:
    """End the grant for good: it no longer counts (no_grant where it was the only one). Idempotent."""
    return _grant_out(grant_revoke(grant=_grant_found(grant_id)), timezone.now())
