"""Side-by-side OCPP runs: one row and one bar group per `make bench` report in a folder.

    python -m benchmarks.ocpp_runs benchmarks/results/ab-ocpp-2026-12-04   # table; DIR/ocpp-runs.png

For A/B runs of the `ocpp` phase (alternating, one sitting): the Authorize round trip, CPU per call of
the gateway, PostgreSQL and the load generator, and the restart, in the order the runs started.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.targets import get


def _runs(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    runs = []
    for path in folder.glob("*.json"):
        document = json.loads(path.read_text())
        if get(document, "phases", "ocpp", "calls"):
            runs.append((path.stem, document))
    return sorted(runs, key=lambda run: str(run[1].get("started_at", "")))


def _per_call_ms(ocpp: dict[str, Any], process: str) -> float:
    return float(ocpp["cpu_s"].get(process, 0.0)) * 1000 / ocpp["calls"]


def table(runs: list[tuple[str, dict[str, Any]]]) -> str:
    lines = [
        "| run | started | commit | round trip p50 / p99 ms | CPU ms per call: gateway / PostgreSQL / stack "
        "| load generator CPU ms per call | listening → last station answered ms | start → listening s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, document in runs:
        ocpp = document["phases"]["ocpp"]
        restart = ocpp["restart"]
        lines.append(
            f"| {name} | {str(document.get('started_at', ''))[11:16]} | "
            f"{(get(document, 'commit', 'sha') or '')[:7]} | "
            f"{ocpp['round_trip']['p50_ms']:.1f} / {ocpp['round_trip']['p99_ms']:.1f} | "
            f"{ocpp['gateway_cpu_ms_per_call']:.2f} / {_per_call_ms(ocpp, 'postgres'):.2f} / "
            f"{ocpp['stack_cpu_ms_per_call']:.2f} | {_per_call_ms(ocpp, 'harness_loadgen'):.2f} | "
            f"{restart['answered_again_after_listening']['max_ms']:,.0f} | "
            f"{restart['start_to_listening_s']:.2f} |"
        )
    return "\n".join(lines)


def plot(runs: list[tuple[str, dict[str, Any]]], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - slow import, only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = [name for name, _ in runs]
    ocpp = [document["phases"]["ocpp"] for _, document in runs]
    x = range(len(runs))
    fig, (latency, cpu) = plt.subplots(2, 1, figsize=(max(8, len(runs) * 0.9), 8), sharex=True)
    latency.bar([i - 0.2 for i in x], [o["round_trip"]["p50_ms"] for o in ocpp], 0.4, label="p50")
    latency.bar([i + 0.2 for i in x], [o["round_trip"]["p99_ms"] for o in ocpp], 0.4, label="p99")
    latency.axhline(20, color="red", linestyle=":", label="p99 target (20 ms)")
    latency.set_ylabel("Authorize round trip, ms")
    latency.legend(fontsize=8)
    latency.grid(alpha=0.3, axis="y")
    bottom = [0.0] * len(runs)
    for process in ("ocpp", "postgres", "harness_loadgen"):
        values = [_per_call_ms(o, process) for o in ocpp]
        cpu.bar(list(x), values, 0.6, bottom=bottom, label="gateway" if process == "ocpp" else process)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    cpu.set_ylabel("CPU ms per call (stacked)")
    cpu.set_xticks(list(x), names, rotation=35, ha="right", fontsize=8)
    cpu.legend(fontsize=8)
    cpu.grid(alpha=0.3, axis="y")
    fig.suptitle("OCPP phase, 200 stations x Authorize 2/s, runs in the order they started", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    folder = parser.parse_args().folder
    runs = _runs(folder)
    if not runs:
        raise SystemExit(f"no report with an ocpp phase in {folder}")
    print(table(runs))
    plot(runs, folder / "ocpp-runs.png")
    print(f"\nplot: {folder / 'ocpp-runs.png'}")


if __name__ == "__main__":
    main()
