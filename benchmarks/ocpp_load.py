"""The OCPP phase: stations on one gateway, each asking Authorize at a steady rate; then the gateway
restarted under them, and how soon every station is answered again.

The stations are plain WebSocket clients sending OCPP-J frames (half 1.6, half 2.0.1), so the load
generator costs little beside the gateway it measures. A station keeps OCPP's rule of one call in
flight: a call is sent at its scheduled time, or at once when the answer before it came late.
"""

# Django and the apps are imported inside functions: only after the environment is prepared.
# ruff: noqa: PLC0415

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from benchmarks import loadgen
from benchmarks.config import say
from benchmarks.context import PhaseContext
from benchmarks.phases import HARNESS, cpu_delta, phase_command, stack_cpu
from benchmarks.stack import port_open, start_ocpp
from harness.ocpp_stations import basic_auth
from harness.processes import wait_until

PASSWORD = "bench-ocpp-password-0001"
# Each station's tokens: its own (granted there) 18 times in 20, one unknown, one granted elsewhere.
GRANTED, UNKNOWN, ELSEWHERE = "granted", "unknown", "elsewhere"
MIX = [GRANTED] * 9 + [UNKNOWN] + [GRANTED] * 9 + [ELSEWHERE]
# The answer each kind must get (README "OCPP": no_grant and unknown_token by version).
EXPECTED = {
    "ocpp1.6": {GRANTED: "Accepted", UNKNOWN: "Invalid", ELSEWHERE: "Invalid"},
    "ocpp2.0.1": {GRANTED: "Accepted", UNKNOWN: "Unknown", ELSEWHERE: "NotAtThisLocation"},
}
# After the restart a station retries its connection this often (plus up to as much again at random):
# real stations back off longer; the figure is our side's, from the gateway listening again.
RETRY_S = 0.05


@dataclass
class BenchStation:
    station_id: str
    identity: str
    protocol: str
    tokens: dict[str, str]
    round_trips: list[float] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    late: int = 0
    # Measured answers other than the ACL's (EXPECTED).
    wrong: int = 0
    # Every Authorize answered, measured or not (the warm-up, the restart), against the log.
    answered_total: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    # Monotonic times of its connection to the new gateway, and of its first answer from it.
    reconnected_at: float | None = None
    back_at: float | None = None


def seed_stations(n: int) -> list[BenchStation]:
    """n stations with OCPP credentials, each with a token granted there (12 hex digits, as RFID
    readers send UIDs)."""
    from django.db import connections

    from apps.access.credentials import password_hash
    from apps.access.models import DriverToken, Grant, Station

    run = uuid.uuid4().int & 0xFFFF
    hashed = password_hash(PASSWORD)
    rows = [
        Station(
            station_id=str(uuid.UUID(int=(0x0C99 << 112) | (run << 32) | k)),
            name="bench ocpp",
            ocpp_identity=f"BENCH-{run:04X}-{k:04d}",
            ocpp_password_hash=hashed,
        )
        for k in range(n)
    ]
    Station.objects.bulk_create(rows)
    tokens = DriverToken.objects.bulk_create([DriverToken(value=f"{run:04X}{k:08X}") for k in range(n)])
    Grant.objects.bulk_create(
        [
            Grant(token=token, station=station, note="bench ocpp")
            for token, station in zip(tokens, rows, strict=True)
        ]
    )
    connections.close_all()
    return [
        BenchStation(
            station_id=station.station_id,
            identity=str(station.ocpp_identity),
            protocol="ocpp2.0.1" if k % 2 else "ocpp1.6",
            tokens={
                GRANTED: tokens[k].value,
                UNKNOWN: f"{run:04X}FFFF{k:04X}",
                ELSEWHERE: tokens[(k + 1) % n].value,
            },
        )
        for k, station in enumerate(rows)
    ]


def _authorize_frame(station: BenchStation, message_id: str, token: str) -> str:
    if station.protocol == "ocpp1.6":
        payload: dict[str, Any] = {"idTag": token}
    else:
        payload = {"idToken": {"idToken": token, "type": "ISO14443"}}
    return json.dumps([2, message_id, "Authorize", payload], separators=(",", ":"))


def _status_of(station: BenchStation, answer: Any) -> str:
    if not (isinstance(answer, list) and len(answer) == 3 and answer[0] == 3):
        return f"callerror:{answer[2] if isinstance(answer, list) and len(answer) > 2 else '?'}"
    info = answer[2].get("idTagInfo" if station.protocol == "ocpp1.6" else "idTokenInfo") or {}
    return str(info.get("status"))


