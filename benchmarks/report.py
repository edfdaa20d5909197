"""The benchmark report: the targets of DESIGN "Targets", the floors, the ladder; JSON, PNG, markdown.

    python -m benchmarks.report benchmarks/results/<file>.json    # redraw the plot, print the tables

Three tables: the targets (each with what this run measured, met or not, and the command that
measured it; the SQLite pass beside the PostgreSQL figures), the floors with each figure as a
fraction of its floor (measured ÷ floor), and the ladder step by step (CPU per decision by process,
mean batch sizes).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.floor_fractions import floor_fractions, pct

GIB = 1 << 30
# The ladder table's process columns, in this order (others follow); the harness is left out.
PROCESS_ORDER = ("api", "bridge", "authorize", "callbacks", "beat", "flower", "kafka", "redis", "postgres")
HARNESS = ("harness_loadgen", "harness_receiver")


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


def _num(value: float | None, unit: str = "") -> str:
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
                f"{_num(p50)} / {_num(p99)} ms, {step['unknown']} unknown",
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
                f"{_num(p99)} ms, {step['unknown']} unknown{behind}",
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
            f"{_num(cpu)} ms at {best['offered_per_s']}/s" if best and cpu is not None else "not measured",
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
        text = f"{_num(rate)}/s, p99 {_num(p99)} ms"
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
    text = "not measured" if p99 is None else f"{_num(p99)} ms"
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
            f"{pct(fraction)} ({_num(rate)}/s of {_num(floor)}/s)"
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
        text = f"{_num(rate)}/s, p99 {_num(p99)} ms"
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


def stem(*, started_at: datetime, sha: str, scale: str, database: str = "postgres") -> str:
    """<date>-<commit>[-<scale>][-sqlite]: the report's file name without its suffix."""
    out = f"{started_at:%Y-%m-%d}-{(sha or 'nocommit')[:7]}"
    out += "" if scale == "full" else f"-{scale}"
    return out + ("" if database == "postgres" else f"-{database}")


# --- markdown ----------------------------------------------------------------------------------------


def _met(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "-"}[value]


def _targets_table(document: dict[str, Any]) -> list[str]:
    rows = document.get("targets") or targets(document)
    with_sqlite = any("sqlite" in row for row in rows)
    db = "SQLite" if document.get("database") == "sqlite" else "PostgreSQL"
    head = f"| figure | target | measured ({db}) | met |" + (" SQLite | met |" if with_sqlite else "")
    lines = [head + " command |", "|---|---|---|---|" + ("---|---|" if with_sqlite else "") + "---|"]
    for row in rows:
        met = _met(row["met"])
        if row.get("stretch_met") is not None and row["met"]:
            met += ", stretch " + ("yes" if row["stretch_met"] else "no")
        line = f"| {row['figure']} | {row['target']} | {row['measured_text']} | {met} |"
        if with_sqlite:
            other = row.get("sqlite")
            line += f" {other['measured_text']} | {_met(other['met'])} |" if other else " - | - |"
        command = f"`{row['command']}`" if row.get("command") else ""
        other_command = (row.get("sqlite") or {}).get("command")
        if other_command and other_command != row.get("command"):
            command += f"; SQLite: `{other_command}`"
        lines.append(f"{line} {command} |")
    return lines


