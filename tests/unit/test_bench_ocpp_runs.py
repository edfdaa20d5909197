"""benchmarks/ocpp_runs.py: the side-by-side table and plot of a folder of OCPP runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.ocpp_runs import _runs, plot, table


def _report(
    started: str, sha: str, *, p50: float, p99: float, gateway_s: float, postgres_s: float
) -> dict[str, Any]:
    return {
        "started_at": started,
        "commit": {"sha": sha},
        "phases": {
            "ocpp": {
                "calls": 1000,
                "round_trip": {"p50_ms": p50, "p99_ms": p99},
                "cpu_s": {"ocpp": gateway_s, "postgres": postgres_s, "harness_loadgen": 0.5},
                "gateway_cpu_ms_per_call": gateway_s,
                "stack_cpu_ms_per_call": gateway_s + postgres_s,
                "restart": {
                    "answered_again_after_listening": {"max_ms": 1234.0},
                    "start_to_listening_s": 1.5,
                },
            }
        },
    }


def test_runs_are_read_in_the_order_they_started_and_tabled_per_call(tmp_path: Path) -> None:
    (tmp_path / "later.json").write_text(
        json.dumps(_report("2026-12-04T01:10:00", "bbbbbbbbbb", p50=3, p99=18, gateway_s=1.0, postgres_s=0.4))
    )
    (tmp_path / "earlier.json").write_text(
        json.dumps(
            _report("2026-12-04T00:50:00", "aaaaaaaaaa", p50=20, p99=90, gateway_s=1.3, postgres_s=1.2)
        )
    )
    (tmp_path / "no-ocpp.json").write_text(json.dumps({"started_at": "2026-12-04T00:00:00", "phases": {}}))

    runs = _runs(tmp_path)
    text = table(runs)

    assert [name for name, _ in runs] == ["earlier", "later"]
    rows = text.splitlines()[2:]
    # CPU seconds over 1,000 calls: 1.2 s of PostgreSQL is 1.20 ms a call.
    assert rows[0] == "| earlier | 00:50 | aaaaaaa | 20.0 / 90.0 | 1.30 / 1.20 / 2.50 | 0.50 | 1,234 | 1.50 |"
    assert rows[1].startswith("| later | 01:10 | bbbbbbb | 3.0 / 18.0 | 1.00 / 0.40 / 1.40 |")
    plot(runs, tmp_path / "runs.png")
    assert (tmp_path / "runs.png").stat().st_size > 0
