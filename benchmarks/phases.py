"""The accept phases (a burst, a fixed rate), the warm-up, the idle reading, the wait for empty
queues before each phase, and what every phase shares (CPU deltas, the figure's command)."""

# Django and the apps are imported inside functions: only after the environment is prepared.
# ruff: noqa: PLC0415

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from benchmarks import loadgen
from benchmarks.checks import accepted_ids, drain_and_check, e2e_latencies, status_counts
from benchmarks.config import figure_command, say
from benchmarks.context import PhaseContext, progress
from harness.processes import wait_until


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 2) for name in after}


def stack_cpu(delta: dict[str, float], harness: Sequence[str]) -> float:
    return round(sum(v for k, v in delta.items() if k not in harness), 2)


HARNESS = ("harness_loadgen", "harness_receiver")

LoadRun = Callable[[loadgen.HttpClient], Awaitable[loadgen.LoadState]]


def timed_load(
    ctx: PhaseContext, connections: int, run: LoadRun
) -> tuple[loadgen.LoadState, float, float, dict[str, float]]:
    """One load run on its own client: the state, its start and end (monotonic) and the CPU before."""

    async def go() -> loadgen.LoadState:
        client = ctx.client(connections)
        try:
            return await run(client)
        finally:
            await client.close()

    cpu0 = ctx.sampler.cpu_seconds()
    t0 = time.monotonic()
    state = asyncio.run(go())
    t1 = time.monotonic()
    return state, t0, t1, cpu0


def phase_burst(ctx: PhaseContext) -> dict[str, Any]:
    scale = ctx.scale
    label = "a) accept burst"
    say(
        f"{ctx.elapsed()} {label}: {scale.burst_requests} requests, {scale.burst_concurrency} connections"
        + (f", at least {scale.burst_min_s:.0f} s" if scale.burst_min_s else "")
    )

    def run(client: loadgen.HttpClient) -> Awaitable[loadgen.LoadState]:
        return loadgen.closed_loop(
            client,
            total=scale.burst_requests,
            concurrency=scale.burst_concurrency,
            payloads=ctx.charging_payloads(client),
            ok_status=(202,),
            min_duration_s=scale.burst_min_s,
            max_duration_s=max(10.0, min(600.0, ctx.time_left() - 60)),
            progress=progress(ctx, label),
        )

    state, t0, t1, cpu0 = timed_load(ctx, scale.burst_concurrency, run)
    cpu1 = ctx.sampler.cpu_seconds()
    accepted = accepted_ids(state.samples)
    duration = max(s.done for s in state.samples) - state.started if state.samples else 0.0
    check = drain_and_check(ctx, label, accepted, sent_end=t1)
    e2e = e2e_latencies(accepted, ctx.arrivals)
    cpu = cpu_delta(cpu0, cpu1)
    result: dict[str, Any] = {
        "command": phase_command(
            ctx,
            "burst",
            BENCH_BURST_N=scale.burst_requests,
            BENCH_BURST_CONCURRENCY=scale.burst_concurrency,
            BENCH_BURST_MIN_S=scale.burst_min_s,
        ),
        "what": "POST /api/v1/charging-requests, closed loop; 202 only after Kafka acks (acks=all)",
        "requests": len(state.samples),
        "concurrency": scale.burst_concurrency,
        "duration_s": round(duration, 2),
        "accepted": len(accepted),
        "answers": status_counts(state.samples),
        "accepted_per_s": round(len(accepted) / duration, 1) if duration else None,
        "accept_latency": loadgen.latency_summary_ms([s.service_s for s in state.samples if s.status == 202]),
        "end_to_end_latency": loadgen.latency_summary_ms(e2e),
        "cpu_s": cpu,
        "stack_cpu_s_per_1000_accepts": round(stack_cpu(cpu, HARNESS) / len(accepted) * 1000, 3)
        if accepted
        else None,
        "memory": ctx.sampler.rss_between(t0, t1),
        "consistency": check,
    }
    say(
        f"{ctx.elapsed()} {label}: {result['accepted_per_s']} accepted/s over {result['duration_s']} s, "
        f"p50 {result['accept_latency']['p50_ms']} ms p99 {result['accept_latency']['p99_ms']} ms "
        f"max {result['accept_latency']['max_ms']} ms"
    )
    return result


def open_loop_step(
    ctx: PhaseContext, label: str, rate: float, duration_s: float
) -> tuple[loadgen.LoadState, dict[str, loadgen.Sample], float, float, dict[str, float]]:
    def run(client: loadgen.HttpClient) -> Awaitable[loadgen.LoadState]:
        return loadgen.open_loop(
            client,
            rate=rate,
            duration_s=duration_s,
            payloads=ctx.charging_payloads(client),
            ok_status=(202,),
            progress=progress(ctx, label),
        )

    state, t0, t1, cpu0 = timed_load(ctx, ctx.scale.open_loop_connections, run)
    return state, accepted_ids(state.samples), t0, t1, cpu0


