"""One request, followed through every process by its request_id; the bridge's and a worker's metrics.

The api runs in this process (its log records are captured), the bridge and the Celery worker as
real processes writing JSON lines to their log files: one grep for the request_id finds it in each.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import structlog
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from harness.processes import free_port, wait_until
from tests.integration.conftest import Pipeline

STATION = "5f0c6a0e-4b1e-4d55-9a7e-3c1f2b9d8e71"
TOKEN = "DRIVER-TOKEN-0123456789"

_JSON_LINE = structlog.stdlib.ProcessorFormatter(
    processors=[
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.processors.JSONRenderer(),
    ]
)


def _grep(request_id: str, lines: list[str]) -> list[dict[str, Any]]:
    """The JSON objects among `lines` that mention `request_id`, as `grep <request_id>` would find them."""
    return [json.loads(line) for line in lines if request_id in line and line.startswith("{")]


def _file_lines(paths: list[Path]) -> list[str]:
    return [line for path in paths for line in path.read_text(errors="replace").splitlines()]


def _scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def observed(pipeline: Pipeline, tmp_path: Path) -> dict[str, int]:
    """The bridge and a prefork worker with metrics ports; the worker's children share one directory."""
    ports = {"bridge": free_port(), "worker": free_port()}
    metrics_dir = tmp_path / "worker-metrics"
    metrics_dir.mkdir()
    pipeline.env["CHARGE_BRIDGE_METRICS_PORT"] = str(ports["bridge"])
    pipeline.start_bridge()
    pipeline.env.update(
        CHARGE_BRIDGE_METRICS_PORT="0",
        CHARGE_WORKER_METRICS_PORT=str(ports["worker"]),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    pipeline.start_worker(pool="prefork", concurrency=2)
    return ports


def test_one_grep_follows_a_request_through_every_process(
    pipeline: Pipeline, client: Client, observed: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    pipeline.post_json(client, "/api/insertACL/", {"station_id": STATION, "driver_token": TOKEN})
    accepted = pipeline.post_json(
        client,
        "/api/v1/charging-requests",
        {"station_id": STATION, "driver_token": TOKEN, "callback_url": pipeline.receiver.url()},
    )
    assert accepted.status_code == 202
    request_id = accepted.json()["request_id"]
    pipeline.receiver.wait_for(request_id)

    api_lines = [_JSON_LINE.format(record) for record in caplog.records if isinstance(record.msg, dict)]
    bridge_logs = sorted(pipeline.log_dir.glob("bridge-*.log"))
    worker_logs = sorted(pipeline.log_dir.glob("worker-*.log"))
    found: dict[str, list[dict[str, Any]]] = {}

    def every_process_logged_it() -> bool:
        found["api"] = _grep(request_id, api_lines)
        found["bridge"] = _grep(request_id, _file_lines(bridge_logs))
        found["worker"] = _grep(request_id, _file_lines(worker_logs))
        events = {line["event"] for lines in found.values() for line in lines}
        return {"request_accepted", "requests_decided", "callback_batch"} <= events

    wait_until(every_process_logged_it, timeout=20, what=f"log lines of {request_id} in every process")

    assert {line["event"] for line in found["api"]} >= {"request_accepted"}
    # One line per stage: the bridge's and the workers' lines are per batch and list its requests.
    # The bridge decides what it stored (CHARGE_BRIDGE_DECIDES) and makes the first attempt of its
    # callback from its own threads (CHARGE_BRIDGE_CALLBACK_THREADS): two lines, one per stage
    # (its `requests_bridged` line is at DEBUG when it decides).
    assert sorted(line["event"] for line in found["bridge"]) == ["callback_batch", "requests_decided"]
    assert found["worker"] == []
    # Every line that names the request names it in a field of its own, as one JSON object: the
    # request_id of the api's lines, the request_ids of a batch's.
    for lines in found.values():
        for line in lines:
            assert line.get("request_id") == request_id or request_id in line["request_ids"], line


@pytest.fixture
def first_attempts_by_the_worker(pipeline: Pipeline) -> None:
    """The callbacks worker makes every attempt (the bridge makes the first by default), so its
    pool's metrics have a delivery to show. Listed before `observed`, which starts the processes."""
    pipeline.env["CHARGE_BRIDGE_CALLBACK_THREADS"] = "0"


def test_the_bridge_and_a_prefork_worker_serve_their_metrics(
    pipeline: Pipeline, client: Client, first_attempts_by_the_worker: None, observed: dict[str, int]
) -> None:
    pipeline.post_json(client, "/api/insertACL/", {"station_id": STATION, "driver_token": TOKEN})
    accepted = pipeline.post_json(
        client,
        "/api/v1/charging-requests",
        {"station_id": STATION, "driver_token": TOKEN, "callback_url": pipeline.receiver.url()},
    )
    pipeline.receiver.wait_for(accepted.json()["request_id"])
    scraped: dict[str, Any] = {}

    def recorded() -> bool:
        scraped["bridge"] = _scrape(observed["bridge"])
        scraped["worker"] = _scrape(observed["worker"])
        decided = (
            "charge_decisions_total",
            frozenset({"status": "allowed", "reason": "granted", "source": "async"}.items()),
        )
        delivered = ("charge_callback_attempts_total", frozenset({"outcome": "delivered"}.items()))
        stored = ("charge_bridge_messages_total", frozenset({"outcome": "stored"}.items()))
        return (
            scraped["bridge"].get(decided, 0) >= 1
            and scraped["worker"].get(delivered, 0) >= 1
            and scraped["bridge"].get(stored, 0) >= 1
        )

    wait_until(recorded, timeout=20, what="the decision and the delivery in the metrics")

    bridge = scraped["bridge"]
    assert bridge[("charge_bridge_batch_size_count", frozenset())] >= 1
    lag = {
        dict(labels)["partition"]: value
        for (name, labels), value in bridge.items()
        if name == "charge_bridge_consumer_lag"
    }
    assert lag, "no partition lag reported"
    assert all(value == 0 for value in lag.values()), lag
    assert bridge[("charge_decision_latency_seconds_count", frozenset({("source", "async")}))] >= 1
    assert bridge[("charge_decision_batch_size_count", frozenset({("by", "bridge")}))] >= 1
