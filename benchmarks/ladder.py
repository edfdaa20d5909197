"""The ladder: offered rates one after another until the pipeline falls behind.

Each step reports, beside throughput and latency, the CPU every process spent per decision and the
mean size of the batches the pipeline formed at that rate (authorize tasks, deliver tasks, bridge
polls), from the batch-size histograms scraped before and after the step.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from benchmarks import loadgen
from benchmarks.batches import batch_means, metrics_scrape
from benchmarks.checks import drain_and_check, e2e_latencies, status_counts
from benchmarks.config import say
from benchmarks.context import PhaseContext
from benchmarks.phases import HARNESS, cpu_delta, open_loop_step, phase_command, settle, stack_cpu


def ladder_rates(start: int, step: int, maximum: int) -> Iterator[int]:
    """`start`, then every multiple of `step` above it up to `maximum`: 50, 100, 200, 300..."""
    rate = start
    while rate <= maximum:
        yield rate
        rate = (rate // step + 1) * step


def per_decision_ms(cpu_s: dict[str, float], decisions: int) -> dict[str, float]:
    """CPU milliseconds per decision of each process group."""
    return {name: round(value * 1000 / decisions, 3) for name, value in cpu_s.items()} if decisions else {}


def _cpu_ms_per_task(cpu_s: dict[str, float], batches: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Each worker's CPU per task it ran: beside the no-op Celery task's (the Celery floor)."""
    out: dict[str, float | None] = {}
    for kind, group in (("authorize", "authorize"), ("deliver", "callbacks")):
        tasks = batches.get(kind, {}).get("batches") or 0
        out[kind] = round(cpu_s.get(group, 0.0) * 1000 / tasks, 3) if tasks else None
    return out


def phase_ladder(ctx: PhaseContext) -> dict[str, Any]:
    scale = ctx.scale
    steps: list[dict[str, Any]] = []
    for rate in ladder_rates(scale.ladder_start, scale.ladder_step, scale.ladder_max):
        if ctx.time_left() < scale.step_s + 60:
            say(f"{ctx.elapsed()} b) ladder: stopping before {rate}/s, the run's time budget is nearly spent")
            break
        label = f"b) ladder {rate}/s"
        settled = settle(ctx, label) if steps else None  # the phase itself settled before the first
        say(f"{ctx.elapsed()} {label}: {scale.step_s:.0f} s, open loop")
        # Outside the CPU window: the scrapes cost the scraped processes a little.
        batches0, _ = metrics_scrape(ctx.stack.metrics_ports)
        with ctx.profiler.during(f"ladder:{rate}"):
            state, accepted, t0, t1, cpu0 = open_loop_step(ctx, label, rate, scale.step_s)
            check = drain_and_check(ctx, label, accepted, sent_end=t1)
        cpu1 = ctx.sampler.cpu_seconds()
        t_drained = time.monotonic()
        batches1, scrape_errors = metrics_scrape(ctx.stack.metrics_ports)
        batches = batch_means(batches0, batches1)
        e2e = e2e_latencies(accepted, ctx.arrivals)
        in_window = sum(1 for rid in accepted if rid in ctx.arrivals.first and ctx.arrivals.first[rid] <= t1)
        window = t1 - t0
        callbacks_per_s = in_window / window if window else 0.0
        e2e_summary = loadgen.latency_summary_ms(e2e)
        unknown = check["db"]["statuses"].get("unknown", 0)
        failed = len(state.samples) - len(accepted)
        cpu = cpu_delta(cpu0, cpu1)
        decided = check["db"]["decision_rows"]
        keeps_up = (
            failed == 0
            and unknown == 0
            and check["passed"]
            and callbacks_per_s >= 0.95 * rate
            and (e2e_summary["p99_ms"] or 0) <= scale.e2e_p99_limit_ms
        )
        step = {
            "offered_per_s": rate,
            "settled_before": settled,
            "duration_s": round(window, 2),
            "requests": len(state.samples),
            "accepted": len(accepted),
            "accepted_per_s": round(len(accepted) / window, 1) if window else None,
            "answers": status_counts(state.samples),
            "decisions_per_s": round(callbacks_per_s, 1),
            "decisions_per_s_means": "callbacks of this step's requests received at the receiver "
            "before the step's last request was sent, per second of the step",
            "accept_latency": loadgen.latency_summary_ms(
                [s.latency_s for s in state.samples if s.status == 202]
            ),
            "end_to_end_latency": e2e_summary,
            "unknown": unknown,
            "statuses": check["db"]["statuses"],
            "keeps_up": keeps_up,
            "cpu_s": cpu,
            "cpu_ms_per_decision": per_decision_ms(cpu, decided),
            "stack_cpu_ms_per_decision": round(stack_cpu(cpu, HARNESS) * 1000 / decided, 3)
            if decided
            else None,
            "stack_cpu_s_per_1000_decisions": round(stack_cpu(cpu, HARNESS) / decided * 1000, 3)
            if decided
            else None,
            "batch_sizes": batches,
            "batch_sizes_means": "decide: requests per set-wise decision (bridge or task); authorize: "
            "requests per charging.authorize task; deliver: deliveries "
            "per callbacks.deliver task; deliver_bridge: first attempts per batch the bridge made "
            "itself; bridge_poll: messages per bridge batch (one poll); from the "
            "histograms' _sum and _count scraped before the step and after its drain",
            "metrics_scrape_errors": scrape_errors,
            "cpu_ms_per_task": _cpu_ms_per_task(cpu, batches),
            "memory": ctx.sampler.rss_between(t0, t_drained),
            "consistency": check,
        }
        steps.append(step)
        say(
            f"{ctx.elapsed()} {label}: {'keeps up' if keeps_up else 'FALLS BEHIND'}: "
            f"{step['decisions_per_s']} decisions/s, e2e p50 {e2e_summary['p50_ms']} ms "
            f"p99 {e2e_summary['p99_ms']} ms, unknown {unknown}, accept p99 "
            f"{step['accept_latency']['p99_ms']} ms, stack CPU {step['stack_cpu_ms_per_decision']} ms per "
            f"decision, mean batch {_batches_text(batches)}"
        )
        if not keeps_up:
            break
    sustained = [s for s in steps if s["keeps_up"]]
    best = max(sustained, key=lambda s: s["offered_per_s"]) if sustained else None
    return {
        "command": phase_command(
            ctx,
            "ladder",
            BENCH_LADDER_START=scale.ladder_start,
            BENCH_LADDER_STEP=scale.ladder_step,
            BENCH_LADDER_MAX=scale.ladder_max,
            BENCH_STEP_S=scale.step_s,
        ),
        "what": "POST /api/v1/charging-requests at fixed offered rates; end to end = 202 → callback received",
        "keeps_up_means": f"no failed request, no unknown, every check passed, decisions/s >= 95 % of the "
        f"offered rate, end-to-end p99 <= {scale.e2e_p99_limit_ms:.0f} ms",
        "steps": steps,
        "max_sustained_offered_per_s": best["offered_per_s"] if best else None,
        "max_sustained_decisions_per_s": best["decisions_per_s"] if best else None,
    }


def _batches_text(batches: dict[str, dict[str, Any]]) -> str:
    return ", ".join(f"{kind} {value['mean']}" for kind, value in batches.items())