def phase_accept(ctx: PhaseContext) -> dict[str, Any]:
    scale = ctx.scale
    label = f"a) accept at {scale.accept_rate:.0f}/s"
    say(f"{ctx.elapsed()} {label}: {scale.accept_s:.0f} s, open loop")
    state, accepted, t0, t1, _ = open_loop_step(ctx, label, scale.accept_rate, scale.accept_s)
    check = drain_and_check(ctx, label, accepted, sent_end=t1)
    latency = loadgen.latency_summary_ms([s.latency_s for s in state.samples if s.status == 202])
    result: dict[str, Any] = {
        "command": phase_command(
            ctx, "accept", BENCH_ACCEPT_RATE=scale.accept_rate, BENCH_ACCEPT_S=scale.accept_s
        ),
        "what": "POST /api/v1/charging-requests at a fixed offered rate; latency from when each was due",
        "offered_per_s": scale.accept_rate,
        "duration_s": round(t1 - t0, 2),
        "requests": len(state.samples),
        "accepted": len(accepted),
        "answers": status_counts(state.samples),
        "accept_latency": latency,
        "end_to_end_latency": loadgen.latency_summary_ms(e2e_latencies(accepted, ctx.arrivals)),
        "consistency": check,
    }
    say(f"{ctx.elapsed()} {label}: accept p50 {latency['p50_ms']} ms p99 {latency['p99_ms']} ms")
    return result


def phase_command(ctx: PhaseContext, phase: str, **knobs: Any) -> str:
    named = {"BENCH_SCALE": ctx.scale.name, "BENCH_DB": ctx.stack.database, "BENCH_PHASES": phase, **knobs}
    return figure_command(ctx.base_command, phase=phase, named=named)


def warmup(ctx: PhaseContext) -> None:
    """A few requests through every hop, so first-use costs (connections, caches) stay out of phase a."""
    n = ctx.scale.warmup_requests

    async def go() -> loadgen.LoadState:
        client = ctx.client(4)
        payloads = ctx.charging_payloads(client)
        sync_payloads = ctx.authorize_payloads(client)
        try:
            state = await loadgen.closed_loop(
                client, total=n, concurrency=4, payloads=payloads, ok_status=(202,)
            )
            await loadgen.closed_loop(
                client, total=20, concurrency=4, payloads=sync_payloads, ok_status=(200,)
            )
            return state
        finally:
            await client.close()

    state = asyncio.run(go())
    accepted = accepted_ids(state.samples)
    if len(accepted) != n:
        raise RuntimeError(
            f"warm-up: only {len(accepted)} of {n} requests were accepted: {status_counts(state.samples)}"
        )
    wait_until(
        lambda: not (set(accepted) - ctx.arrivals.first.keys()) if ctx.arrivals.refresh() else False,
        timeout=60,
        what="warm-up callbacks",
    )
    say(f"{ctx.elapsed()} warm-up: {n} requests decided and called back")


CELERY_UNACKED_KEY = "unacked"


def settle(ctx: PhaseContext, label: str, *, max_wait_s: float = 600.0) -> dict[str, Any]:
    """Wait until the Celery queues are empty, so a phase does not pay for the backlog of the one before.

    A step that fell behind leaves tasks queued for requests the deadline sweep has already answered
    `unknown`: they are no-ops for the decision log, yet each still costs a worker a task's CPU.
    """
    import redis

    from apps.core.tasks import queue_lengths

    client = redis.Redis.from_url(ctx.stack.env["REDIS_URL"])
    started = time.monotonic()
    limit = min(max_wait_s, max(ctx.time_left() - 60.0, 0.0))
    shown = started
    try:
        while True:
            backlog = queue_lengths(client)
            backlog["unacked"] = int(client.hlen(CELERY_UNACKED_KEY))
            waited = time.monotonic() - started
            if not any(backlog.values()) or waited >= limit:
                break
            if time.monotonic() - shown >= 5.0:
                say(f"{ctx.elapsed()} {label}: waiting for the queues to empty first: {backlog}")
                shown = time.monotonic()
            time.sleep(0.5)
    finally:
        client.close()
    if any(backlog.values()):
        say(f"{ctx.elapsed()} {label}: starting with tasks still queued after {waited:.0f} s: {backlog}")
    return {"waited_s": round(waited, 1), "left_queued": backlog}


def idle_measure(ctx: PhaseContext) -> dict[str, Any]:
    """CPU of every process while nothing is sent: polling, heartbeats, sweeps, Flower's refreshes."""
    settle(ctx, "idle")
    seconds = ctx.scale.idle_s
    cpu0 = ctx.sampler.cpu_seconds()
    time.sleep(seconds)
    cpu = cpu_delta(cpu0, ctx.sampler.cpu_seconds())
    cores = {name: round(value / seconds, 3) for name, value in cpu.items()}
    stack = round(stack_cpu(cpu, HARNESS) / seconds, 3)
    say(f"{ctx.elapsed()} idle: the stack uses {stack} cores with no load ({seconds:g} s)")
    return {
        "what": "CPU cores used by each process with no load, after the warm-up and with the queues empty",
        "duration_s": seconds,
        "cpu_cores": cores,
        "stack_cpu_cores": stack,
    }
