"""DESIGN.md "Targets", row by row: what a run measured, met or not, and the command that measured it.

A figure measured under other conditions than its target's (a smaller burst, another rate, other
connections) is shown with them and not met; a rate the ladder never reached is not met either.
"""

from __future__ import annotations

from typing import Any

from benchmarks.floor_fractions import pct

GIB = 1 << 30


def get(node: Any, *path: str | int) -> Any:
    """node[path[0]][path[1]]..., or None where any step is missing."""
    for key in path:
        in_dict = isinstance(node, dict) and key in node
        in_list = isinstance(node, list) and isinstance(key, int) and -len(node) <= key < len(node)
        if not (in_dict or in_list):
            return None
        node = node[key]
    return node


def ladder_step(phases: dict[str, Any], rate: float) -> dict[str, Any] | None:
    for step in get(phases, "ladder", "steps") or []:
        if step["offered_per_s"] == rate:
            return step
    return None


def sustained_step(phases: dict[str, Any]) -> dict[str, Any] | None:
    """The highest ladder step that kept up (none failed, none unknown, >= 95 % of the rate...)."""
    kept = [s for s in get(phases, "ladder", "steps") or [] if s.get("keeps_up")]
    return max(kept, key=lambda s: s["offered_per_s"]) if kept else None


def number_text(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def _row(
    figure: str,
    target: str,
    measured: Any,
    text: str,
    *,
    met: bool | None,
    command: str | None,
    stretch_met: bool | None = None,
) -> dict[str, Any]:
    return {
        "figure": figure,
        "target": target,
        "measured": measured,
        "measured_text": text,
        "met": met,
        "stretch_met": stretch_met,
        "command": command,
    }


def _not_reached(phases: dict[str, Any], rate: int) -> str:
    steps = get(phases, "ladder", "steps") or []
    if not steps:
        return "not measured"
    last = steps[-1]
    if not last.get("keeps_up"):
        return f"not reached: the ladder fell behind at {last['offered_per_s']}/s"
    return f"not reached: the ladder stopped at {last['offered_per_s']}/s (BENCH_LADDER_MAX)"


def _sustained_rows(phases: dict[str, Any]) -> list[dict[str, Any]]:
    ladder = phases.get("ladder") or {}
    steps = ladder.get("steps") or []
    command = ladder.get("command")
    best = sustained_step(phases)
    rows = []
    if best is None:
        text = "not measured" if not steps else f"no step kept up ({steps[0]['offered_per_s']}/s: "
        if steps:
            text += f"{steps[0]['decisions_per_s']} decisions/s, {steps[0]['unknown']} unknown)"
        rows.append(
            _row(
                "sustained decisions/s, request → callback received, none `unknown`",
                "≥ 400 (stretch 600)",
                None,
                text,
                met=False if steps else None,
                command=command,
            )
        )
    else:
        rate = best["offered_per_s"]
        last = best is steps[-1]
        text = f"{best['decisions_per_s']:g} decisions/s (offered {rate}/s kept up"
        text += ", the ladder's last step: BENCH_LADDER_MAX)" if last else ")"
        rows.append(
            _row(
                "sustained decisions/s, request → callback received, none `unknown`",
                "≥ 400 (stretch 600)",
                best["decisions_per_s"],
                text,
                met=rate >= 400,
                stretch_met=rate >= 600,
                command=command,
            )
        )
    step = ladder_step(phases, 100)
    if step is None:
        rows.append(
            _row(
                "end to end at 100 requests/s, p50 / p99",
                "≤ 10 / ≤ 30 ms, none `unknown`",
                None,
                _not_reached(phases, 100),
                met=False if steps else None,
                command=command,
            )
        )
    else:
        p50, p99 = get(step, "end_to_end_latency", "p50_ms"), get(step, "end_to_end_latency", "p99_ms")
        rows.append(
            _row(
                "end to end at 100 requests/s, p50 / p99",
                "≤ 10 / ≤ 30 ms, none `unknown`",
                {"p50_ms": p50, "p99_ms": p99, "unknown": step["unknown"]},
                f"{number_text(p50)} / {number_text(p99)} ms, {step['unknown']} unknown",
                met=p50 is not None and p99 is not None and p50 <= 10 and p99 <= 30 and step["unknown"] == 0,
                command=command,
            )
        )
    step = ladder_step(phases, 300)
    if step is None:
        rows.append(
            _row(
                "end to end at 300 requests/s, p99",
                "≤ 100 ms, none `unknown`",
                None,
                _not_reached(phases, 300),
                met=False if steps else None,
                command=command,
            )
        )
    else:
        p99 = get(step, "end_to_end_latency", "p99_ms")
        behind = "" if step.get("keeps_up") else ", fell behind"
        rows.append(
            _row(
                "end to end at 300 requests/s, p99",
                "≤ 100 ms, none `unknown`",
                {"p99_ms": p99, "unknown": step["unknown"]},
                f"{number_text(p99)} ms, {step['unknown']} unknown{behind}",
                met=p99 is not None and p99 <= 100 and step["unknown"] == 0,
                command=command,
            )
        )
    cpu = best.get("stack_cpu_ms_per_decision") if best else None
    rows.append(
        _row(
            "whole-stack CPU per decision at the sustained maximum",
            "≤ 4 ms (stretch 3)",
            cpu,
            f"{number_text(cpu)} ms at {best['offered_per_s']}/s"
            if best and cpu is not None
            else "not measured",
            met=None if cpu is None else cpu <= 4,
            stretch_met=None if cpu is None else cpu <= 3,
            command=command,
        )
    )
    return rows


def _accept_rows(phases: dict[str, Any], floors: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    burst = phases.get("burst") or {}
    rate, p99 = burst.get("accepted_per_s"), get(burst, "accept_latency", "p99_ms")
    size, connections = burst.get("requests"), burst.get("concurrency")
    as_target = size == 3000 and connections == 64
    text = "not measured"
    if rate is not None:
        text = f"{number_text(rate)}/s, p99 {number_text(p99)} ms"
        text += "" if as_target else f" ({size} requests on {connections} connections, not the target's)"
    rows.append(
        _row(
            "accept burst, 3,000 requests on 64 connections, pipeline running",
            "≥ 800/s, p99 ≤ 100 ms",
            {"per_s": rate, "p99_ms": p99} if rate is not None else None,
            text,
            met=None if rate is None else as_target and rate >= 800 and p99 is not None and p99 <= 100,
            command=burst.get("command"),
        )
    )
    accept = phases.get("accept") or {}
    p99, offered = get(accept, "accept_latency", "p99_ms"), accept.get("offered_per_s")
    text = "not measured" if p99 is None else f"{number_text(p99)} ms"
    if p99 is not None and offered != 400:
        text += f" (at {offered:g}/s, not the target's 400/s)"
    rows.append(
        _row(
            "accept p99 at 400 requests/s (open loop)",
            "≤ 25 ms",
            p99,
            text,
            met=None if p99 is None else p99 <= 25 and offered == 400,
            command=accept.get("command"),
        )
    )
    floor = get(floors, "http", "produce", "64", "per_s")
    fraction = rate / floor if rate is not None and floor else None
    rows.append(
        _row(
            "accept burst as a fraction of the produce-only floor (64 connections)",
            "≥ 60 %",
            round(fraction, 3) if fraction is not None else None,
            f"{pct(fraction)} ({number_text(rate)}/s of {number_text(floor)}/s)"
            if fraction is not None
            else "not measured",
            met=None if fraction is None else fraction >= 0.6,
            command=" ; ".join(c for c in (burst.get("command"), get(floors, "command")) if c) or None,
        )
    )
    return rows


def _rows(phases: dict[str, Any], floors: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = _sustained_rows(phases) + _accept_rows(phases, floors)
    sync = phases.get("sync_callback") or {}
    rate, p99 = sync.get("answered_per_s"), get(sync, "latency", "p99_ms")
    passed = get(sync, "consistency", "passed")
    text = "not measured"
    if rate is not None:
        text = f"{number_text(rate)}/s, p99 {number_text(p99)} ms"
        text += "" if sync.get("concurrency") == 8 else f" (on {sync.get('concurrency')} connections)"
        text += "" if passed else ", check FAILED"
    rows.append(
        _row(
            "synchronous decision with a callback, 8 connections",
            "≥ 600/s, p99 ≤ 30 ms",
            {"per_s": rate, "p99_ms": p99} if rate is not None else None,
            text,
            met=None
            if rate is None
            else bool(passed)
            and sync.get("concurrency") == 8
            and rate >= 600
            and p99 is not None
            and p99 <= 30,
            command=sync.get("command"),
        )
    )
    rows += _ocpp_rows(phases)
    resources = phases.get("resources") or {}
    peak = resources.get("stack_peak_pss_bytes")
    peak_gib = round(peak / GIB, 3) if peak else None
    rows.append(
        _row(
            "whole stack resident memory (peak PSS)",
            "≤ 1.2 GiB",
            peak_gib,
            f"{peak_gib:.2f} GiB" if peak_gib is not None else "not measured",
            met=None if peak_gib is None else peak_gib <= 1.2,
            command=resources.get("command"),
        )
    )
    return rows


def _ocpp_rows(phases: dict[str, Any]) -> list[dict[str, Any]]:
    ocpp = phases.get("ocpp") or {}
    command = ocpp.get("command")
    stations, rate = ocpp.get("stations"), ocpp.get("per_station_rate_per_s")
    as_target = stations == 200 and rate == 2
    passed = get(ocpp, "consistency", "passed")
    p50, p99 = get(ocpp, "round_trip", "p50_ms"), get(ocpp, "round_trip", "p99_ms")
    text = "not measured"
    if p99 is not None:
        text = f"p99 {number_text(p99)} ms (p50 {number_text(p50)})"
        text += "" if as_target else f" ({stations} stations at {rate:g}/s, not the target's)"
        text += "" if passed else ", check FAILED"
    rows = [
        _row(
            "OCPP Authorize round trip, 200 stations authorizing 2/s each",
            "p99 ≤ 20 ms",
            {"p50_ms": p50, "p99_ms": p99} if p99 is not None else None,
            text,
            met=None if p99 is None else as_target and bool(passed) and p99 <= 20,
            command=command,
        )
    ]
    restart = ocpp.get("restart") or {}
    last = get(restart, "answered_again_after_listening", "max_ms")
    back, total = restart.get("stations_back"), ocpp.get("stations")
    text = "not measured"
    if restart:
        text = f"every station within {number_text(last)} ms" if back == total else f"{back} of {total} back"
        text += f" of the new gateway listening ({restart['start_to_listening_s']:.1f} s from its start)"
    rows.append(
        _row(
            "a station's reconnect after a gateway restart answered",
            "≤ 1 s",
            last,
            text,
            met=None if not restart else back == total and last is not None and last <= 1000,
            command=command,
        )
    )
    return rows


def targets(document: dict[str, Any]) -> list[dict[str, Any]]:
    """DESIGN.md "Targets": what this run measured, met or not, the command; the SQLite pass beside."""
    phases = document.get("phases") or {}
    floors = phases.get("floors")
    rows = _rows(phases, floors)
    sqlite = document.get("sqlite")
    if sqlite and sqlite.get("phases"):
        for row, other in zip(rows, _rows(sqlite["phases"], floors), strict=True):
            measured = other["measured"] is not None or other["met"] is not None
            row["sqlite"] = (
                {
                    "measured": other["measured"],
                    "measured_text": other["measured_text"],
                    "met": other["met"],
                    "command": other["command"],
                }
                if measured
                else None
            )
    return rows
