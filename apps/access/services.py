"""Writes to the access-control list, and the decision service every entry point calls.

The API, the admin, the CSV import and insertACL all write through these functions, so the same
input is refused the same way everywhere: AclInvalid names the field the caller can fix, AclConflict
says the thing to create is already there.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum, StrEnum
from typing import Final, Literal

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.access.credentials import identity_check, password_check, password_generate, password_hash
from apps.access.identifiers import driver_token_check, station_id_normalize
from apps.access.models import DriverToken, Grant, Station, TokenGroup
from apps.access.policy import Decision, decide
from apps.access.selectors import (
    authorization_facts_get,
    authorization_facts_many,
    grant_identical_get,
    station_get,
)


class AclInvalid(ValueError):
    """Input the caller can fix; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class AclConflict(Exception):
    """What the caller asked to create exists already, or the row is in a state that forbids the change."""


class GrantExists(AclConflict):
    def __init__(self, grant: Grant) -> None:
        super().__init__(f"an identical live grant exists (id {grant.pk})")
        self.grant = grant


class Unchanged(Enum):
    """Marks an update argument the caller left out (None is a value: it clears a validity bound)."""

    UNCHANGED = "unchanged"


UNCHANGED: Final = Unchanged.UNCHANGED
Keep = Literal[Unchanged.UNCHANGED]


def authorization_decide(*, station_id: str, driver_token: str, at: datetime) -> Decision:
    """Decide against the current ACL; `station_id` is already normalized."""
    facts = authorization_facts_get(station_id=station_id, driver_token=driver_token)
    return decide(token=facts.token, grants=facts.grants, station_id=station_id, station=facts.station, at=at)


def authorizations_decide(
    *, pairs: Iterable[tuple[str, str]], at: datetime
) -> dict[tuple[str, str], Decision]:
    """Decide many (station_id, driver_token) pairs against the ACL with one read (a batch's)."""
    return {
        pair: decision for pair, (decision, _) in authorizations_decide_grouped(pairs=pairs, at=at).items()
    }


def authorizations_decide_grouped(
    *, pairs: Iterable[tuple[str, str]], at: datetime
) -> dict[tuple[str, str], tuple[Decision, str | None]]:
    """authorizations_decide, each decision with its token's group name (OCPP answers name it)."""
    facts = authorization_facts_many(pairs=pairs)
    return {
        (station_id, driver_token): (
            decide(
                token=found.token, grants=found.grants, station_id=station_id, station=found.station, at=at
            ),
            found.group,
        )
        for (station_id, driver_token), found in facts.items()
    }


def _window_check(valid_from: datetime | None, valid_until: datetime | None) -> None:
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise AclInvalid("valid_until", "must be later than valid_from")


# --- stations -----------------------------------------------------------------------------------


def station_create(*, station_id: str, name: str = "", location: str = "", enabled: bool = True) -> Station:
    """Add a station under the stored form of `station_id` (see identifiers.station_id_normalize).

    AclInvalid("station_id") for a malformed id; AclConflict when a station has that id already.
    """
    try:
        normalized = station_id_normalize(station_id)
    except ValueError as exc:
        raise AclInvalid("station_id", str(exc)) from None
    try:
        with transaction.atomic():
            return Station.objects.create(
                station_id=normalized, name=name, location=location, enabled=enabled
            )
    except IntegrityError:
        raise AclConflict(f"station {normalized} exists") from None


def _changes_apply(instance: object, changes: dict[str, object]) -> list[str]:
    """Set every field whose value is not UNCHANGED; the names set, for save(update_fields=...)."""
    changed = [field for field, value in changes.items() if value is not UNCHANGED]
    for field in changed:
        setattr(instance, field, changes[field])
    return changed


def station_update(
    *,
    station: Station,
    name: str | Keep = UNCHANGED,
    location: str | Keep = UNCHANGED,
    enabled: bool | Keep = UNCHANGED,
) -> Station:
    """Change the given fields of a station; a disabled station refuses every token."""
    changed = _changes_apply(station, {"name": name, "location": location, "enabled": enabled})
    if changed:
        station.save(update_fields=[*changed, "updated_at"])
    return station


def station_enable(*, station: Station) -> Station:
    """Let the station authorize tokens again."""
    return station_update(station=station, enabled=True)


def station_disable(*, station: Station) -> Station:
    """Refuse every token at this station (maintenance), grants kept."""
    return station_update(station=station, enabled=False)