class Fleet:
    """Every station's loop, sharing one clock, one stop signal, and the restart's timestamps."""

    def __init__(self, url: str, stations: list[BenchStation], rate_per_s: float) -> None:
        self.url = url
        self.stations = stations
        self.interval_s = 1.0 / rate_per_s
        self.measuring = False
        self.stop = asyncio.Event()
        # Set while the gateway is away: calls then are not round trips of a running gateway.
        self.restarting = False
        self.connected = 0

    async def _connect(self, station: BenchStation) -> ClientConnection:
        while True:
            try:
                return await connect(
                    f"{self.url}/{station.identity}",
                    subprotocols=[Subprotocol(station.protocol)],
                    additional_headers={"Authorization": basic_auth(station.identity, PASSWORD)},
                    open_timeout=5,
                    compression=None,
                )
            except (TimeoutError, OSError, InvalidStatus) as error:
                if self.stop.is_set():
                    raise
                station.errors[f"connect:{type(error).__name__}"] += 1
                await asyncio.sleep(RETRY_S * (1 + random.random()))

    async def run_station(self, station: BenchStation, ready: asyncio.Barrier) -> None:
        websocket = await self._connect(station)
        self.connected += 1
        await ready.wait()
        # Spread the stations over the interval, so the gateway sees a steady rate, not waves.
        await asyncio.sleep(random.random() * self.interval_s)
        due = time.monotonic()
        n = random.randrange(len(MIX))
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                if now < due:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stop.wait(), due - now)
                    continue
                kind = MIX[n % len(MIX)]
                token = station.tokens[kind]
                n += 1
                sent = time.monotonic()
                try:
                    await websocket.send(_authorize_frame(station, f"{n}", token))
                    answer = json.loads(await websocket.recv())
                except ConnectionClosed:
                    station.errors["closed"] += 1
                    websocket = await self._connect(station)
                    if self.restarting and station.reconnected_at is None:
                        station.reconnected_at = time.monotonic()
                    due = time.monotonic()
                    continue
                done = time.monotonic()
                station.answered_total += 1
                if self.restarting:
                    if station.back_at is None and not self.stop.is_set():
                        station.back_at = done
                elif self.measuring:
                    station.round_trips.append(done - sent)
                    status = _status_of(station, answer)
                    station.answers[status] += 1
                    station.wrong += status != EXPECTED[station.protocol][kind]
                due += self.interval_s
                if due < done:
                    station.late += self.measuring
                    due = done
        finally:
            await websocket.close()


