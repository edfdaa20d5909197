"""What the OCPP gateway does with the database: who a station is, what it told us, and its decisions.

Plain, synchronous functions: the gateway (apps/ocpp/gateway.py) runs them on its database threads,
one call per OCPP message; every decision goes through the decision log like a REST caller's
(apps.charging's charging_requests_decide_sync, source "ocpp").
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.access.credentials import password_matches
from apps.access.identifiers import driver_token_check
from apps.access.policy import Decision, Reason, Status
from apps.access.selectors import station_by_ocpp_identity
from apps.charging.models import ChargingRequest
from apps.charging.services import SyncAnswer, charging_requests_decide_sync
from apps.core.sql import insert_sql
from apps.ocpp.models import ChargePointState, ChargingTransaction


@dataclass(frozen=True)
class StationLogin:
    station_id: str
    identity: str


class LoginRefused(Exception):
    """The upgrade is refused: `status` is the HTTP answer (401 unknown or wrong password, 403 disabled)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def station_login(*, identity: str, password: str | None) -> StationLogin:
    """OCPP security profile 1: the station's identity and password from HTTP Basic on the upgrade.

    An unknown identity and a wrong password are refused alike (401), so a caller cannot probe which
    identities exist; a disabled station that knows its password learns it is disabled (403).
    """
    station = station_by_ocpp_identity(identity=identity)
    stored = station.ocpp_password_hash if station is not None else ""
    if password is None or not password_matches(password, stored):
        raise LoginRefused(401, "unknown station or wrong password")
    assert station is not None  # a hash matched  # noqa: S101
    if not station.enabled:
        raise LoginRefused(403, "station disabled")
    return StationLogin(station_id=station.station_id, identity=identity)


# --- what the station told us -------------------------------------------------------------------


def connection_opened(*, station_id: str, protocol: str, at: datetime) -> None:
    """Mark the station connected, its row made on its first connection; the rest of it kept.

    One statement: after a gateway restart every station connects at once, and update_or_create's
    transaction (BEGIN, SELECT … FOR UPDATE, UPDATE, COMMIT) was the largest share of the database
    threads' time while they reconnected (py-spy, benchmarks/results/ab-ocpp-2026-12-04).
    """
    sql, params = insert_sql([ChargePointState(station_id=station_id, protocol=protocol, connected_at=at)])
    with connection.cursor() as cursor:
        cursor.execute(
            f"{sql} ON CONFLICT (station_id) DO UPDATE"
            " SET protocol = EXCLUDED.protocol, connected_at = EXCLUDED.connected_at",
            params,
        )


def connection_closed(*, station_id: str, connected_at: datetime, at: datetime) -> None:
    """Mark the station disconnected, unless a newer connection of it was noted meanwhile (the
    station reconnected to another gateway process before this socket's close was seen)."""
    ChargePointState.objects.filter(station_id=station_id, connected_at=connected_at).update(
        connected_at=None, disconnected_at=at
    )


def connections_forget(*, at: datetime) -> int:
    """At the gateway's start: no station is connected to a gateway that was not running."""
    return ChargePointState.objects.filter(connected_at__isnull=False).update(
        connected_at=None, disconnected_at=at
    )


def boot_record(
    *, station_id: str, vendor: str, model: str, firmware_version: str, serial_number: str, at: datetime
) -> None:
    ChargePointState.objects.update_or_create(
        station_id=station_id,
        defaults={
            "vendor": vendor[:50],
            "model": model[:50],
            "firmware_version": firmware_version[:50],
            "serial_number": serial_number[:50],
            "last_boot_at": at,
            "last_heartbeat_at": at,
        },
    )


def heartbeat_record(*, station_id: str, at: datetime) -> None:
    ChargePointState.objects.filter(station_id=station_id).update(last_heartbeat_at=at)


def status_record(*, station_id: str, status: str, at: datetime) -> None:
    ChargePointState.objects.filter(station_id=station_id).update(
        last_status=status, last_status_at=at, last_heartbeat_at=at
    )


# --- decisions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Authorization:
    decision: Decision
    # The token's group, for 1.6 parentIdTag / 2.0.1 groupIdToken.
    group: str | None
    # The decision log's row; None for a token no row can hold.
    request_id: uuid.UUID | None


def token_authorize(*, station_id: str, id_token: str) -> Authorization:
    """May `id_token` charge at this station now? Decided and logged like a REST caller's question."""
    return tokens_authorize(asks=[(station_id, id_token)])[0]