def station_ocpp_enroll(
    *, station: Station, identity: str | None, password: str | Keep | None = None
) -> str | None:
    """Let the station connect over OCPP as `identity` with `password` (generated when None).

    Returns the password in the clear, the only time anyone sees it: only its hash is stored.
    UNCHANGED as the password renames the identity and keeps the password (None is returned). None as
    the identity takes the station off OCPP (identity and password both cleared).
    AclInvalid("ocpp_identity" / "ocpp_password") for malformed values; AclConflict when another
    station has that identity.
    """
    if identity is None:
        if password is not None and password is not UNCHANGED:
            raise AclInvalid("ocpp_password", "needs an ocpp_identity")
        station.ocpp_identity, station.ocpp_password_hash = None, ""
        station.save(update_fields=["ocpp_identity", "ocpp_password_hash", "updated_at"])
        return None
    try:
        identity = identity_check(identity)
    except ValueError as exc:
        raise AclInvalid("ocpp_identity", str(exc)) from None
    before = station.ocpp_identity, station.ocpp_password_hash
    if password is UNCHANGED:
        if not station.ocpp_password_hash:
            raise AclInvalid("ocpp_password", "the station has none yet: set or generate one")
        hashed = station.ocpp_password_hash
    else:
        try:
            password = password_generate() if password is None else password_check(password)
        except ValueError as exc:
            raise AclInvalid("ocpp_password", str(exc)) from None
        hashed = password_hash(password)
    station.ocpp_identity, station.ocpp_password_hash = identity, hashed
    try:
        with transaction.atomic():
            station.save(update_fields=["ocpp_identity", "ocpp_password_hash", "updated_at"])
    except IntegrityError:
        station.ocpp_identity, station.ocpp_password_hash = before
        raise AclConflict(f"another station connects as {identity!r}") from None
    return None if password is UNCHANGED else password


# --- token groups and driver tokens -------------------------------------------------------------


def token_group_create(*, name: str, note: str = "") -> TokenGroup:
    """Add a group (a fleet); AclConflict when the name is taken."""
    name = name.strip()
    if not name:
        raise AclInvalid("name", "must not be blank")
    try:
        with transaction.atomic():
            return TokenGroup.objects.create(name=name, note=note)
    except IntegrityError:
        raise AclConflict(f"group {name!r} exists") from None


def token_group_update(
    *, group: TokenGroup, name: str | Keep = UNCHANGED, note: str | Keep = UNCHANGED
) -> TokenGroup:
    """Rename a group or change its note; AclInvalid for a blank name, AclConflict when it is taken."""
    if isinstance(name, str):
        name = name.strip()
        if not name:
            raise AclInvalid("name", "must not be blank")
    changed = _changes_apply(group, {"name": name, "note": note})
    if changed:
        try:
            with transaction.atomic():
                group.save(update_fields=changed)
        except IntegrityError:
            raise AclConflict(f"group {group.name!r} exists") from None
    return group


def _token_type_check(value: str) -> str:
    if value not in DriverToken.Type.values:
        raise AclInvalid("type", f"must be one of {', '.join(DriverToken.Type.values)}")
    return value


def token_create(
    *,
    value: str,
    type: str = DriverToken.Type.RFID,
    valid_until: datetime | None = None,
    group: TokenGroup | None = None,
    note: str = "",
) -> DriverToken:
    """Add an active driver token; AclInvalid("value") for a malformed one, AclConflict if it exists."""
    try:
        driver_token_check(value)
    except ValueError as exc:
        raise AclInvalid("value", str(exc)) from None
    token = DriverToken(
        value=value, type=_token_type_check(type), valid_until=valid_until, group=group, note=note
    )
    try:
        with transaction.atomic():
            token.save(force_insert=True)
    except IntegrityError:
        raise AclConflict("this driver token exists") from None
    return token


def token_update(
    *,
    token: DriverToken,
    type: str | Keep = UNCHANGED,
    valid_until: datetime | Keep | None = UNCHANGED,
    group: TokenGroup | Keep | None = UNCHANGED,
    note: str | Keep = UNCHANGED,
) -> DriverToken:
    """Change the given fields of a token (its status changes only by token_block / token_unblock)."""
    if type is not UNCHANGED:
        type = _token_type_check(type)
    changed = _changes_apply(token, {"type": type, "valid_until": valid_until, "group": group, "note": note})
    if changed:
        token.save(update_fields=[*changed, "updated_at"])
    return token


def _token_status_set(token: DriverToken, status: DriverToken.Status) -> DriverToken:
    if token.status != status:
        token.status = status
        token.save(update_fields=["status", "updated_at"])
    return token


def token_block(*, token: DriverToken) -> DriverToken:
    """Refuse this token everywhere, grants kept. This is how a token is revoked: OCPI's valid=false."""
    return _token_status_set(token, DriverToken.Status.BLOCKED)


