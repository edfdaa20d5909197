"""`make bench` at its tiny size, so `make test` keeps the benchmark harness working.

It runs benchmarks/run.py, the entry point compose/local/bench.sh calls once it has started Kafka,
Redis and PostgreSQL, against this session's fixture services instead: a second Kafka would add
its start-up to every `make test`, and bench.sh around the entry point only starts and stops those
three with the same scripts the fixtures use. The api, bridge, workers, beat, Flower and the callback
receiver are started by the entry point itself, exactly as in `make bench`.

Speed is never asserted here (DESIGN: benchmarks, never timed tests): the report's shape is, and the
harness's own checks that every accepted request was decided once and called back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.floor_fractions import floor_fractions
from benchmarks.hot_paths import BATCH_SIZES
from harness.processes import REPO

PHASES = ("burst", "accept", "ladder", "sync_callback", "sync", "floors", "resources")
STACK_GROUPS = {
    "nginx",
    "api",
    "bridge",
    "authorize",
    "callbacks",
    "beat",
    "ocpp",
    "kafka",
    "redis",
    "postgres",
}
# The bridge makes the first attempt of each callback (a deliver task only for what finds no room).
BATCH_KINDS = ("decide", "deliver_bridge", "bridge_poll")


# About a minute on a quiet machine; the bounds leave room for a busy one (start-up alone can take
# minutes there). The harness stops everything it started by itself at its own time limit.
@pytest.mark.timeout(480)
def test_tiny_bench_reports_every_section_and_loses_nothing(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in stack_env.items() if not k.startswith("BENCH_")}
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "benchmarks.run", "--scale", "tiny", "--out", str(out)]
    # Its own Redis database: the Celery queues of other tests' workers stay apart.
    argv += ["--work", str(tmp_path / "work"), "--redis-db", "9"]
    returncode, stdout, stderr = _run_harness(argv, env=env, timeout=420)
    output = stdout[-6000:] + stderr[-4000:]
    assert returncode == 0, output

    reports = list(out.glob("*-tiny.json"))
    assert len(reports) == 1, output
    document = json.loads(reports[0].read_text())
    assert (out / document["plot"]).stat().st_size > 0
    for key in ("machine", "commit", "versions", "settings", "targets", "command"):
        assert document[key], key
    assert document["machine"]["nproc"] == os.cpu_count()
    assert document["interrupted"] is None
    assert document["database"] == "postgres"
    assert "sqlite" not in document  # BENCH_DB's tiny default: PostgreSQL only
    phases = document["phases"]
    assert set(PHASES) <= phases.keys()

    # The harness's own checks: one decision, one delivered callback delivery and one callback at
    # the receiver for every accepted request; every synchronous answer logged once.
    assert document["consistency_passed"] is True, output
    for name in ("burst", "accept", "sync_callback", "sync", "ocpp"):
        assert phases[name]["consistency"]["passed"], (name, phases[name]["consistency"])
    # The OCPP stations: every call answered as the ACL says, every station back after the restart.
    assert phases["ocpp"]["calls"] > 0
    assert phases["ocpp"]["restart"]["stations_back"] == phases["ocpp"]["stations"]
    assert phases["burst"]["accepted"] == phases["burst"]["requests"] == 200
    # The original service's synchronous route with a callback: each answer logged, called back once.
    sync_callback = phases["sync_callback"]
    assert sync_callback["consistency"]["checks"]["every_callback_arrived_once"]
    assert sync_callback["answered_per_s"] > 0
    assert sync_callback["callback_after_answer_latency"]["count"] == sum(sync_callback["statuses"].values())
    _assert_ladder_steps(phases["ladder"]["steps"])
    _assert_floors(document)
    assert len(document["targets"]) == 11

    # Every figure carries the command that produced it; memory and CPU cover every process group.
    assert all(row["command"] for row in document["targets"]), document["targets"]
    resources = phases["resources"]
    assert resources["process_groups"].keys() >= STACK_GROUPS
    assert resources["stack_peak_rss_bytes"] > 0
    assert resources["cpu_reference_step"]["stack_cpu_s_per_1000_decisions"] > 0
    assert resources["idle"]["cpu_cores"].keys() >= STACK_GROUPS
    for name in ("burst", "accept", "ladder", "sync_callback", "sync"):
        assert phases[name]["settled_before"]["left_queued"] == {"authorize": 0, "callbacks": 0, "unacked": 0}
    # The floors' api server and Celery worker are gone with the harness.
    assert not _commands_mentioning(phases["floors"]["http"]["server"])
    assert not _commands_mentioning(phases["floors"]["celery"]["authorize_pool"]["worker_hostname"])


def _assert_ladder_steps(steps: list[dict[str, Any]]) -> None:
    assert steps, "no ladder step ran"
    for step in steps:
        assert step["consistency"]["passed"], step["consistency"]
        assert step["end_to_end_latency"]["count"] == step["accepted"]
        # CPU per decision of every process, and the batches the step's requests travelled in.
        assert step["cpu_ms_per_decision"].keys() >= STACK_GROUPS
        assert step["stack_cpu_ms_per_decision"] > 0
        assert step["metrics_scrape_errors"] == {}
        for kind in BATCH_KINDS:
            batches = step["batch_sizes"][kind]
            assert batches["batches"] >= 1, (kind, batches)
            assert batches["mean"] >= 1, (kind, batches)
        assert step["batch_sizes"]["decide"]["items"] == step["accepted"]
        first_attempts = (
            step["batch_sizes"]["deliver_bridge"]["items"] + step["batch_sizes"]["deliver"]["items"]
        )
        assert first_attempts >= step["accepted"], step["batch_sizes"]


def _assert_floors(document: dict[str, Any]) -> None:
    """Each floor measured, and each figure beside its floor."""
    floors = document["phases"]["floors"]
    assert floors["celery"]["authorize_pool"]["tasks_per_s"] > 0
    assert floors["celery"]["authorize_pool"]["cpu_ms_per_task"] > 0
    kafka = floors["kafka"]
    for at_rate in kafka["rates"]:
        assert at_rate["received"] == at_rate["messages"] > 0, at_rate
        assert at_rate["round_trip"]["p50_ms"] > 0
    assert kafka["max"]["received"] == kafka["max"]["messages"]
    assert kafka["max"]["per_s"] > 0
    for route in ("noop", "produce"):
        for connections in ("64", "8"):
            burst = floors["http"][route][connections]
            assert burst["ok"] == burst["requests"] > 0, (route, connections, burst)
    fractions = {row["floor"]: row for row in floor_fractions(document)}
    assert fractions["produce-only route, 64 connections"]["ratio"] > 0
    assert fractions["no-op route, 8 connections"]["ratio"] > 0


def _run_harness(argv: list[str], *, env: dict[str, str], timeout: float) -> tuple[int, str, str]:
    """Run the harness; on timeout or any interruption, SIGTERM it first so it stops the stack it started.

    subprocess.run would SIGKILL it and leave Kafka, Redis, PostgreSQL and the workers running.
    """
    process = subprocess.Popen(
        argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except BaseException:
        process.terminate()
        try:
            process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        raise
    return process.returncode, stdout, stderr


@pytest.mark.timeout(300)
def test_hot_paths_measure_each_path_on_services_of_their_own(tmp_path: Path) -> None:
    """benchmarks/hot_paths.py at a tiny size: it starts and stops its own Redis, PostgreSQL and Kafka."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    argv = [sys.executable, "-m", "benchmarks.hot_paths", "--calls", "20", "--out", str(tmp_path)]
    returncode, stdout, stderr = _run_harness(argv, env=env, timeout=240)
    assert returncode == 0, stdout[-4000:] + stderr[-4000:]
    (report,) = tmp_path.glob("hot-paths-*.json")
    results = json.loads(report.read_text())["results"]
    batched = {
        f"{path}_{size}": size
        for size in BATCH_SIZES
        for path in ("decide", "deliver", "store", "store_decided")
    }
    assert set(results) == {"sync_authorize", "sync_callback", "accept", "send_task", *batched}
    for name, figures in results.items():
        assert figures["calls"] == 20, name
        assert figures["cpu_ms_per_call"] > 0, name
        assert figures["items_per_call"] == batched.get(name, 1), name
    # Its PostgreSQL (the one server that names its folder on its command line) is gone with it.
    assert not _commands_mentioning("charge-hot-paths-")


def _commands_mentioning(fragment: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fragment in command:
            found.append(f"{proc.name}: {command}")
    return found
