"""Each figure of a run beside the floor that bounds it (benchmarks/floors.py): measured ÷ floor.

For a rate the fraction says how much of the floor's throughput the figure reaches (the accept
burst's target is >= 60 % of the produce-only floor); for a latency or a CPU cost, how many times the
floor it takes. Rows whose floor or figure was not measured are left out; floors without a figure of
their own (a no-op route on 64 connections) are listed with none.
"""

from __future__ import annotations

from typing import Any


def _get(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def pct(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.0f} %"


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text}{unit}" if unit.startswith("/") else f"{text} {unit}".strip()


def _ratio(measured: float | None, floor: float | None) -> float | None:
    return round(measured / floor, 3) if measured is not None and floor else None


def _kafka_at(floors: dict[str, Any], rate: float) -> dict[str, Any] | None:
    """The Kafka floor measured at the rate nearest `rate`."""
    rates = _get(floors, "kafka", "rates") or []
    return min(rates, key=lambda r: abs(r["offered_per_s"] - rate)) if rates else None


def _ladder(phases: dict[str, Any], rate: float) -> dict[str, Any] | None:
    return next((s for s in _get(phases, "ladder", "steps") or [] if s["offered_per_s"] == rate), None)


def _sustained(phases: dict[str, Any]) -> dict[str, Any] | None:
    kept = [s for s in _get(phases, "ladder", "steps") or [] if s.get("keeps_up")]
    return max(kept, key=lambda s: s["offered_per_s"]) if kept else None


def _row(
    floor: str,
    floor_value: float | None,
    floor_unit: str,
    figure: str,
    measured: float | None,
    *,
    command: str | None,
    rate: bool = False,
) -> dict[str, Any]:
    ratio = _ratio(measured, floor_value)
    if figure == "-":
        ratio_text = "-"
    elif rate:
        ratio_text = pct(ratio)
    else:
        ratio_text = "-" if ratio is None else f"{ratio:.2f} x"
    return {
        "floor": floor,
        "floor_value": floor_value,
        "floor_text": _fmt(floor_value, floor_unit),
        "figure": figure,
        "measured": measured,
        "measured_text": _fmt(measured, floor_unit) if figure != "-" else "-",
        "ratio": ratio,
        "ratio_text": ratio_text,
        "command": command,
    }


def _http_rows(phases: dict[str, Any], http: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    sync_callback = phases.get("sync_callback") or {}
    sync = phases.get("sync") or {}
    burst = phases.get("burst") or {}
    noop8, noop64 = http.get("noop", {}).get("8"), http.get("noop", {}).get("64")
    produce8, produce64 = http.get("produce", {}).get("8"), http.get("produce", {}).get("64")
    if noop8:
        rows += [
            _row(
                "no-op route, 8 connections",
                noop8["per_s"],
                "/s",
                "sync with callback, 8 connections (/api/checkauthority/)",
                sync_callback.get("answered_per_s"),
                command=sync_callback.get("command"),
                rate=True,
            ),
            _row(
                "no-op route, 8 connections, p99",
                _get(noop8, "latency", "p99_ms"),
                "ms",
                "sync with callback, p99",
                _get(sync_callback, "latency", "p99_ms"),
                command=sync_callback.get("command"),
            ),
            _row(
                "no-op route, 8 connections",
                noop8["per_s"],
                "/s",
                "sync authorize without callback, 8 connections (/api/v1/authorize)",
                sync.get("answered_per_s"),
                command=sync.get("command"),
                rate=True,
            ),
        ]
    if noop64:
        rows.append(_row("no-op route, 64 connections", noop64["per_s"], "/s", "-", None, command=None))
    if produce64:
        rows += [
            _row(
                "produce-only route, 64 connections",
                produce64["per_s"],
                "/s",
                "accept burst (target ≥ 60 %)",
                burst.get("accepted_per_s"),
                command=burst.get("command"),
                rate=True,
            ),
            _row(
                "produce-only route, 64 connections, p99",
                _get(produce64, "latency", "p99_ms"),
                "ms",
                "accept burst, p99",
                _get(burst, "accept_latency", "p99_ms"),
                command=burst.get("command"),
            ),
        ]
    if produce8:
        rows.append(
            _row("produce-only route, 8 connections", produce8["per_s"], "/s", "-", None, command=None)
        )
    return rows


def _kafka_rows(phases: dict[str, Any], floors: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    ladder_command = _get(phases, "ladder", "command")
    for rate, pct_name in ((100, "p50_ms"), (100, "p99_ms"), (300, "p99_ms")):
        kafka = _kafka_at(floors, rate)
        step = _ladder(phases, rate)
        if kafka is None:
            continue
        name = pct_name[:3]
        rows.append(
            _row(
                f"Kafka round trip {name} at {kafka['offered_per_s']}/s",
                _get(kafka, "round_trip", pct_name),
                "ms",
                f"end to end {name} at {rate}/s" if step else f"end to end {name} at {rate}/s (not reached)",
                _get(step, "end_to_end_latency", pct_name) if step else None,
                command=ladder_command,
            )
        )
    accept = phases.get("accept") or {}
    kafka = _kafka_at(floors, accept.get("offered_per_s") or 400)
    if kafka is not None:
        rows.append(
            _row(
                f"Kafka ack p99 at {kafka['offered_per_s']}/s",
                _get(kafka, "ack", "p99_ms"),
                "ms",
                f"accept p99 at {accept.get('offered_per_s') or 400:g}/s",
                _get(accept, "accept_latency", "p99_ms"),
                command=accept.get("command"),
            )
        )
    best = _sustained(phases)
    if _get(floors, "kafka", "max", "per_s") is not None:
        rows.append(
            _row(
                "Kafka round trips, max rate",
                _get(floors, "kafka", "max", "per_s"),
                "/s",
                "sustained decisions/s",
                best["decisions_per_s"] if best else None,
                command=ladder_command,
                rate=True,
            )
        )
    return rows


def _celery_rows(phases: dict[str, Any], celery: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    best = _sustained(phases)
    command = _get(phases, "ladder", "command")
    at = f" at {best['offered_per_s']}/s" if best else ""
    for key, kind, worker in (
        ("authorize_pool", "authorize", "authorize worker"),
        ("callbacks_pool", "deliver", "callbacks worker"),
    ):
        pool = celery.get(key)
        if not pool:
            continue
        rows.append(
            _row(
                f"no-op Celery task, {pool['pool']} x{pool['concurrency']}, CPU per task "
                f"({pool['tasks_per_s']:g} tasks/s)",
                pool["cpu_ms_per_task"],
                "ms",
                f"{worker} CPU per {kind} task{at}",
                _get(best, "cpu_ms_per_task", kind) if best else None,
                command=command,
            )
        )
    return rows


def floor_fractions(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every floor measured, beside the figure it bounds: rows for the report's second table."""
    phases = document.get("phases") or {}
    floors = phases.get("floors") or {}
    rows: list[dict[str, Any]] = []
    if floors.get("http"):
        rows += _http_rows(phases, floors["http"])
    if floors.get("kafka"):
        rows += _kafka_rows(phases, floors)
    if floors.get("celery"):
        rows += _celery_rows(phases, floors["celery"])
    return rows