def _floors_table(document: dict[str, Any]) -> list[str]:
    rows = floor_fractions(document)
    if not rows:
        return ["No floors were measured (BENCH_PHASES without `floors`)."]
    lines = [
        "| floor | floor value | figure | measured | measured ÷ floor | figure's command |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        command = f"`{row['command']}`" if row.get("command") else ""
        lines.append(
            f"| {row['floor']} | {row['floor_text']} | {row['figure']} | {row['measured_text']} | "
            f"{row['ratio_text']} | {command} |"
        )
    command = get(document, "phases", "floors", "command")
    if command:
        lines += ["", f"Floors measured by `{command}`."]
    return lines


def ladder_table(phases: dict[str, Any]) -> list[str]:
    steps = get(phases, "ladder", "steps") or []
    if not steps:
        return ["No ladder in this run."]
    seen = {name for s in steps for name in (s.get("cpu_ms_per_decision") or {}) if name not in HARNESS}
    processes = [p for p in PROCESS_ORDER if p in seen] + sorted(seen - set(PROCESS_ORDER))
    head = ["offered/s", "decisions/s", "e2e p50 ms", "e2e p99 ms", "unknown", "keeps up", "stack CPU ms"]
    head += [f"{p} ms" for p in processes] + ["batch: authorize", "deliver", "bridge poll"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in steps:
        cpu = s.get("cpu_ms_per_decision") or {}
        batches = s.get("batch_sizes") or {}
        cells = [
            str(s["offered_per_s"]),
            _num(s.get("decisions_per_s")),
            _num(get(s, "end_to_end_latency", "p50_ms")),
            _num(get(s, "end_to_end_latency", "p99_ms")),
            str(s.get("unknown", "-")),
            "yes" if s.get("keeps_up") else "**no**",
            _num(s.get("stack_cpu_ms_per_decision")),
            *(_num(cpu.get(p)) for p in processes),
            *(_num(get(batches, kind, "mean")) for kind in ("authorize", "deliver", "bridge_poll")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown_table(document: dict[str, Any]) -> str:
    """The report as markdown: a header line, then the targets, floors and ladder tables."""
    machine = document.get("machine", {})
    commit = (document.get("commit", {}).get("sha") or "")[:10]
    dirty = " (uncommitted changes)" if document.get("commit", {}).get("dirty_files") else ""
    lines = [
        f"Measured {document.get('started_at', '')} on {machine.get('nproc')} cores "
        f"({machine.get('cpu_model')}), {(machine.get('memory_bytes') or 0) / GIB:.1f} GiB, commit "
        f"{commit}{dirty}, scale {document.get('scale')}; load average before "
        f"{(machine.get('load_average_before') or [0])[0]:.2f}.",
        "",
        'Targets (DESIGN.md "Targets"; they hold on PostgreSQL, the SQLite default is reported beside):',
        "",
        *_targets_table(document),
    ]
    idle = get(document, "phases", "resources", "idle", "stack_cpu_cores")
    if idle is not None:
        lines += ["", f"Stack CPU with no load (after the warm-up, queues empty): {idle:g} cores."]
    lines += ["", "Floors, and each figure as a fraction of its floor:", "", *_floors_table(document)]
    db = "SQLite" if document.get("database") == "sqlite" else "PostgreSQL"
    lines += ["", f"Ladder ({db}), CPU per decision by process and mean batch sizes:", ""]
    lines += ladder_table(document.get("phases") or {})
    sqlite = document.get("sqlite")
    if sqlite and not sqlite.get("json"):
        lines += ["", f"The SQLite pass wrote no report (it exited with {sqlite.get('returncode')})."]
    elif sqlite and not sqlite.get("consistency_passed"):
        lines += ["", f"The SQLite pass ({sqlite.get('json')}) FAILED its checks or was interrupted."]
    if sqlite and get(sqlite, "phases", "ladder"):
        lines += ["", f"Ladder (SQLite, {sqlite.get('json')}):", "", *ladder_table(sqlite["phases"])]
    return "\n".join(lines)


# --- files -------------------------------------------------------------------------------------------


def write(document: dict[str, Any], out_dir: Path, *, stem: str) -> dict[str, Path]:
    """<out_dir>/<stem>.json and .png; returns both paths."""
    from benchmarks.plot import plot  # noqa: PLC0415 - matplotlib is slow to import

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{stem}.json"
    png_path = out_dir / f"{stem}.png"
    document["plot"] = png_path.name
    plot(document, png_path)
    json_path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    return {"json": json_path, "png": png_path}


def main() -> None:
    from benchmarks.plot import plot  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("report", type=Path)
    args = parser.parse_args()
    document = json.loads(args.report.read_text())
    document["targets"] = targets(document)
    plot(document, args.report.with_suffix(".png"))
    print(markdown_table(document))


if __name__ == "__main__":
    main()
