"""What every phase works with: the stack, the scale, the receiver's record, the clock."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

from benchmarks import loadgen
from benchmarks.config import Scale, say
from benchmarks.processes import GroupSampler
from benchmarks.profiling import Profiler
from benchmarks.stack import Stack, http_get

# --- the receiver's record ---------------------------------------------------------------------------


class Arrivals:
    """The receiver's arrivals, fetched incrementally: request_id → first arrival (monotonic)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.first: dict[str, float] = {}
        self.next_from = 0
        self.stats: dict[str, Any] = {}

    def refresh(self) -> dict[str, Any]:
        status, body = http_get(self.port, f"/_arrivals?from={self.next_from}", timeout=30)
        if status != 200:
            raise RuntimeError(f"receiver answered {status}")
        data = json.loads(body)
        for request_id, at in data.pop("arrivals"):
            self.first.setdefault(request_id, at)
        self.next_from = data["unique"]
        self.stats = data
        return data

    def duplicated(self) -> set[str]:
        """Request ids whose callback arrived more than once so far."""
        status, body = http_get(self.port, "/_duplicates", timeout=30)
        if status != 200:
            raise RuntimeError(f"receiver answered {status}")
        return set(json.loads(body)["request_ids"])


# --- phases ----------------------------------------------------------------------------------------


@dataclass
class PhaseContext:
    stack: Stack
    scale: Scale
    pairs: list[tuple[str, str]]
    arrivals: Arrivals
    sampler: GroupSampler
    profiler: Profiler
    base_command: str
    run_started: float
    deadline: float

    def client(self, connections: int) -> loadgen.HttpClient:
        return loadgen.HttpClient(
            "127.0.0.1",
            self.stack.api_port,
            max_connections=connections,
            headers={"Authorization": f"Bearer {self.stack.api_key}"},
        )

    def charging_payloads(self, client: loadgen.HttpClient) -> list[bytes]:
        callback = f"http://127.0.0.1:{self.stack.receiver_port}/callback"
        return [
            client.prepare(
                loadgen.Request(
                    "POST",
                    "/api/v1/charging-requests",
                    json.dumps(
                        {"station_id": s, "driver_token": t, "callback_url": callback}, separators=(",", ":")
                    ).encode(),
                )
            )
            for s, t in self.pairs
        ]

    def checkauthority_payloads(self, client: loadgen.HttpClient) -> list[bytes]:
        """The original service's synchronous route, with a callback to the receiver."""
        callback = f"http://127.0.0.1:{self.stack.receiver_port}/callback"
        return [
            client.prepare(
                loadgen.Request(
                    "POST",
                    "/api/checkauthority/",
                    json.dumps(
                        {"station_id": s, "driver_token": t, "callback_url": callback}, separators=(",", ":")
                    ).encode(),
                )
            )
            for s, t in self.pairs
        ]

    def authorize_payloads(self, client: loadgen.HttpClient) -> list[bytes]:
        return [
            client.prepare(
                loadgen.Request(
                    "POST",
                    "/api/v1/authorize",
                    json.dumps({"station_id": s, "driver_token": t}, separators=(",", ":")).encode(),
                )
            )
            for s, t in self.pairs
        ]

    def elapsed(self) -> str:
        return f"[{time.monotonic() - self.run_started:7.1f} s]"

    def time_left(self) -> float:
        return self.deadline - time.monotonic()


def progress(ctx: PhaseContext, label: str) -> loadgen.Progress:
    def show(state: loadgen.LoadState) -> None:
        rate = state.done / state.elapsed_s if state.elapsed_s else 0.0
        callbacks = ""
        with contextlib.suppress(Exception):
            stats = json.loads(http_get(ctx.stack.receiver_port, "/_stats", timeout=2)[1])
            callbacks = f", callbacks received so far {stats['unique']}"
        say(
            f"{ctx.elapsed()} {label}: sent {state.offered}, answered {state.done} ({rate:.0f}/s), "
            f"ok {state.ok}, errors {state.errors}, dropped {state.dropped}{callbacks}"
        )

    return show
