"""The synchronous phases: a decision answered in the request itself, on a few connections.

sync_callback  POST /api/checkauthority/ with a callback_url (the original service's route, the
               figure it is compared on): each answer is a logged decision, and its callback,
               committed with it, must reach the receiver exactly once
sync           POST /api/v1/authorize without a callback: each answer is a logged decision
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks import loadgen
from benchmarks.checks import db_check, drain_and_check, e2e_latencies, status_counts
from benchmarks.config import say
from benchmarks.context import PhaseContext, progress
from benchmarks.phases import HARNESS, cpu_delta, phase_command, stack_cpu, timed_load

DECISION_STATUSES = frozenset({"allowed", "not_allowed", "unknown"})


def _closed_loop(
    ctx: PhaseContext, label: str, payloads_for: Callable[[loadgen.HttpClient], list[bytes]]
) -> tuple[loadgen.LoadState, float, float, dict[str, float]]:
    scale = ctx.scale

    def run(client: loadgen.HttpClient) -> Awaitable[loadgen.LoadState]:
        return loadgen.closed_loop(
            client,
            total=10**9,
            concurrency=scale.sync_concurrency,
            payloads=payloads_for(client),
            ok_status=(200,),
            max_duration_s=scale.sync_s,
            progress=progress(ctx, label),
        )

    return timed_load(ctx, scale.sync_concurrency, run)


def _decisions(state: loadgen.LoadState) -> dict[str, tuple[loadgen.Sample, str]]:
    """request_id → (sample, decided status) of every answer that is a decision."""
    out: dict[str, tuple[loadgen.Sample, str]] = {}
    for sample in state.samples:
        if sample.status != 200:
            continue
        body = json.loads(sample.body)
        if body.get("request_id") and body.get("status") in DECISION_STATUSES:
            out[body["request_id"]] = (sample, body["status"])
    return out


def _figures(
    ctx: PhaseContext,
    state: loadgen.LoadState,
    decided: dict[str, tuple[loadgen.Sample, str]],
    *,
    window: tuple[float, float],
    cpu: dict[str, float],
) -> dict[str, Any]:
    t0, t1 = window
    duration = max(s.done for s in state.samples) - state.started if state.samples else 0.0
    return {
        "concurrency": ctx.scale.sync_concurrency,
        "duration_s": round(duration, 2),
        "requests": len(state.samples),
        "answers": status_counts(state.samples),
        "answered_per_s": round(len(decided) / duration, 1) if duration else None,
        "latency": loadgen.latency_summary_ms([s.service_s for s, _ in decided.values()]),
        "statuses": dict(Counter(status for _, status in decided.values())),
        "cpu_s": cpu,
        "stack_cpu_ms_per_decision": round(stack_cpu(cpu, HARNESS) * 1000 / len(decided), 3)
        if decided
        else None,
        "stack_cpu_s_per_1000_decisions": round(stack_cpu(cpu, HARNESS) / len(decided) * 1000, 3)
        if decided
        else None,
        "memory": ctx.sampler.rss_between(t0, t1),
    }


def _say_result(ctx: PhaseContext, label: str, result: dict[str, Any]) -> None:
    latency = result["latency"]
    say(
        f"{ctx.elapsed()} {label}: {result['answered_per_s']}/s, p50 {latency['p50_ms']} ms "
        f"p99 {latency['p99_ms']} ms; check {'passed' if result['consistency']['passed'] else 'FAILED'}"
    )


def phase_sync_callback(ctx: PhaseContext) -> dict[str, Any]:
    scale = ctx.scale
    label = "c) sync with callback"
    say(f"{ctx.elapsed()} {label}: {scale.sync_s:.0f} s, {scale.sync_concurrency} connections")
    state, t0, t1, cpu0 = _closed_loop(ctx, label, ctx.checkauthority_payloads)
    cpu = cpu_delta(cpu0, ctx.sampler.cpu_seconds())
    decided = _decisions(state)
    samples = {request_id: sample for request_id, (sample, _) in decided.items()}
    check = drain_and_check(ctx, label, samples, sent_end=t1, exactly_once=True)
    answered = Counter(status for _, status in decided.values())
    check["checks"]["logged_status_matches_answer"] = dict(answered) == check["db"]["statuses"]
    check["checks"]["every_request_answered_with_a_decision"] = len(decided) == len(state.samples)
    check["passed"] = all(check["checks"].values())
    result: dict[str, Any] = {
        "command": phase_command(
            ctx, "sync_callback", BENCH_SYNC_S=scale.sync_s, BENCH_SYNC_CONCURRENCY=scale.sync_concurrency
        ),
        "what": "POST /api/checkauthority/ with a callback_url, closed loop: the decision in the answer, "
        "logged, and POSTed to the callback receiver",
        **_figures(ctx, state, decided, window=(t0, t1), cpu=cpu),
        "callback_after_answer_latency": loadgen.latency_summary_ms(e2e_latencies(samples, ctx.arrivals)),
        "consistency": check,
    }
    _say_result(ctx, label, result)
    return result


def phase_sync(ctx: PhaseContext) -> dict[str, Any]:
    scale = ctx.scale
    label = "c) sync authorize"
    say(f"{ctx.elapsed()} {label}: {scale.sync_s:.0f} s, {scale.sync_concurrency} connections")
    state, t0, t1, cpu0 = _closed_loop(ctx, label, ctx.authorize_payloads)
    cpu = cpu_delta(cpu0, ctx.sampler.cpu_seconds())
    decided = _decisions(state)
    db = db_check(list(decided), expect_delivery=False)
    answered = Counter(status for _, status in decided.values())
    checks = {
        "every_answer_logged_once": db["decision_rows"] == len(decided),
        "logged_status_matches_answer": dict(answered) == db["statuses"],
        "no_delivery_without_callback_url": db["deliveries"] == 0,
        "every_request_answered_with_a_decision": len(decided) == len(state.samples),
    }
    result: dict[str, Any] = {
        "command": phase_command(
            ctx, "sync", BENCH_SYNC_S=scale.sync_s, BENCH_SYNC_CONCURRENCY=scale.sync_concurrency
        ),
        "what": "POST /api/v1/authorize without a callback, closed loop; each answer is a logged decision",
        **_figures(ctx, state, decided, window=(t0, t1), cpu=cpu),
        "consistency": {"passed": all(checks.values()), "checks": checks, "db": db},
    }
    _say_result(ctx, label, result)
    return result
