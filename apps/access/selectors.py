"""Reads of the access-control list: the decision's facts, lookups by natural key, and paged lists.

Every list is keyset-paginated on a unique, stable key (stations by id, tokens by value, groups by
name, grants newest first by id): a page never repeats or skips a row while rows are added, and the
cursor is opaque to callers.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from django.db.models import Model, Q, QuerySet

from apps.access.models import DriverToken, Grant, Station, TokenGroup
from apps.access.policy import GrantFacts, StationFacts, TokenFacts

Row = TypeVar("Row", bound=Model)


@dataclass(frozen=True)
class AuthorizationFacts:
    token: TokenFacts | None
    station: StationFacts | None
    grants: list[GrantFacts]


def authorization_facts_get(*, station_id: str, driver_token: str) -> AuthorizationFacts:
    """Everything decide() needs, in three indexed lookups (token by value, station by id, grants).

    The grant lookup names both index columns in every branch ((token or group) and (this station or
    every station)), so PostgreSQL reads only matching entries of the partial indexes
    grant_token_station / grant_group_station, however many grants a token or group has elsewhere.
    """
    token_row = (
        DriverToken.objects.filter(value=driver_token)
        .values("id", "status", "valid_until", "group_id")
        .first()
    )
    station_row = Station.objects.filter(station_id=station_id).values("enabled").first()
    station = StationFacts(enabled=station_row["enabled"]) if station_row else None
    if token_row is None:
        return AuthorizationFacts(token=None, station=station, grants=[])

    holders = [Q(token_id=token_row["id"])]
    if token_row["group_id"] is not None:
        holders.append(Q(group_id=token_row["group_id"]))
    covering = Q()
    for holder in holders:
        covering |= (holder & Q(station_id=station_id)) | (holder & Q(station_id=None))
    # order_by(): decide() needs no order, so no sort on top of the index probes.
    grant_rows = (
        Grant.objects.filter(covering, revoked_at=None)
        .order_by()
        .values_list("station_id", "valid_from", "valid_until")
    )
    return AuthorizationFacts(
        token=TokenFacts(
            blocked=token_row["status"] == DriverToken.Status.BLOCKED, valid_until=token_row["valid_until"]
        ),
        station=station,
        grants=[GrantFacts(station_id=s, valid_from=f, valid_until=u) for s, f, u in grant_rows],
    )


# --- lookups by natural key ---------------------------------------------------------------------


def station_get(*, station_id: str) -> Station | None:
    """The station with this (normalized) id, or None."""
    return Station.objects.filter(station_id=station_id).first()


def driver_token_get(*, value: str) -> DriverToken | None:
    return DriverToken.objects.select_related("group").filter(value=value).first()


def token_group_get(*, name: str) -> TokenGroup | None:
    return TokenGroup.objects.filter(name=name).first()


def grant_get(*, grant_id: int) -> Grant | None:
    return _grants().filter(pk=grant_id).first()


def grant_identical_get(
    *,
    token: DriverToken | None,
    group: TokenGroup | None,
    station: Station | None,
    valid_from: datetime | None,
    valid_until: datetime | None,
) -> Grant | None:
    """A live grant with exactly this holder, station and validity window, if there is one."""
    return (
        Grant.objects.filter(
            token=token,
            group=group,
            station=station,
            valid_from=valid_from,
            valid_until=valid_until,
            revoked_at=None,
        )
        .order_by("pk")
        .first()
    )


# --- paged lists --------------------------------------------------------------------------------


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class Page(Generic[Row]):
    items: list[Row]
    next_cursor: str | None


def _cursor_encode(kind: str, key: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}|{key}".encode()).decode().rstrip("=")


def _cursor_decode(kind: str, cursor: str) -> str:
    """The key after which the next page starts; BadCursor for anything this list did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor("not a cursor this list returned") from None
    found_kind, separator, key = raw.partition("|")
    if found_kind != kind or not separator or not key:
        raise BadCursor("not a cursor this list returned")
    return key