def phase_ocpp(ctx: PhaseContext) -> dict[str, Any]:
    scale = ctx.scale
    label = "e) ocpp"
    stack = ctx.stack
    say(
        f"{ctx.elapsed()} {label}: {scale.ocpp_stations} stations, Authorize {scale.ocpp_rate_per_s:g}/s "
        f"each for {scale.ocpp_s:g} s, then a gateway restart"
    )
    stations = seed_stations(scale.ocpp_stations)
    fleet = Fleet(f"ws://127.0.0.1:{stack.ocpp_port}/ocpp", stations, scale.ocpp_rate_per_s)
    restart: dict[str, Any] = {}
    window: dict[str, Any] = {}

    async def go() -> None:
        ready = asyncio.Barrier(len(stations) + 1)
        tasks = [asyncio.create_task(fleet.run_station(s, ready)) for s in stations]
        connect_started = time.monotonic()
        await ready.wait()
        window["connect_all_s"] = round(time.monotonic() - connect_started, 2)
        await asyncio.sleep(min(2.0, scale.ocpp_s / 5))  # the first calls of every station, unmeasured
        window["cpu0"], window["t0"] = ctx.sampler.cpu_seconds(), time.monotonic()
        fleet.measuring = True
        await asyncio.sleep(scale.ocpp_s)
        fleet.measuring = False
        window["cpu1"], window["t1"] = ctx.sampler.cpu_seconds(), time.monotonic()
        restart.update(await asyncio.to_thread(_restart_gateway, ctx, fleet))
        # Every station answered again, or the time given to it is up.
        deadline = time.monotonic() + scale.ocpp_reconnect_wait_s
        while time.monotonic() < deadline and any(s.back_at is None for s in stations):
            await asyncio.sleep(0.05)
        fleet.stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(go())
    listening = restart["listening_at"]
    back = [s.back_at - listening for s in stations if s.back_at is not None]
    reconnected = [s.reconnected_at - listening for s in stations if s.reconnected_at is not None]
    round_trips = [rt for s in stations for rt in s.round_trips]
    answers = sum((s.answers for s in stations), Counter())
    duration = window["t1"] - window["t0"]
    cpu = cpu_delta(window["cpu0"], window["cpu1"])
    calls = len(round_trips)
    check = _check(stations, answers, calls)
    result: dict[str, Any] = {
        "command": phase_command(
            ctx,
            "ocpp",
            BENCH_OCPP_STATIONS=scale.ocpp_stations,
            BENCH_OCPP_RATE=scale.ocpp_rate_per_s,
            BENCH_OCPP_S=scale.ocpp_s,
        ),
        "what": "stations on ws://…/ocpp/<identity> (half 1.6, half 2.0.1), each sending Authorize at a "
        "steady rate (18 in 20 granted there, one unknown, one granted elsewhere); round trip = frame "
        "sent → answer read; then SIGTERM to the gateway and a new one started as make run does",
        "stations": len(stations),
        "per_station_rate_per_s": scale.ocpp_rate_per_s,
        "connect_all_s": window["connect_all_s"],
        "duration_s": round(duration, 2),
        "calls": calls,
        "answered_per_s": round(calls / duration, 1) if duration else None,
        "late_calls": sum(s.late for s in stations),
        "answers": dict(answers),
        "round_trip": loadgen.latency_summary_ms(round_trips),
        "cpu_s": cpu,
        "gateway_cpu_ms_per_call": round(cpu.get("ocpp", 0.0) * 1000 / calls, 3) if calls else None,
        "stack_cpu_ms_per_call": round(stack_cpu(cpu, HARNESS) * 1000 / calls, 3) if calls else None,
        "memory": ctx.sampler.rss_between(window["t0"], window["t1"]),
        "restart": {
            "what": "SIGTERM → old gateway gone → new gateway listening (compose/local/ocpp.sh: "
            "wait_for_db, migrate --check, run_ocpp); then each station's first answered Authorize, "
            "counted from the new gateway listening (stations retry every 50-100 ms)",
            "stop_s": restart["stop_s"],
            "start_to_listening_s": restart["start_to_listening_s"],
            "stations_back": len(back),
            "connected_again_after_listening": loadgen.latency_summary_ms(reconnected),
            "answered_again_after_listening": loadgen.latency_summary_ms(back),
            "connect_errors": dict(sum((s.errors for s in stations), Counter())),
        },
        "consistency": check,
    }
    last_back = result["restart"]["answered_again_after_listening"]["max_ms"]
    say(
        f"{ctx.elapsed()} {label}: {result['answered_per_s']}/s, round trip p50 "
        f"{result['round_trip']['p50_ms']} ms p99 {result['round_trip']['p99_ms']} ms; restart: "
        f"{len(back)}/{len(stations)} back, the last {last_back} ms after listening; "
        f"check {'passed' if check['passed'] else 'FAILED'}"
    )
    return result


def _restart_gateway(ctx: PhaseContext, fleet: Fleet) -> dict[str, Any]:
    """SIGTERM the gateway, start a new one as make run does, and note when it listens again."""
    stack = ctx.stack
    old = stack.processes["ocpp"]
    fleet.restarting = True
    stopped_at = time.monotonic()
    old.terminate()
    old.stop()
    started_at = time.monotonic()
    new = start_ocpp(stack)
    ctx.sampler.groups["ocpp"] = new.pid
    ctx.profiler.attach({**ctx.profiler.pids, "ocpp": new.pid})

    def listening() -> bool:
        new.ensure_running()
        return port_open(stack.ocpp_port)

    wait_until(listening, timeout=60, interval=0.01, what="the restarted OCPP gateway")
    listening_at = time.monotonic()
    return {
        "stop_s": round(started_at - stopped_at, 3),
        "start_to_listening_s": round(listening_at - started_at, 3),
        "listening_at": listening_at,
    }


def _check(stations: list[BenchStation], answers: Counter[str], calls: int) -> dict[str, Any]:
    """Every answer is one decision in the log (source ocpp), and the answers say what the ACL says."""
    from django.db import connections

    from apps.charging.models import ChargingRequest

    rows = ChargingRequest.objects.filter(
        source=ChargingRequest.Source.OCPP, station_id__in=[s.station_id for s in stations]
    )
    logged = rows.count()
    connections.close_all()
    answered = sum(s.answered_total for s in stations)
    # A call in flight when the old gateway stopped may have been decided and logged, unanswered.
    cut = sum(s.errors["closed"] for s in stations)
    errors = sum(v for k, v in answers.items() if k.startswith("callerror"))
    checks = {
        "one_logged_decision_per_answer": answered <= logged <= answered + cut,
        "every_answer_as_the_acl_says": calls > 0 and sum(s.wrong for s in stations) == 0,
        "no_callerror": errors == 0,
    }
    return {
        "passed": all(checks.values()),
        "checks": checks,
        "db": {"ocpp_rows": logged, "answered": answered, "cut_by_the_restart": cut},
    }
