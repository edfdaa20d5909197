"""The report's tables from a report's JSON: DESIGN "Targets" met or not, floors, the ladder by step."""

from __future__ import annotations

import copy
from typing import Any

from benchmarks.floor_fractions import floor_fractions
from benchmarks.report import markdown_table, targets

GIB = 1 << 30
LADDER = "BENCH_PHASES=ladder make bench"


def _step(rate: int, *, keeps_up: bool = True, p50: float = 8.0, p99: float = 25.0) -> dict[str, Any]:
    return {
        "offered_per_s": rate,
        "accepted_per_s": rate,
        "decisions_per_s": rate * 0.99 if keeps_up else rate * 0.7,
        "end_to_end_latency": {"p50_ms": p50, "p99_ms": p99},
        "accept_latency": {"p50_ms": 2.0, "p99_ms": 9.0},
        "unknown": 0,
        "keeps_up": keeps_up,
        "cpu_ms_per_decision": {"api": 1.0, "authorize": 1.5, "kafka": 0.5, "harness_loadgen": 0.9},
        "stack_cpu_ms_per_decision": 3.5,
        "cpu_ms_per_task": {"authorize": 30.0, "deliver": 12.0},
        "batch_sizes": {
            "decide": {"items": rate * 30, "batches": rate, "mean": 30.0},
            "deliver": {"items": rate * 30, "batches": rate * 2, "mean": 15.0},
            "bridge_poll": {"items": rate * 30, "batches": rate // 2, "mean": 60.0},
        },
    }


def _document() -> dict[str, Any]:
    """A run that meets every target (the sustained rate and the CPU not their stretch)."""
    steps = [_step(50), _step(100), _step(200), _step(300, p99=90.0), _step(400), _step(500, keeps_up=False)]
    return {
        "scale": "full",
        "database": "postgres",
        "machine": {"nproc": 2, "load_average_before": [0.3]},
        "commit": {"sha": "0123456789abcdef"},
        "phases": {
            "burst": {
                "requests": 3000,
                "concurrency": 64,
                "accepted_per_s": 850.0,
                "accept_latency": {"p99_ms": 90.0},
                "command": "BENCH_PHASES=burst make bench",
            },
            "accept": {
                "offered_per_s": 400,
                "accept_latency": {"p99_ms": 20.0},
                "command": "BENCH_PHASES=accept make bench",
            },
            "ladder": {"steps": steps, "command": LADDER},
            "sync_callback": {
                "concurrency": 8,
                "answered_per_s": 650.0,
                "latency": {"p99_ms": 28.0},
                "consistency": {"passed": True},
                "command": "BENCH_PHASES=sync_callback make bench",
            },
            "sync": {"concurrency": 8, "answered_per_s": 900.0, "latency": {"p99_ms": 15.0}},
            "ocpp": {
                "stations": 200,
                "per_station_rate_per_s": 2.0,
                "round_trip": {"p50_ms": 5.0, "p99_ms": 18.0},
                "restart": {
                    "stations_back": 200,
                    "answered_again_after_listening": {"max_ms": 300.0},
                    "start_to_listening_s": 3.2,
                },
                "consistency": {"passed": True},
                "command": "BENCH_PHASES=ocpp make bench",
            },
            "resources": {"stack_peak_pss_bytes": int(1.1 * GIB), "command": "make bench"},
            "floors": {
                "command": "BENCH_PHASES=floors make bench",
                "http": {
                    "noop": {"8": {"per_s": 1000.0, "latency": {"p99_ms": 14.0}}, "64": {"per_s": 1100.0}},
                    "produce": {"64": {"per_s": 1200.0, "latency": {"p99_ms": 80.0}}, "8": {"per_s": 700.0}},
                },
                "kafka": {
                    "rates": [
                        {"offered_per_s": 100, "round_trip": {"p50_ms": 4.0, "p99_ms": 10.0}, "ack": {}},
                        {
                            "offered_per_s": 400,
                            "round_trip": {"p50_ms": 4.0, "p99_ms": 12.0},
                            "ack": {"p99_ms": 5.0},
                        },
                    ],
                    "max": {"per_s": 8000.0},
                },
                "celery": {
                    "authorize_pool": {
                        "pool": "prefork",
                        "concurrency": 2,
                        "tasks_per_s": 250,
                        "cpu_ms_per_task": 4.0,
                    },
                    "callbacks_pool": {
                        "pool": "threads",
                        "concurrency": 16,
                        "tasks_per_s": 290,
                        "cpu_ms_per_task": 3.0,
                    },
                },
            },
        },
    }


def _by_figure(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["figure"].split(",")[0]: row for row in targets(document)}


def test_every_target_of_the_design_is_a_row_with_its_command() -> None:
    rows = targets(_document())
    assert [row["target"] for row in rows] == [
        "≥ 400 (stretch 600)",
        "≤ 10 / ≤ 30 ms, none `unknown`",
        "≤ 100 ms, none `unknown`",
        "≤ 4 ms (stretch 3)",
        "≥ 800/s, p99 ≤ 100 ms",
        "≤ 25 ms",
        "≥ 60 %",
        "≥ 600/s, p99 ≤ 30 ms",
        "p99 ≤ 20 ms",
        "≤ 1 s",
        "≤ 1.2 GiB",
    ]
    assert all(row["met"] is True for row in rows), [(r["figure"], r["measured_text"]) for r in rows]
    assert all(row["command"] for row in rows)
    by_figure = _by_figure(_document())
    sustained = by_figure["sustained decisions/s"]
    assert sustained["measured"] == 396.0
    assert sustained["stretch_met"] is False
    assert "offered 400/s kept up" in sustained["measured_text"]
    assert by_figure["whole-stack CPU per decision at the sustained maximum"]["stretch_met"] is False
    assert (
        by_figure["accept burst as a fraction of the produce-only floor (64 connections)"]["measured"]
        == 0.708
    )


def test_a_figure_measured_off_the_targets_conditions_is_not_met() -> None:
    document = _document()
    document["phases"]["burst"].update(requests=1000)
    document["phases"]["accept"].update(offered_per_s=200)
    document["phases"]["sync_callback"]["consistency"]["passed"] = False
    rows = _by_figure(document)
    burst = rows["accept burst"]
    assert burst["met"] is False
    assert "not the target's" in burst["measured_text"]
    assert rows["accept p99 at 400 requests/s (open loop)"]["met"] is False
    assert rows["synchronous decision with a callback"]["met"] is False


def test_ocpp_figures_are_met_only_at_200_stations_with_every_station_back_within_a_second() -> None:
    document = _document()
    rows = _by_figure(document)
    assert rows["OCPP Authorize round trip"]["measured_text"] == "p99 18 ms (p50 5)"
    assert rows["a station's reconnect after a gateway restart answered"]["measured_text"] == (
        "every station within 300 ms of the new gateway listening (3.2 s from its start)"
    )
    document["phases"]["ocpp"].update(stations=10)
    document["phases"]["ocpp"]["restart"]["stations_back"] = 9
    rows = _by_figure(document)
    assert rows["OCPP Authorize round trip"]["met"] is False
    assert "not the target's" in rows["OCPP Authorize round trip"]["measured_text"]
    restart = rows["a station's reconnect after a gateway restart answered"]
    assert restart["met"] is False
    assert restart["measured_text"].startswith("9 of 10 back")


def test_rates_the_ladder_never_reached_are_not_met() -> None:
    document = _document()
    document["phases"]["ladder"]["steps"] = [_step(50), _step(100, keeps_up=False, p99=400.0)]
    rows = _by_figure(document)
    assert rows["sustained decisions/s"]["measured"] == 49.5
    assert rows["sustained decisions/s"]["met"] is False
    assert rows["end to end at 100 requests/s"]["met"] is False
    at_300 = rows["end to end at 300 requests/s"]
    assert at_300["met"] is False
    assert at_300["measured_text"] == "not reached: the ladder fell behind at 100/s"


def test_nothing_measured_is_neither_met_nor_failed() -> None:
    rows = targets({"phases": {}})
    assert {row["met"] for row in rows} == {None}
    assert {row["measured_text"] for row in rows} == {"not measured"}


def test_the_sqlite_pass_stands_beside_each_figure() -> None:
    document = _document()
    sqlite_phases = copy.deepcopy(document["phases"])
    sqlite_phases["ladder"]["steps"] = [_step(50), _step(100), _step(200, keeps_up=False)]
    sqlite_phases["ladder"]["command"] = "BENCH_DB=sqlite BENCH_PHASES=ladder make bench"
    for name in ("burst", "accept", "resources", "floors"):
        del sqlite_phases[name]
    document["sqlite"] = {"json": "x-sqlite.json", "phases": sqlite_phases, "consistency_passed": True}
    rows = targets(document)
    assert rows[0]["sqlite"]["measured"] == 99.0
    assert rows[0]["sqlite"]["met"] is False
    assert rows[0]["sqlite"]["command"].startswith("BENCH_DB=sqlite")
    assert rows[4]["sqlite"] is None  # no burst on SQLite
    document["targets"] = rows
    text = markdown_table(document)
    assert "| measured (PostgreSQL) | met | SQLite | met |" in text
    assert "Ladder (SQLite, x-sqlite.json)" in text


def test_each_figure_is_reported_as_a_fraction_of_its_floor() -> None:
    rows = {(row["floor"], row["figure"]): row for row in floor_fractions(_document())}
    accept = rows[("produce-only route, 64 connections", "accept burst (target ≥ 60 %)")]
    assert accept["ratio"] == 0.708
    assert accept["ratio_text"] == "71 %"
    sync = rows[("no-op route, 8 connections", "sync with callback, 8 connections (/api/checkauthority/)")]
    assert sync["ratio"] == 0.65
    e2e = rows[("Kafka round trip p50 at 100/s", "end to end p50 at 100/s")]
    assert e2e["ratio"] == 2.0
    assert e2e["ratio_text"] == "2.00 x"
    # 300/s is nearest the floor's 400/s.
    assert rows[("Kafka round trip p99 at 400/s", "end to end p99 at 300/s")]["ratio"] == 7.5
    celery = next(row for (floor, _), row in rows.items() if floor.startswith("no-op Celery task, prefork"))
    assert celery["ratio"] == 7.5  # 30 ms per authorize task against 4 ms for a no-op task
    assert rows[("no-op route, 64 connections", "-")]["ratio_text"] == "-"


def test_the_markdown_has_the_three_tables() -> None:
    document = _document()
    text = markdown_table(document)
    assert "| figure | target | measured (PostgreSQL) | met | command |" in text
    assert "| floor | floor value | figure | measured | measured ÷ floor | figure's command |" in text
    ladder_head = next(line for line in text.splitlines() if line.startswith("| offered/s"))
    assert "| api ms | authorize ms | kafka ms |" in ladder_head
    assert "harness" not in ladder_head
    assert "| 400 | 396 | 8 | 25 | 0 | yes | 3.5 | 1 | 1.5 | 0.5 | 30 | 15 | - | 60 |" in text
    assert "| yes, stretch no |" in text