def _page(rows: QuerySet[Row], *, kind: str, key_field: str, limit: int) -> Page[Row]:
    # One row more than asked tells whether another page follows without a COUNT.
    found = list(rows[: limit + 1])
    if len(found) <= limit:
        return Page(items=found, next_cursor=None)
    last = found[limit - 1]
    return Page(items=found[:limit], next_cursor=_cursor_encode(kind, str(getattr(last, key_field))))


@dataclass(frozen=True)
class StationFilters:
    enabled: bool | None = None
    q: str | None = None  # part of the id, name or location, any case


def stations_page(*, filters: StationFilters, limit: int, cursor: str | None = None) -> Page[Station]:
    """Stations by id."""
    rows = Station.objects.order_by("station_id")
    if filters.enabled is not None:
        rows = rows.filter(enabled=filters.enabled)
    if filters.q:
        rows = rows.filter(
            Q(station_id__icontains=filters.q)
            | Q(name__icontains=filters.q)
            | Q(location__icontains=filters.q)
        )
    if cursor:
        rows = rows.filter(station_id__gt=_cursor_decode("station", cursor))
    return _page(rows, kind="station", key_field="station_id", limit=limit)


@dataclass(frozen=True)
class TokenFilters:
    status: str | None = None
    group: str | None = None  # group name
    type: str | None = None
    q: str | None = None  # part of the value or the note, any case


def driver_tokens_page(*, filters: TokenFilters, limit: int, cursor: str | None = None) -> Page[DriverToken]:
    """Driver tokens by value, blocked ones included (tokens are never deleted)."""
    rows = DriverToken.objects.select_related("group").order_by("value")
    if filters.status is not None:
        rows = rows.filter(status=filters.status)
    if filters.type is not None:
        rows = rows.filter(type=filters.type)
    if filters.group is not None:
        rows = rows.filter(group__name=filters.group)
    if filters.q:
        rows = rows.filter(Q(value__icontains=filters.q) | Q(note__icontains=filters.q))
    if cursor:
        rows = rows.filter(value__gt=_cursor_decode("token", cursor))
    return _page(rows, kind="token", key_field="value", limit=limit)


def token_groups_page(*, q: str | None = None, limit: int, cursor: str | None = None) -> Page[TokenGroup]:
    """Token groups by name."""
    rows = TokenGroup.objects.order_by("name")
    if q:
        rows = rows.filter(name__icontains=q)
    if cursor:
        rows = rows.filter(name__gt=_cursor_decode("group", cursor))
    return _page(rows, kind="group", key_field="name", limit=limit)


@dataclass(frozen=True)
class GrantFilters:
    token: str | None = None  # token value
    group: str | None = None  # group name
    station_id: str | None = None  # grants at this one station (all-stations grants not included)
    all_stations: bool | None = None  # True: only all-stations grants; False: only one-station grants
    active: bool | None = None  # True: not revoked and valid at `at`; False: the others


def grant_active_q(*, at: datetime) -> Q:
    """Grants that count at `at`: not revoked, and inside their validity window (half-open)."""
    return (
        Q(revoked_at=None)
        & (Q(valid_from=None) | Q(valid_from__lte=at))
        & (Q(valid_until=None) | Q(valid_until__gt=at))
    )


def _grants() -> QuerySet[Grant]:
    return Grant.objects.select_related("token", "group", "created_by")


def grants_page(*, filters: GrantFilters, at: datetime, limit: int, cursor: str | None = None) -> Page[Grant]:
    """Grants newest first (by id); `at` is the moment `active` refers to."""
    rows = _grants().order_by("-pk")
    if filters.token is not None:
        rows = rows.filter(token__value=filters.token)
    if filters.group is not None:
        rows = rows.filter(group__name=filters.group)
    if filters.station_id is not None:
        rows = rows.filter(station_id=filters.station_id)
    if filters.all_stations is not None:
        rows = rows.filter(station__isnull=filters.all_stations)
    if filters.active is True:
        rows = rows.filter(grant_active_q(at=at))
    elif filters.active is False:
        rows = rows.exclude(grant_active_q(at=at))
    if cursor:
        key = _cursor_decode("grant", cursor)
        if not key.isdigit():
            raise BadCursor("not a cursor this list returned")
        rows = rows.filter(pk__lt=int(key))
    return _page(rows, kind="grant", key_field="pk", limit=limit)
