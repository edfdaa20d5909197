"""Writes to the access-control list, and the decision service every entry point calls."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from django.db import transaction

from apps.access.models import DriverToken, Grant, Station
from apps.access.policy import Decision, decide
from apps.access.selectors import authorization_facts_get


def authorization_decide(*, station_id: str, driver_token: str, at: datetime) -> Decision:
    """Decide against the current ACL; `station_id` is already normalized."""
    facts = authorization_facts_get(station_id=station_id, driver_token=driver_token)
    return decide(token=facts.token, grants=facts.grants, station_id=station_id, station=facts.station, at=at)


class AclInsertOutcome(StrEnum):
    SUCCESS = "success"
    EXISTS = "exists"


@transaction.atomic
def acl_insert(*, station_id: str, driver_token: str) -> AclInsertOutcome:
    """The original insertACL: make sure `driver_token` may charge at `station_id`.

    Creates the station and the token if they are new. `exists` when an identical live grant (this
    token, this station, no validity window) is already there.
    """
    station, _ = Station.objects.get_or_create(station_id=station_id)
    token, _ = DriverToken.objects.get_or_create(value=driver_token)
    # Lock the token row so two concurrent inserts cannot both create the grant.
    DriverToken.objects.select_for_update().filter(pk=token.pk).first()
    identical = Grant.objects.filter(
        token=token, station=station, revoked_at=None, valid_from=None, valid_until=None
    ).exists()
    if identical:
        return AclInsertOutcome.EXISTS
    Grant.objects.create(token=token, station=station, note="insertACL")
    return AclInsertOutcome.SUCCESS