def tokens_authorize(*, asks: Sequence[tuple[str, str]]) -> list[Authorization]:
    """token_authorize for (station_id, id_token) asks that arrived together, in their order: one
    ACL read and one INSERT of their decision rows for all of them."""
    answers: list[Authorization | None] = []
    valid: list[tuple[str, str]] = []
    for station_id, id_token in asks:
        try:
            valid.append((station_id, driver_token_check(id_token)))
            answers.append(None)
        except ValueError:
            # The schemas let any string of the version's length through (1.6 idTags may hold any
            # printable character); a token outside the ACL's rule is in no ACL.
            answers.append(Authorization(Decision(Status.INVALID, Reason.INVALID_TOKEN_FORMAT), None, None))
    decided = iter(charging_requests_decide_sync(asks=valid, source=ChargingRequest.Source.OCPP))
    return [answer or _authorization_of(next(decided)) for answer in answers]


def _authorization_of(answer: SyncAnswer) -> Authorization:
    return Authorization(answer.decision, answer.group, answer.request_id)


def station_time(value: str | None) -> datetime:
    """A station's timestamp, or now when it sent none or one we cannot read (clocks drift; the
    message still counts)."""
    if value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if moment.tzinfo is not None:
                return moment
    return timezone.now()


def transaction_start(
    *, station_id: str, connector_id: int, id_tag: str, meter_start: int, timestamp: str
) -> tuple[int, Authorization]:
    """OCPP 1.6 StartTransaction: decide the idTag and number the transaction.

    A station that lost our answer sends the same StartTransaction again: the same transaction id
    comes back (same station, connector, idTag and start time), decided afresh.
    """
    authorization = token_authorize(station_id=station_id, id_token=id_tag)
    started_at = station_time(timestamp)
    fields = {
        "station_id": station_id,
        "protocol": "ocpp1.6",
        "transaction_ref": None,
        "connector_id": connector_id,
        "id_token": id_tag[:36],
        "started_at": started_at,
    }
    with transaction.atomic():
        row = ChargingTransaction.objects.select_for_update().filter(**fields).first()
        if row is None:
            row = ChargingTransaction(**fields, meter_start=meter_start)
        row.decision_id = authorization.request_id
        row.authorization_status = authorization.decision.status.value
        row.save()
    return row.id, authorization


def transaction_stop(
    *,
    station_id: str,
    transaction_id: int,
    meter_stop: int,
    timestamp: str,
    reason: str | None,
    id_tag: str | None,
) -> Authorization | None:
    """OCPP 1.6 StopTransaction: record the end (an unknown id is still answered, as 1.6 asks), and
    decide the idTag that stopped it, if the station sent one."""
    ChargingTransaction.objects.filter(id=transaction_id, station_id=station_id).update(
        stopped_at=station_time(timestamp), meter_stop=meter_stop, stop_reason=(reason or "")[:32]
    )
    return token_authorize(station_id=station_id, id_token=id_tag) if id_tag else None


def transaction_event(
    *,
    station_id: str,
    event_type: str,
    transaction_id: str,
    timestamp: str,
    connector_id: int | None,
    id_token: str | None,
    stopped_reason: str | None,
) -> Authorization | None:
    """OCPP 2.0.1 TransactionEvent: keep the transaction's start and end, decide its idToken if sent."""
    authorization = token_authorize(station_id=station_id, id_token=id_token) if id_token else None
    at = station_time(timestamp)
    changes: dict[str, object] = {}
    if connector_id is not None:
        changes["connector_id"] = connector_id
    if event_type == "Started":
        changes["started_at"] = at
    if event_type == "Ended":
        changes["stopped_at"] = at
        changes["stop_reason"] = (stopped_reason or "")[:32]
    if authorization is not None:
        changes.update(
            id_token=(id_token or "")[:36],
            decision_id=authorization.request_id,
            authorization_status=authorization.decision.status.value,
        )
    try:
        with transaction.atomic():
            ChargingTransaction.objects.update_or_create(
                station_id=station_id,
                transaction_ref=transaction_id,
                defaults=changes,
                create_defaults={**changes, "protocol": "ocpp2.0.1"},
            )
    except IntegrityError:
        # Two events of one new transaction at once: the other created it; apply ours on top.
        ChargingTransaction.objects.filter(station_id=station_id, transaction_ref=transaction_id).update(
            **changes
        )
    return authorization
