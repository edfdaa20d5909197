"""The benchmark report: JSON, a PNG plot beside it, and a markdown table for the README.

python -m benchmarks.report benchmarks/results/<file>.json    # redraw the plot, print the table
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

GIB = 1 << 30


def _get(document: dict[str, Any], *path: str) -> Any:
    node: Any = document
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _step(document: dict[str, Any], rate: float) -> dict[str, Any] | None:
    for step in _get(document, "phases", "ladder", "steps") or []:
        if step["offered_per_s"] == rate:
            return step
    return None


def _target(
    figure: str, target: str, measured: Any, unit: str, *, met: bool | None, command: str | None
) -> dict[str, Any]:
    shown = "not measured" if measured is None else f"{measured:g} {unit}".strip()
    return {
        "figure": figure,
        "target": target,
        "measured": measured,
        "measured_text": shown,
        "met": None if measured is None else met,
        "command": command,
    }


def targets(document: dict[str, Any]) -> list[dict[str, Any]]:
    """DESIGN.md "Targets", each with what this run measured and the command that measured it."""
    out: list[dict[str, Any]] = []
    burst = _get(document, "phases", "burst") or {}
    rate = burst.get("accepted_per_s")
    duration = burst.get("duration_s") or 0
    out.append(
        _target(
            f"accept throughput (burst of {burst.get('requests', '?')} over {duration:g} s)",
            ">= 800 requests/s over 60 s",
            rate,
            "requests/s",
            met=rate is not None and rate >= 800 and duration >= 60,
            command=burst.get("command"),
        )
    )
    accept = _get(document, "phases", "accept") or {}
    p99 = _get(accept, "accept_latency", "p99_ms")
    offered = accept.get("offered_per_s")
    out.append(
        _target(
            f"accept p99 at {offered:g} requests/s" if offered else "accept p99 at 400 requests/s",
            "<= 25 ms at 400 requests/s",
            p99,
            "ms",
            met=p99 is not None and p99 <= 25 and offered == 400,
            command=accept.get("command"),
        )
    )
    ladder = _get(document, "phases", "ladder") or {}
    sustained = ladder.get("max_sustained_decisions_per_s")
    unknown = sum(step.get("unknown", 0) for step in ladder.get("steps", []) if step.get("keeps_up"))
    out.append(
        _target(
            "pipeline decisions/s sustained, request to callback, no unknown",
            ">= 300 decisions/s (stretch 500)",
            sustained,
            "decisions/s",
            met=(ladder.get("max_sustained_offered_per_s") or 0) >= 300 and unknown == 0,
            command=ladder.get("command"),
        )
    )
    step100 = _step(document, 100)
    for name, limit in (("p50", 20), ("p99", 100)):
        value = _get(step100, "end_to_end_latency", f"{name}_ms") if step100 else None
        out.append(
            _target(
                f"end to end at 100 requests/s, {name} (202 → callback received)",
                f"<= {limit} ms",
                value,
                "ms",
                met=value is not None and value <= limit,
                command=ladder.get("command"),
            )
        )
    sync = _get(document, "phases", "sync") or {}
    sync_rate = sync.get("answered_per_s")
    out.append(
        _target(
            "sync authorize throughput",
            ">= 1000 requests/s",
            sync_rate,
            "requests/s",
            met=sync_rate is not None and sync_rate >= 1000,
            command=sync.get("command"),
        )
    )
    resources = _get(document, "phases", "resources") or {}
    # PSS: a page shared by several processes (PostgreSQL's shared buffers in every backend, the
    # copy-on-write pages of forked workers) counted once, split among them; a sum of RSS counts it
    # in every process (reported beside it in the JSON as stack_peak_rss_bytes).
    peak = resources.get("stack_peak_pss_bytes") or resources.get("stack_peak_rss_bytes")
    peak_gib = round(peak / GIB, 3) if peak else None
    out.append(
        _target(
            "whole stack resident memory (peak PSS, every process of the stack)",
            "<= 1.5 GiB",
            peak_gib,
            "GiB",
            met=peak_gib is not None and peak_gib <= 1.5,
            command=resources.get("command"),
        )
    )
    reference = resources.get("cpu_reference_step") or {}
    cpu = reference.get("stack_cpu_s_per_1000_decisions")
    out.append(
        _target(
            f"stack CPU per 1,000 decisions (at {reference.get('offered_per_s', '?')}/s)",
            "(no target)",
            cpu,
            "CPU s",
            met=None,
            command=resources.get("command"),
        )
    )
    idle = _get(resources, "idle", "stack_cpu_cores")
    out.append(
        _target(
            "stack CPU with no load (after the warm-up, queues empty)",
            "(no target)",
            idle,
            "cores",
            met=None,
            command=resources.get("command"),
        )
    )
    return out


def markdown_table(document: dict[str, Any]) -> str:
    machine = document.get("machine", {})
    commit = (document.get("commit", {}).get("sha") or "")[:10]
    dirty = " (uncommitted changes)" if document.get("commit", {}).get("dirty_files") else ""
    lines = [
        f"Measured {document.get('started_at', '')} on {machine.get('nproc')} cores "
        f"({machine.get('cpu_model')}), {(machine.get('memory_bytes') or 0) / GIB:.1f} GiB, commit "
        f"{commit}{dirty}, scale {document.get('scale')}; load average before "
        f"{machine.get('load_average_before', [0])[0]:.2f}.",
        "",
        "| figure | target | measured | met | command |",
        "|---|---|---|---|---|",
    ]
    for row in document.get("targets", []):
        met = {True: "yes", False: "**no**", None: "-"}[row["met"]]
        command = f"`{row['command']}`" if row.get("command") else ""
        lines.append(f"| {row['figure']} | {row['target']} | {row['measured_text']} | {met} | {command} |")
    return "\n".join(lines)


def plot(document: dict[str, Any], path: Path) -> None:
    """Throughput and latency against offered rate (the ladder), plus the accept and sync points."""
    import matplotlib  # noqa: PLC0415 - slow import, only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    steps = _get(document, "phases", "ladder", "steps") or []
    offered = [s["offered_per_s"] for s in steps]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    left.plot(offered, offered, linestyle=":", color="grey", label="offered")
    left.plot(offered, [s["accepted_per_s"] for s in steps], marker="o", label="accepted/s (202)")
    left.plot(
        offered, [s["decisions_per_s"] for s in steps], marker="s", label="decisions/s (callback received)"
    )
    burst = _get(document, "phases", "burst", "accepted_per_s")
    if burst:
        left.axhline(burst, color="tab:green", linestyle="--", label=f"accept burst {burst:.0f}/s")
    sync = _get(document, "phases", "sync", "answered_per_s")
    if sync:
        left.axhline(sync, color="tab:purple", linestyle="-.", label=f"sync authorize {sync:.0f}/s")
    left.axhline(300, color="tab:red", linewidth=0.8, label="target 300 decisions/s")
    left.set_xlabel("offered requests/s")
    left.set_ylabel("per second")
    left.set_title("throughput")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)

    for key, label, style in (
        ("end_to_end_latency", "end to end", "-"),
        ("accept_latency", "accept (202)", "--"),
    ):
        for pct, marker in (("p50_ms", "o"), ("p99_ms", "^")):
            values = [_get(s, key, pct) for s in steps]
            right.plot(offered, values, linestyle=style, marker=marker, label=f"{label} {pct[:3]}")
    right.axhline(100, color="tab:red", linewidth=0.8, label="e2e p99 target at 100/s")
    right.axhline(25, color="tab:orange", linewidth=0.8, label="accept p99 target at 400/s")
    right.set_yscale("log")
    right.set_xlabel("offered requests/s")
    right.set_ylabel("ms (log)")
    right.set_title("latency")
    right.legend(fontsize=8)
    right.grid(alpha=0.3, which="both")
    machine = document.get("machine", {})
    fig.suptitle(
        f"Charge Service benchmark, {document.get('started_at', '')}, commit "
        f"{(document.get('commit', {}).get('sha') or '')[:10]}, {machine.get('nproc')} cores, "
        f"scale {document.get('scale')}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(document: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """benchmarks/results/<date>-<commit>[-<scale>].json and .png; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    date = (document.get("started_at") or "")[:10] or "undated"
    commit = (document.get("commit", {}).get("sha") or "nocommit")[:7]
    suffix = "" if document.get("scale") == "full" else f"-{document.get('scale')}"
    stem = f"{date}-{commit}{suffix}"
    json_path = out_dir / f"{stem}.json"
    png_path = out_dir / f"{stem}.png"
    document["plot"] = png_path.name
    plot(document, png_path)
    json_path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    return {"json": json_path, "png": png_path}


def main() -> None:
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