def token_unblock(*, token: DriverToken) -> DriverToken:
    """Let a blocked token charge again wherever its grants allow."""
    return _token_status_set(token, DriverToken.Status.ACTIVE)


# --- grants -------------------------------------------------------------------------------------


def grant_create(
    *,
    token: DriverToken | None = None,
    group: TokenGroup | None = None,
    station: Station | None,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    note: str = "",
    created_by: AbstractBaseUser | None = None,
) -> Grant:
    """Let a token, or every token of a group, charge at `station` (None: every station).

    The window is half-open: valid from valid_from (inclusive) until valid_until (exclusive).
    AclInvalid names the field for a grant with both or neither holder, or an empty window; GrantExists
    (an AclConflict carrying the existing grant) when an identical live grant is there already.
    """
    holder_rows: QuerySet[DriverToken] | QuerySet[TokenGroup]
    if token is not None and group is None:
        holder_rows = DriverToken.objects.filter(pk=token.pk)
    elif group is not None and token is None:
        holder_rows = TokenGroup.objects.filter(pk=group.pk)
    elif token is None:
        raise AclInvalid("token", "give a token or a group")
    else:
        raise AclInvalid("token", "give a token or a group, not both")
    _window_check(valid_from, valid_until)
    with transaction.atomic():
        # Lock the holder so two concurrent requests cannot both miss the identical grant and insert it.
        holder_rows.select_for_update().values_list("pk").first()
        existing = grant_identical_get(
            token=token, group=group, station=station, valid_from=valid_from, valid_until=valid_until
        )
        if existing is not None:
            raise GrantExists(existing)
        return Grant.objects.create(
            token=token,
            group=group,
            station=station,
            valid_from=valid_from,
            valid_until=valid_until,
            note=note,
            created_by_id=created_by.pk if created_by is not None else None,
        )


def grant_update(
    *,
    grant: Grant,
    valid_from: datetime | Keep | None = UNCHANGED,
    valid_until: datetime | Keep | None = UNCHANGED,
    note: str | Keep = UNCHANGED,
) -> Grant:
    """Change a live grant's window or note. A revoked grant stays as it was (AclConflict)."""
    if grant.revoked_at is not None:
        raise AclConflict("this grant is revoked; create a new one instead")
    new_from = grant.valid_from if valid_from is UNCHANGED else valid_from
    new_until = grant.valid_until if valid_until is UNCHANGED else valid_until
    _window_check(new_from, new_until)
    changed = _changes_apply(grant, {"valid_from": valid_from, "valid_until": valid_until, "note": note})
    if changed:
        grant.save(update_fields=changed)
    return grant


def grant_revoke(*, grant: Grant, at: datetime | None = None) -> Grant:
    """End a grant for good: it no longer counts in decisions. Revoking twice keeps the first time."""
    # Conditional update: of two concurrent revokes, the first one's time stands.
    Grant.objects.filter(pk=grant.pk, revoked_at=None).update(revoked_at=at or timezone.now())
    grant.refresh_from_db(fields=["revoked_at"])
    return grant


# --- the original insertACL ---------------------------------------------------------------------


class AclInsertOutcome(StrEnum):
    SUCCESS = "success"
    EXISTS = "exists"


def station_ensure(*, station_id: str) -> Station:
    """The station with this id (any accepted form), added if it is new, as insertACL does.

    AclInvalid("station_id") for a malformed id."""
    try:
        normalized = station_id_normalize(station_id)
    except ValueError as exc:
        raise AclInvalid("station_id", str(exc)) from None
    found = station_get(station_id=normalized)
    if found is not None:
        return found
    try:
        return station_create(station_id=normalized)
    except AclConflict:  # created by a concurrent request since we looked
        return Station.objects.get(station_id=normalized)


def _token_ensure(value: str) -> DriverToken:
    found = DriverToken.objects.filter(value=value).first()
    if found is not None:
        return found
    try:
        return token_create(value=value)
    except AclConflict:  # created by a concurrent request since we looked
        return DriverToken.objects.get(value=value)


@transaction.atomic
def acl_insert(*, station_id: str, driver_token: str) -> AclInsertOutcome:
    """The original insertACL: make sure `driver_token` may charge at `station_id`.

    Creates the station and the token if they are new. `exists` when an identical live grant (this
    token, this station, no validity window) is already there.
    """
    station = station_ensure(station_id=station_id)
    token = _token_ensure(driver_token)
    try:
        grant_create(token=token, station=station, note="insertACL")
    except GrantExists:
        return AclInsertOutcome.EXISTS
    return AclInsertOutcome.SUCCESS
