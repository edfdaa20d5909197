"""Reads of the access-control list."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q

from apps.access.models import DriverToken, Grant, Station
from apps.access.policy import GrantFacts, StationFacts, TokenFacts


@dataclass(frozen=True)
class AuthorizationFacts:
    token: TokenFacts | None
    station: StationFacts | None
    grants: list[GrantFacts]


def authorization_facts_get(*, station_id: str, driver_token: str) -> AuthorizationFacts:
    """Everything decide() needs, in three indexed lookups (token by value, station by id, grants)."""
    token_row = (
        DriverToken.objects.filter(value=driver_token)
        .values("id", "status", "valid_until", "group_id")
        .first()
    )
    station_row = Station.objects.filter(station_id=station_id).values("enabled").first()
    station = StationFacts(enabled=station_row["enabled"]) if station_row else None
    if token_row is None:
        return AuthorizationFacts(token=None, station=station, grants=[])

    holder = Q(token_id=token_row["id"])
    if token_row["group_id"] is not None:
        holder |= Q(group_id=token_row["group_id"])
    grant_rows = (
        Grant.objects.filter(holder, revoked_at=None)
        .filter(Q(station_id=station_id) | Q(station_id=None))
        .values_list("station_id", "valid_from", "valid_until")
    )
    return AuthorizationFacts(
        token=TokenFacts(
            blocked=token_row["status"] == DriverToken.Status.BLOCKED, valid_until=token_row["valid_until"]
        ),
        station=station,
        grants=[GrantFacts(station_id=s, valid_from=f, valid_until=u) for s, f, u in grant_rows],
    )
