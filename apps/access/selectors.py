"""Reads of the access-control list: the decision's facts, lookups by natural key, and paged lists.

Every list is keyset-paginated on a unique, stable key (stations by id, tokens by value, groups by
name, grants newest first by id): a page never repeats or skips a row while rows are added, and the
cursor is opaque to callers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from django.db import connection
from django.db.models import Model, Q, QuerySet

from apps.access.models import DriverToken, Grant, Station, TokenGroup
from apps.access.policy import GrantFacts, StationFacts, TokenFacts, within_window
from apps.core.cursors import BadCursor, cursor_decode, cursor_encode

Row = TypeVar("Row", bound=Model)


@dataclass(frozen=True)
class AuthorizationFacts:
    token: TokenFacts | None
    station: StationFacts | None
    grants: list[GrantFacts]
    # The token's group, by name (OCPP's parentIdTag / groupIdToken); not a fact decide() uses.
    group: str | None = None


# The decision's one statement: for each asked (station, token) pair, the token, the station, and
# the token's and its group's live grants covering the station, in one round trip, however many
# pairs a batch asks about; each row ends with the pair it answers and the token's group name.
# Each grant probe names both columns of a partial index (holder, station), so only the index
# entries the decision needs are read, however many grants a token or group holds elsewhere. Raw
# SQL because this is the hot path: the ORM took several times the database's own time to build
# the four-branch filter (see benchmarks/acl_scale.py). The pairs are a CTE, since SQLite cannot
# name a VALUES list's columns in FROM. {values} is only "(%s, %s)" repeated.
_TOKEN, _GROUP = DriverToken._meta.db_table, TokenGroup._meta.db_table
_STATION, _GRANT = Station._meta.db_table, Grant._meta.db_table
_COLUMNS = """t.id IS NOT NULL, t.status, t.valid_until, s.enabled,
       g.id IS NOT NULL, g.station_id, g.valid_from, g.valid_until,
       asked.station_id, asked.value"""
_GRANT_COVERS = """AND ((g.token_id = t.id AND g.station_id = asked.station_id)
      OR (g.token_id = t.id AND g.station_id IS NULL)
      OR (g.group_id = t.group_id AND g.station_id = asked.station_id)
      OR (g.group_id = t.group_id AND g.station_id IS NULL))"""
# SQLite: plain joins (its planner probes the indexes row by row, with statistics or without).
_FACTS_SQL = f"""
WITH asked(station_id, value) AS (VALUES {{values}})
SELECT {_COLUMNS}, tg.name
FROM asked
LEFT JOIN {_TOKEN} t ON t.value = asked.value
LEFT JOIN {_GROUP} tg ON tg.id = t.group_id
LEFT JOIN {_STATION} s ON s.station_id = asked.station_id
LEFT JOIN {_GRANT} g ON g.revoked_at IS NULL {_GRANT_COVERS}
"""  # noqa: S608 - only table names from the models are formatted in; values are parameters
# PostgreSQL: the same rows, each lookup a LATERAL subquery, so the planner can only probe the
# indexes once per pair. With the plain joins it chose by the tables' statistics, and before the
# first ANALYZE of a freshly loaded ACL (autovacuum's, up to a minute after an import) it scanned
# every grant per pair: a batch of 6 pairs took 11.4 ms, of 100 pairs 127 ms, where these take
# 0.13 and 1.24 (analyzed: 0.11 and 1.39; benchmarks/results/ab-ocpp-2026-12-04). OFFSET 0 keeps
# PostgreSQL from pulling a subquery up into a plain join again.
_FACTS_SQL_POSTGRESQL = f"""
WITH asked(station_id, value) AS (VALUES {{values}})
SELECT {_COLUMNS}, t.group_name
FROM asked
LEFT JOIN LATERAL (
    SELECT t.id, t.status, t.valid_until, t.group_id, tg.name AS group_name
    FROM {_TOKEN} t LEFT JOIN {_GROUP} tg ON tg.id = t.group_id
    WHERE t.value = asked.value OFFSET 0
) t ON true
LEFT JOIN LATERAL (
    SELECT s.enabled FROM {_STATION} s WHERE s.station_id = asked.station_id OFFSET 0
) s ON true
LEFT JOIN LATERAL (
    SELECT g.id, g.station_id, g.valid_from, g.valid_until FROM {_GRANT} g
    WHERE g.revoked_at IS NULL {_GRANT_COVERS} OFFSET 0
) g ON true
"""  # noqa: S608 - as above


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands raw timestamps back naive (they are stored in UTC); PostgreSQL's are aware.
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _facts_from_rows(rows: Sequence[Sequence[Any]]) -> AuthorizationFacts:
    # One row per covering grant, or one row without a grant when there is none.
    token_known, status, token_until, enabled = rows[0][:4]
    return AuthorizationFacts(
        token=TokenFacts(blocked=status == DriverToken.Status.BLOCKED, valid_until=_aware(token_until))
        if token_known
        else None,
        station=StationFacts(enabled=enabled) if enabled is not None else None,
        grants=[
            GrantFacts(
                station_id=grant_station, valid_from=_aware(valid_from), valid_until=_aware(valid_until)
            )
            for found, grant_station, valid_from, valid_until in (row[4:8] for row in rows)
            if found
        ],
        group=rows[0][10],
    )


def authorization_facts_get(*, station_id: str, driver_token: str) -> AuthorizationFacts:
    """Everything decide() needs for one pair (see _FACTS_SQL)."""
    return authorization_facts_many(pairs=[(station_id, driver_token)])[(station_id, driver_token)]


def authorization_facts_many(
    *, pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], AuthorizationFacts]:
    """decide()'s facts for many (station_id, driver_token) pairs in one statement (a batch's)."""
    asked = sorted(set(pairs))
    if not asked:
        return {}
    values = ", ".join(["(%s, %s)"] * len(asked))
    sql = (_FACTS_SQL_POSTGRESQL if connection.vendor == "postgresql" else _FACTS_SQL).format(values=values)
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for pair in asked for value in pair])
        rows = cursor.fetchall()
    by_pair: dict[tuple[str, str], list[Sequence[Any]]] = {}
    for row in rows:
        by_pair.setdefault((row[8], row[9]), []).append(row)
    return {pair: _facts_from_rows(found) for pair, found in by_pair.items()}


# --- lookups by natural key ---------------------------------------------------------------------


def station_get(*, station_id: str) -> Station | None:
    """The station with this (normalized) id, or None."""
    return Station.objects.filter(station_id=station_id).first()


def station_by_ocpp_identity(*, identity: str) -> Station | None:
    """The station that connects over OCPP as `identity`, or None."""
    return Station.objects.filter(ocpp_identity=identity).first()


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


GRANT_ID_DIGITS_MAX = len(str(2**63 - 1))


@dataclass(frozen=True)
class Page(Generic[Row]):
    items: list[Row]
    next_cursor: str | None


def _cursor_encode(kind: str, key: str) -> str:
    return cursor_encode(kind, key)


def _cursor_decode(kind: str, cursor: str) -> str:
    """The key after which the next page starts; BadCursor for anything this list did not hand out."""
    found_kind, key = cursor_decode(cursor, parts=2)
    if found_kind != kind:
        raise BadCursor
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


def window_q(*, at: datetime, has_from: bool = True) -> Q:
    """Rows inside their validity window at `at`: policy.within_window as a filter (tokens have
    no valid_from: `has_from=False`)."""
    until = Q(valid_until=None) | Q(valid_until__gt=at)
    return (Q(valid_from=None) | Q(valid_from__lte=at)) & until if has_from else until


def grant_active_q(*, at: datetime) -> Q:
    """Grants that count at `at`: not revoked, and inside their validity window."""
    return Q(revoked_at=None) & window_q(at=at)


def grant_active(*, grant: Grant, at: datetime) -> bool:
    """Does this grant count at `at`? The same rule as grant_active_q, for a grant in hand."""
    return grant.revoked_at is None and within_window(grant.valid_from, grant.valid_until, at)


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
        # ASCII digits of at most a bigint: str.isdigit() also takes "²", and int() refuses 4,300+ digits.
        if not (key.isascii() and key.isdigit() and len(key) <= GRANT_ID_DIGITS_MAX and int(key) < 2**63):
            raise BadCursor("not a cursor this list returned")
        rows = rows.filter(pk__lt=int(key))
    return _page(rows, kind="grant", key_field="pk", limit=limit)
