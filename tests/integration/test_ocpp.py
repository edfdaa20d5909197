"""The OCPP gateway as stations meet it: `manage.py run_ocpp` as a real process, and the `ocpp`
package's own ChargePoint (1.6 and 2.0.1) over a real WebSocket, against the test's PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from ocpp.exceptions import OCPPError
from ocpp.v16 import call as call16
from ocpp.v16 import enums as enums16
from ocpp.v201 import call as call201
from ocpp.v201 import datatypes as types201
from ocpp.v201 import enums as enums201
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from apps.access.models import DriverToken, Station
from apps.access.services import (
    grant_create,
    station_create,
    station_disable,
    station_ocpp_enroll,
    token_block,
    token_create,
    token_group_create,
)
from apps.charging.models import ChargingRequest
from apps.ocpp.models import ChargePointState, ChargingTransaction
from harness.ocpp_stations import basic_auth, station_connected
from harness.processes import Process, free_port, wait_until

STATION_ID = "5b0d8a2e-7c1f-4e3a-9d6b-2f4e8c1a0b97"
OTHER_STATION_ID = "7c2e9b3f-8d20-4f4b-ae7c-304f9d2b1ca8"
IDENTITY = "EVB-P2023-0017"
PASSWORD = "station-password-0123456789"
# Tokens of OCPP 1.6's 20 characters at most.
ALLOWED = "04A2B3C4"  # an RFID UID of 8 hex digits, as readers send it
BLOCKED = "OCPP-BLOCKED-0000001"
EXPIRED = "OCPP-EXPIRED-0000001"
NO_GRANT = "OCPP-NOGRANT-0000001"
UNKNOWN = "OCPP-UNKNOWN-0000001"
ELSEWHERE = "OCPP-ELSEWHER-000001"


@dataclass
class Gateway:
    url: str
    process: Process


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def gateway_start(env: dict[str, str], log_dir: Path, **extra: str) -> Gateway:
    port = free_port()
    process = Process(
        "ocpp",
        [sys.executable, "manage.py", "run_ocpp", "--port", str(port)],
        log_dir / f"ocpp-{uuid.uuid4().hex[:6]}.log",
        env={**env, "CHARGE_OCPP_METRICS_PORT": "0", "LOG_LEVEL": "INFO", **extra},
    )
    process.start()

    def up() -> bool:
        process.ensure_running()
        return _listening(port)

    wait_until(up, timeout=60, what="ocpp gateway")
    return Gateway(url=f"ws://127.0.0.1:{port}", process=process)


@pytest.fixture
def acl(transactional_db: None) -> dict[str, Any]:
    """A station that connects as IDENTITY, a group, and tokens for every answer."""
    now = timezone.now()
    station = station_create(station_id=STATION_ID, name="OCPP test station")
    station_ocpp_enroll(station=station, identity=IDENTITY, password=PASSWORD)
    elsewhere = station_create(station_id=OTHER_STATION_ID)
    fleet = token_group_create(name="fleet-ocpp")
    until = (now + timedelta(days=30)).replace(microsecond=0)
    allowed = token_create(value=ALLOWED, group=fleet)
    grant_create(group=fleet, station=station, valid_until=until)
    blocked = token_create(value=BLOCKED)
    grant_create(token=blocked, station=station)
    token_block(token=blocked)
    grant_create(token=token_create(value=EXPIRED, valid_until=now - timedelta(days=1)), station=station)
    token_create(value=NO_GRANT)
    grant_create(token=token_create(value=ELSEWHERE), station=elsewhere)
    return {"station": station, "allowed": allowed, "until": until}


@pytest.fixture
def gateway(stack_env: dict[str, str], tmp_path: Path, acl: dict[str, Any]) -> Iterator[Gateway]:
    running = gateway_start(stack_env, tmp_path)
    try:
        yield running
    finally:
        running.process.stop()
        sys.stderr.write(f"\n--- ocpp log ---\n{running.process.log_tail(80)}\n")


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, timeout=60))


def _moment(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text)


def test_an_ocpp16_station_boots_beats_and_gets_each_authorization_status(
    gateway: Gateway, acl: dict[str, Any]
) -> None:
    async def session() -> dict[str, Any]:
        async with station_connected(gateway.url, IDENTITY, PASSWORD, protocol="ocpp1.6") as station:
            assert station.websocket.subprotocol == "ocpp1.6"
            boot = await station.call(
                call16.BootNotification(
                    charge_point_vendor="ACME", charge_point_model="Wallbox 7", firmware_version="1.2.3"
                )
            )
            beat = await station.call(call16.Heartbeat())
            await station.call(
                call16.StatusNotification(
                    connector_id=1,
                    error_code=enums16.ChargePointErrorCode.no_error,
                    status=enums16.ChargePointStatus.available,
                )
            )
            answers = {
                token: (await station.call(call16.Authorize(id_tag=token))).id_tag_info
                for token in (ALLOWED, BLOCKED, EXPIRED, NO_GRANT, UNKNOWN, ELSEWHERE)
            }
            return {"boot": boot, "beat": beat, "answers": answers}

    result = run(session())

    assert result["boot"].status == "Accepted"
    assert result["boot"].interval == 300
    assert _moment(result["beat"].current_time.replace("Z", "+00:00")).tzinfo is not None
    answers = result["answers"]
    assert answers[ALLOWED]["status"] == "Accepted"
    assert answers[ALLOWED]["parent_id_tag"] == "fleet-ocpp"
    assert _moment(answers[ALLOWED]["expiry_date"].replace("Z", "+00:00")) == acl["until"]
    assert {
        token: answers[token]["status"] for token in (BLOCKED, EXPIRED, NO_GRANT, UNKNOWN, ELSEWHERE)
    } == {
        BLOCKED: "Blocked",
        EXPIRED: "Expired",
        NO_GRANT: "Invalid",
        UNKNOWN: "Invalid",
        ELSEWHERE: "Invalid",
    }
    assert "expiry_date" not in answers[BLOCKED]

    state = ChargePointState.objects.get(station_id=STATION_ID)
    assert (state.vendor, state.model, state.firmware_version, state.protocol) == (
        "ACME",
        "Wallbox 7",
        "1.2.3",
        "ocpp1.6",
    )
    assert state.last_boot_at is not None
    assert state.last_heartbeat_at is not None
    assert state.last_status == "connector 1: Available"
    # Closed by now: the gateway recorded the disconnect.
    wait_until(
        lambda: ChargePointState.objects.get(station_id=STATION_ID).connected_at is None,
        timeout=10,
        what="disconnect recorded",
    )
    # One decision-log row per Authorize, source ocpp, at the station's ACL id.
    logged = ChargingRequest.objects.filter(source="ocpp", station_id=STATION_ID)
    assert sorted(logged.values_list("driver_token", "reason")) == sorted(
        [
            (ALLOWED, "granted"),
            (BLOCKED, "token_blocked"),
            (EXPIRED, "token_expired"),
            (NO_GRANT, "no_grant"),
            (UNKNOWN, "unknown_token"),
            (ELSEWHERE, "no_grant"),
        ]
    )


def test_an_ocpp16_transaction_starts_with_its_decision_and_stops(gateway: Gateway) -> None:
    started = "2026-12-02T10:00:00Z"

    async def session() -> tuple[Any, Any, Any, Any]:
        async with station_connected(gateway.url, IDENTITY, PASSWORD, protocol="ocpp1.6") as station:
            start = await station.call(
                call16.StartTransaction(connector_id=1, id_tag=ALLOWED, meter_start=1000, timestamp=started)
            )
            # The answer was lost, the station sends it again: the same transaction.
            again = await station.call(
                call16.StartTransaction(connector_id=1, id_tag=ALLOWED, meter_start=1000, timestamp=started)
            )
            refused = await station.call(
                call16.StartTransaction(
                    connector_id=2, id_tag=BLOCKED, meter_start=0, timestamp="2026-12-02T10:01:00Z"
                )
            )
            stop = await station.call(
                call16.StopTransaction(
                    meter_stop=1500,
                    timestamp="2026-12-02T10:30:00Z",
                    transaction_id=start.transaction_id,
                    id_tag=ALLOWED,
                    reason=enums16.Reason.local,
                )
            )
            return start, again, refused, stop

    start, again, refused, stop = run(session())

    assert start.id_tag_info["status"] == "Accepted"
    assert isinstance(start.transaction_id, int)
    assert again.transaction_id == start.transaction_id
    assert refused.id_tag_info["status"] == "Blocked"
    assert refused.transaction_id != start.transaction_id
    assert stop.id_tag_info["status"] == "Accepted"
    row = ChargingTransaction.objects.get(id=start.transaction_id)
    assert (row.station_id, row.connector_id, row.id_token, row.authorization_status) == (
        STATION_ID,
        1,
        ALLOWED,
        "allowed",
    )
    assert (row.meter_start, row.meter_stop, row.stop_reason) == (1000, 1500, "Local")
    assert row.stopped_at is not None
    assert row.decision is not None
    assert row.decision.source == "ocpp"


def test_an_ocpp201_station_gets_2_0_1_statuses_and_reports_a_transaction(
    gateway: Gateway, acl: dict[str, Any]
) -> None:
    def token(value: str) -> types201.IdTokenType:
        return types201.IdTokenType(id_token=value, type=enums201.IdTokenEnumType.iso14443)

    async def session() -> dict[str, Any]:
        async with station_connected(gateway.url, IDENTITY, PASSWORD, protocol="ocpp2.0.1") as station:
            assert station.websocket.subprotocol == "ocpp2.0.1"
            boot = await station.call(
                call201.BootNotification(
                    charging_station=types201.ChargingStationType(model="Wallbox 9", vendor_name="ACME"),
                    reason=enums201.BootReasonEnumType.power_up,
                )
            )
            await station.call(call201.Heartbeat())
            await station.call(
                call201.StatusNotification(
                    timestamp="2026-12-02T10:00:00Z",
                    connector_status=enums201.ConnectorStatusEnumType.occupied,
                    evse_id=1,
                    connector_id=1,
                )
            )
            answers = {
                value: (await station.call(call201.Authorize(id_token=token(value)))).id_token_info
                for value in (ALLOWED, BLOCKED, EXPIRED, NO_GRANT, UNKNOWN)
            }
            started = await station.call(
                call201.TransactionEvent(
                    event_type=enums201.TransactionEventEnumType.started,
                    timestamp="2026-12-02T10:00:00Z",
                    trigger_reason=enums201.TriggerReasonEnumType.authorized,
                    seq_no=0,
                    transaction_info=types201.TransactionType(transaction_id="tx-201-0001"),
                    evse=types201.EVSEType(id=1, connector_id=1),
                    id_token=token(ALLOWED),
                )
            )
            ended = await station.call(
                call201.TransactionEvent(
                    event_type=enums201.TransactionEventEnumType.ended,
                    timestamp="2026-12-02T10:40:00Z",
                    trigger_reason=enums201.TriggerReasonEnumType.stop_authorized,
                    seq_no=1,
                    transaction_info=types201.TransactionType(
                        transaction_id="tx-201-0001", stopped_reason=enums201.ReasonEnumType.local
                    ),
                )
            )
            return {"boot": boot, "answers": answers, "started": started, "ended": ended}

    result = run(session())

    assert result["boot"].status == "Accepted"
    answers = result["answers"]
    assert answers[ALLOWED]["status"] == "Accepted"
    assert answers[ALLOWED]["group_id_token"] == {"id_token": "fleet-ocpp", "type": "Central"}
    assert _moment(answers[ALLOWED]["cache_expiry_date_time"].replace("Z", "+00:00")) == acl["until"]
    assert {value: answers[value]["status"] for value in (BLOCKED, EXPIRED, NO_GRANT, UNKNOWN)} == {
        BLOCKED: "Blocked",
        EXPIRED: "Expired",
        NO_GRANT: "NotAtThisLocation",
        UNKNOWN: "Unknown",
    }
    assert result["started"].id_token_info["status"] == "Accepted"
    assert result["ended"].id_token_info is None
    row = ChargingTransaction.objects.get(station_id=STATION_ID, transaction_ref="tx-201-0001")
    assert (row.protocol, row.connector_id, row.id_token, row.stop_reason) == (
        "ocpp2.0.1",
        1,
        ALLOWED,
        "Local",
    )
    assert row.started_at is not None
    assert row.stopped_at is not None
    state = ChargePointState.objects.get(station_id=STATION_ID)
    assert (state.vendor, state.model, state.last_status) == (
        "ACME",
        "Wallbox 9",
        "evse 1 connector 1: Occupied",
    )


def _refused_status(url: str, identity: str, password: str | None, protocols: list[str] | None = None) -> int:
    async def attempt() -> int:
        headers = {"Authorization": basic_auth(identity, password)} if password is not None else {}
        try:
            async with connect(
                f"{url}/ocpp/{identity}",
                subprotocols=[Subprotocol(p) for p in (protocols if protocols is not None else ["ocpp1.6"])],
                additional_headers=headers,
            ):
                return 101
        except InvalidStatus as refused:
            return refused.response.status_code

    return int(run(attempt()))


def test_the_upgrade_refuses_strangers_wrong_passwords_and_disabled_stations(gateway: Gateway) -> None:
    assert _refused_status(gateway.url, IDENTITY, "wrong-password-0123456789") == 401
    assert _refused_status(gateway.url, IDENTITY, None) == 401
    assert _refused_status(gateway.url, "NO-SUCH-STATION", PASSWORD) == 401
    assert _refused_status(gateway.url, IDENTITY, PASSWORD, protocols=["ocpp1.5"]) == 400
    assert _refused_status(gateway.url, IDENTITY, PASSWORD) == 101
    station_disable(station=Station.objects.get(station_id=STATION_ID))
    assert _refused_status(gateway.url, IDENTITY, PASSWORD) == 403


def test_malformed_frames_unknown_actions_and_bad_payloads_get_callerrors_and_the_socket_stays(
    gateway: Gateway,
) -> None:
    async def session() -> dict[str, Any]:
        async with connect(
            f"{gateway.url}/ocpp/{IDENTITY}",
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers={"Authorization": basic_auth(IDENTITY, PASSWORD)},
        ) as websocket:

            async def exchange(frame: str) -> Any:
                await websocket.send(frame)
                return json.loads(await asyncio.wait_for(websocket.recv(), timeout=10))

            answers = {
                "not json": await exchange("this is not json"),
                "not a list": await exchange('{"Authorize": 1}'),
                "unknown action": await exchange('[2, "m-1", "FlyToTheMoon", {}]'),
                "no handler": await exchange('[2, "m-2", "DataTransfer", {"vendorId": "acme"}]'),
                "bad payload": await exchange('[2, "m-3", "Authorize", {"idTag": 42}]'),
                "missing field": await exchange('[2, "m-4", "Authorize", {}]'),
                "still answers": await exchange(f'[2, "m-5", "Authorize", {{"idTag": "{ALLOWED}"}}]'),
            }
            # A frame above OCPP_MAX_FRAME_BYTES (64 KiB): closed with 1009, the gateway lives on.
            await websocket.send('[2, "m-6", "Heartbeat", {"pad": "' + "x" * 70_000 + '"}]')
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(websocket.recv(), timeout=10)
            answers["too big"] = closed.value.rcvd.code if closed.value.rcvd else None
            return answers

    answers = run(session())

    assert answers["not json"][:3] == [4, "-1", "FormationViolation"]
    assert answers["not a list"][0] == 4
    assert answers["unknown action"][:3] == [4, "m-1", "NotSupported"]
    assert answers["no handler"][:3] == [4, "m-2", "NotImplemented"]
    assert answers["bad payload"][:2] == [4, "m-3"]
    assert answers["bad payload"][2] in {"TypeConstraintViolation", "FormationViolation"}
    assert answers["missing field"][:2] == [4, "m-4"]
    assert answers["still answers"][:2] == [3, "m-5"]
    assert answers["still answers"][2]["idTagInfo"]["status"] == "Accepted"
    assert answers["too big"] == 1009

    async def another() -> str:
        async with station_connected(gateway.url, IDENTITY, PASSWORD) as station:
            return str((await station.call(call16.Authorize(id_tag=ALLOWED))).id_tag_info["status"])

    assert run(another()) == "Accepted"
    gateway.process.ensure_running()


def test_a_flooding_station_is_rate_limited_with_callerrors(
    stack_env: dict[str, str], tmp_path: Path, acl: Any
) -> None:
    limited = gateway_start(stack_env, tmp_path, OCPP_CALLS_PER_S="1", OCPP_CALL_BURST="3")
    try:

        async def session() -> list[str]:
            async with station_connected(limited.url, IDENTITY, PASSWORD) as station:
                outcomes = []
                for _ in range(6):
                    try:
                        await station.call(call16.Heartbeat())
                        outcomes.append("answered")
                    except OCPPError as error:
                        outcomes.append(type(error).__name__)
                return outcomes

        outcomes = run(session())
    finally:
        limited.process.stop()
    assert outcomes[:3] == ["answered"] * 3
    assert "GenericError" in outcomes[3:]


def test_200_stations_connected_at_once_each_authorize_and_all_are_answered(
    gateway: Gateway, transactional_db: None
) -> None:
    stations = []
    for n in range(200):
        station = station_create(station_id=str(uuid.UUID(int=n + 1)))
        station_ocpp_enroll(station=station, identity=f"LOAD-{n:03d}", password=PASSWORD)
        stations.append(station)
    allowed = DriverToken.objects.get(value=ALLOWED)
    grant_create(token=allowed, station=None)

    async def one(n: int, ready: asyncio.Barrier) -> str:
        protocol = "ocpp2.0.1" if n % 2 else "ocpp1.6"
        async with station_connected(gateway.url, f"LOAD-{n:03d}", PASSWORD, protocol=protocol) as station:
            await ready.wait()  # all 200 connected before any asks
            if protocol == "ocpp1.6":
                answer = await station.call(call16.Authorize(id_tag=ALLOWED))
                return str(answer.id_tag_info["status"])
            answer = await station.call(
                call201.Authorize(
                    id_token=types201.IdTokenType(id_token=ALLOWED, type=enums201.IdTokenEnumType.iso14443)
                )
            )
            return str(answer.id_token_info["status"])

    async def everyone() -> list[str]:
        ready = asyncio.Barrier(200)
        return list(await asyncio.gather(*(one(n, ready) for n in range(200))))

    answers = asyncio.run(asyncio.wait_for(everyone(), timeout=120))

    assert answers == ["Accepted"] * 200
    assert ChargingRequest.objects.filter(source="ocpp", driver_token=ALLOWED).count() == 200


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def _connections_served(pid: int, port: int) -> int:
    """Established TCP connections to `port` whose socket `pid` holds (its stations)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    inodes.add(f"socket:[{fields[9]}]")
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            held += str(fd.readlink()) in inodes
    return held


