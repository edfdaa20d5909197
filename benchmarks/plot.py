"""The report's PNG: the ladder against its offered rate, the SQLite pass dashed beside PostgreSQL.

top left      throughput: accepted/s and decisions/s per step; the accept burst, the synchronous
              phases and their floors as horizontal lines
top right     latency: end to end and accept, p50 and p99 (log scale), the targets' limits
bottom left   CPU per decision by process (ms), stacked, against the offered rate
bottom right  mean batch size per step: requests per authorize task, deliveries per deliver
              task, messages per bridge poll
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.report import HARNESS, PROCESS_ORDER
from benchmarks.targets import get


def _steps(phases: dict[str, Any] | None) -> list[dict[str, Any]]:
    return get(phases, "ladder", "steps") or []


def _throughput(ax: Any, document: dict[str, Any]) -> None:
    steps = _steps(document.get("phases"))
    offered = [s["offered_per_s"] for s in steps]
    ax.plot(offered, offered, linestyle=":", color="grey", label="offered")
    ax.plot(offered, [s["accepted_per_s"] for s in steps], marker="o", label="accepted/s (202)")
    ax.plot(offered, [s["decisions_per_s"] for s in steps], marker="s", label="decisions/s (callback in)")
    sqlite = _steps(get(document, "sqlite", "phases"))
    if sqlite:
        ax.plot(
            [s["offered_per_s"] for s in sqlite],
            [s["decisions_per_s"] for s in sqlite],
            marker="s",
            linestyle="--",
            label="decisions/s, SQLite",
        )
    lines = (
        (get(document, "phases", "burst", "accepted_per_s"), "accept burst", "tab:green", "--"),
        (get(document, "phases", "sync_callback", "answered_per_s"), "sync + callback", "tab:purple", "-."),
        (get(document, "phases", "sync", "answered_per_s"), "sync authorize", "tab:brown", "-."),
        (
            get(document, "phases", "floors", "http", "produce", "64", "per_s"),
            "floor: produce-only/64",
            "k",
            ":",
        ),
        (get(document, "phases", "floors", "http", "noop", "8", "per_s"), "floor: no-op/8", "tab:grey", ":"),
    )
    for value, label, color, style in lines:
        if value:
            ax.axhline(value, color=color, linestyle=style, linewidth=1, label=f"{label} {value:.0f}/s")
    ax.axhline(400, color="tab:red", linewidth=0.8, label="target 400 decisions/s")
    ax.set_xlabel("offered requests/s")
    ax.set_ylabel("per second")
    ax.set_title("throughput")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def _latency(ax: Any, document: dict[str, Any]) -> None:
    for phases, db in ((document.get("phases"), ""), (get(document, "sqlite", "phases"), ", SQLite")):
        steps = _steps(phases)
        if not steps:
            continue
        offered = [s["offered_per_s"] for s in steps]
        keys = (("end_to_end_latency", "end to end", "-"),) + (
            (("accept_latency", "accept (202)", "--"),) if not db else ()
        )
        for key, label, style in keys:
            for pct, marker in (("p50_ms", "o"), ("p99_ms", "^")):
                values = [get(s, key, pct) for s in steps]
                ax.plot(
                    offered,
                    values,
                    linestyle=":" if db else style,
                    marker=marker,
                    label=f"{label} {pct[:3]}{db}",
                )
    ax.axhline(30, color="tab:red", linewidth=0.8, label="e2e p99 target at 100/s (30 ms)")
    ax.axhline(100, color="tab:pink", linewidth=0.8, label="e2e p99 target at 300/s (100 ms)")
    ax.axhline(25, color="tab:orange", linewidth=0.8, label="accept p99 target at 400/s (25 ms)")
    ax.set_yscale("log")
    ax.set_xlabel("offered requests/s")
    ax.set_ylabel("ms (log)")
    ax.set_title("latency")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")


def _cpu(ax: Any, document: dict[str, Any]) -> None:
    steps = [s for s in _steps(document.get("phases")) if s.get("cpu_ms_per_decision")]
    if not steps:
        ax.set_title("CPU per decision by process (no ladder)")
        return
    seen = {name for s in steps for name in s["cpu_ms_per_decision"] if name not in HARNESS}
    processes = [p for p in PROCESS_ORDER if p in seen] + sorted(seen - set(PROCESS_ORDER))
    offered = [s["offered_per_s"] for s in steps]
    layers = [[s["cpu_ms_per_decision"].get(p, 0.0) for s in steps] for p in processes]
    if len(steps) > 1:
        ax.stackplot(offered, layers, labels=processes, alpha=0.85)
    else:  # one step has no area to draw: a stacked bar
        bottom = 0.0
        for name, (value,) in zip(processes, layers, strict=True):
            ax.bar(offered, [value], bottom=[bottom], width=offered[0] * 0.2, label=name, alpha=0.85)
            bottom += value
    ax.axhline(4, color="tab:red", linewidth=0.8, label="target 4 ms (stretch 3)")
    ax.axhline(3, color="tab:red", linewidth=0.8, linestyle=":")
    sqlite = [s for s in _steps(get(document, "sqlite", "phases")) if s.get("stack_cpu_ms_per_decision")]
    if sqlite:
        ax.plot(
            [s["offered_per_s"] for s in sqlite],
            [s["stack_cpu_ms_per_decision"] for s in sqlite],
            color="k",
            linestyle="--",
            marker="s",
            label="whole stack, SQLite",
        )
    ax.set_xlabel("offered requests/s")
    ax.set_ylabel("CPU ms per decision")
    ax.set_title("CPU per decision by process (stacked)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)


def _batches(ax: Any, document: dict[str, Any]) -> None:
    for phases, style, db in (
        (document.get("phases"), "-", ""),
        (get(document, "sqlite", "phases"), "--", ", SQLite"),
    ):
        steps = _steps(phases)
        if not steps:
            continue
        offered = [s["offered_per_s"] for s in steps]
        for kind, label in (
            ("decide", "requests per decision"),
            ("deliver", "deliveries per deliver task"),
            ("deliver_bridge", "first attempts per bridge batch"),
            ("bridge_poll", "messages per bridge poll"),
        ):
            values = [get(s, "batch_sizes", kind, "mean") for s in steps]
            ax.plot(offered, values, linestyle=style, marker="o", label=f"{label}{db}")
    ax.set_xlabel("offered requests/s")
    ax.set_ylabel("mean batch size")
    ax.set_title("batch sizes")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def plot(document: dict[str, Any], path: Path) -> None:
    """Write the four panels to `path`."""
    import matplotlib  # noqa: PLC0415 - slow import, only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    _throughput(axes[0][0], document)
    _latency(axes[0][1], document)
    _cpu(axes[1][0], document)
    _batches(axes[1][1], document)
    machine = document.get("machine", {})
    fig.suptitle(
        f"Charge Service benchmark, {document.get('started_at', '')}, commit "
        f"{(document.get('commit', {}).get('sha') or '')[:10]}, {machine.get('nproc')} cores, "
        f"scale {document.get('scale')}, {document.get('database', 'postgres')}"
        + (" (SQLite pass dashed)" if document.get("sqlite") else ""),
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
