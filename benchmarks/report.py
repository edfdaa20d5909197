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

from benchmarks.floor_fractions import floor_fractions
from benchmarks.targets import GIB, get, number_text, targets

# The ladder table's process columns, in this order (others follow); the harness is left out.
PROCESS_ORDER = (
    "nginx",
    "api",
    "bridge",
    "authorize",
    "callbacks",
    "beat",
    "flower",
    "kafka",
    "redis",
    "postgres",
)
HARNESS = ("harness_loadgen", "harness_receiver")


# The ladder table's batch columns, in order.
BATCH_COLUMNS = ("decide", "deliver", "deliver_bridge", "bridge_poll")


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
    if get(document, "phases", "floors", "alongside_stack_start"):
        lines += ["They ran while the stack started (tiny scale): their figures only show they work."]
    return lines


def ladder_table(phases: dict[str, Any]) -> list[str]:
    steps = get(phases, "ladder", "steps") or []
    if not steps:
        return ["No ladder in this run."]
    seen = {name for s in steps for name in (s.get("cpu_ms_per_decision") or {}) if name not in HARNESS}
    processes = [p for p in PROCESS_ORDER if p in seen] + sorted(seen - set(PROCESS_ORDER))
    head = ["offered/s", "decisions/s", "e2e p50 ms", "e2e p99 ms", "unknown", "keeps up", "stack CPU ms"]
    head += [f"{p} ms" for p in processes] + ["batch: decide", "deliver", "deliver in bridge", "bridge poll"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in steps:
        cpu = s.get("cpu_ms_per_decision") or {}
        batches = s.get("batch_sizes") or {}
        cells = [
            str(s["offered_per_s"]),
            number_text(s.get("decisions_per_s")),
            number_text(get(s, "end_to_end_latency", "p50_ms")),
            number_text(get(s, "end_to_end_latency", "p99_ms")),
            str(s.get("unknown", "-")),
            "yes" if s.get("keeps_up") else "**no**",
            number_text(s.get("stack_cpu_ms_per_decision")),
            *(number_text(cpu.get(p)) for p in processes),
            *(number_text(get(batches, kind, "mean")) for kind in BATCH_COLUMNS),
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