def _ocpp_metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = {"connected": 0.0, "authorize_answered": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "charge_ocpp_stations_connected":
                found["connected"] += sample.value
            if sample.name == "charge_ocpp_calls_total" and sample.labels == {
                "action": "Authorize",
                "outcome": "answered",
            }:
                found["authorize_answered"] += sample.value
    return found


def test_two_gateway_processes_share_the_port_and_both_serve_stations(
    stack_env: dict[str, str], tmp_path: Path, acl: Any, transactional_db: None
) -> None:
    for n in range(40):
        station = station_create(station_id=str(uuid.UUID(int=1000 + n)))
        station_ocpp_enroll(station=station, identity=f"PAIR-{n:03d}", password=PASSWORD)
    grant_create(token=DriverToken.objects.get(value=ALLOWED), station=None)
    metrics_dir, metrics_port = tmp_path / "metrics", free_port()
    metrics_dir.mkdir()
    pair = gateway_start(
        stack_env,
        tmp_path,
        OCPP_PROCESSES="2",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        CHARGE_OCPP_METRICS_PORT=str(metrics_port),
    )
    port = int(pair.url.rsplit(":", 1)[1])
    try:
        children = _children(pair.process.pid)

        async def everyone() -> tuple[list[str], list[int], dict[str, float]]:
            async with contextlib.AsyncExitStack() as stack:
                stations = [
                    await stack.enter_async_context(station_connected(pair.url, f"PAIR-{n:03d}", PASSWORD))
                    for n in range(40)
                ]
                answers = [await s.call(call16.Authorize(id_tag=ALLOWED)) for s in stations]
                served = [_connections_served(child, port) for child in children]
                scraped = await asyncio.to_thread(_ocpp_metrics, metrics_port)
                return [str(a.id_tag_info["status"]) for a in answers], served, scraped

        answers, served, scraped = run(everyone())
        assert len(children) == 2
        assert answers == ["Accepted"] * 40
        # The kernel spreads connections over both sockets: each process serves some of them.
        assert sum(served) == 40
        assert min(served) >= 5, served
        # The parent serves what both processes counted.
        assert scraped["connected"] == 40
        assert scraped["authorize_answered"] == 40

        def all_closed_again() -> bool:
            return not ChargePointState.objects.filter(connected_at__isnull=False).exists()

        wait_until(all_closed_again, timeout=15, what="every station noted disconnected")
    finally:
        pair.process.stop()
        sys.stderr.write(f"\n--- ocpp log ---\n{pair.process.log_tail(40)}\n")


def test_a_gateway_process_that_dies_stops_the_others_and_the_gateway_exits_with_an_error(
    stack_env: dict[str, str], tmp_path: Path, acl: Any
) -> None:
    pair = gateway_start(stack_env, tmp_path, OCPP_PROCESSES="2")
    try:
        first, second = _children(pair.process.pid)
        os.kill(first, signal.SIGKILL)
        assert pair.process.proc is not None
        code = pair.process.proc.wait(timeout=30)
        assert code != 0
        assert not Path(f"/proc/{second}").exists()  # stopped, and reaped by the parent
        assert "ocpp_gateway_process_died" in pair.process.log_tail(80)
    finally:
        pair.process.stop()
