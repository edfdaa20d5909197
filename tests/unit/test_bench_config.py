"""The benchmark's scales and knobs: the full scale measures what DESIGN "Targets" names."""

from __future__ import annotations

import pytest

from benchmarks.config import SCALES, figure_command, scale_from_env
from benchmarks.ladder import ladder_rates, per_decision_ms


def test_full_scale_is_the_targets_conditions() -> None:
    full = SCALES["full"]
    assert (full.burst_requests, full.burst_concurrency, full.burst_min_s) == (3000, 64, 0)
    assert full.accept_rate == 400
    assert full.sync_concurrency == 8
    assert full.database == "both"
    assert SCALES["tiny"].database == "postgres"


def test_the_ladder_climbs_50_then_every_hundred() -> None:
    assert list(ladder_rates(50, 100, 600)) == [50, 100, 200, 300, 400, 500, 600]
    assert list(ladder_rates(25, 25, 50)) == [25, 50]
    assert list(ladder_rates(100, 100, 250)) == [100, 200]


def test_knobs_from_the_environment_are_kept_for_the_command() -> None:
    environ = {"BENCH_STEP_S": "8", "BENCH_FLOOR_KAFKA_RATES": "100,400", "BENCH_DB": "sqlite"}
    scale, given = scale_from_env("full", environ)
    assert scale.step_s == 8.0
    assert scale.floor_kafka_rates == (100, 400)
    assert scale.database == "sqlite"
    assert given == environ


def test_an_unknown_database_is_refused() -> None:
    with pytest.raises(SystemExit, match="BENCH_DB"):
        scale_from_env("full", {"BENCH_DB": "mysql"})


def test_cpu_per_decision_is_milliseconds_per_decision_of_each_process() -> None:
    assert per_decision_ms({"api": 1.5, "bridge": 0.25}, 500) == {"api": 3.0, "bridge": 0.5}
    assert per_decision_ms({"api": 1.5}, 0) == {}


def test_a_figures_command_keeps_the_knobs_that_change_it() -> None:
    base = (
        "BENCH_BURST_N=1000 BENCH_STEP_S=8 BENCH_FLOOR_N=500 BENCH_SQLITE_STEP_S=4 BENCH_MAX_S=900 make bench"
    )
    named = {"BENCH_SCALE": "full", "BENCH_DB": "postgres", "BENCH_PHASES": "ladder", "BENCH_STEP_S": 8.0}
    assert figure_command(base, phase="ladder", named=named) == (
        "BENCH_SCALE=full BENCH_DB=postgres BENCH_PHASES=ladder BENCH_STEP_S=8 BENCH_MAX_S=900 make bench"
    )
    floors = figure_command(base, phase="floors", named={"BENCH_PHASES": "floors"})
    assert floors == "BENCH_PHASES=floors BENCH_FLOOR_N=500 BENCH_MAX_S=900 make bench"
