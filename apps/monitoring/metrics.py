"""Every Prometheus metric the service records, defined once (prometheus-client).

Each process records into its own registry; under the api's server and Celery prefork, where one
scrape must see several processes, PROMETHEUS_MULTIPROC_DIR (set by the start script, before this module
is imported) makes the values land in per-process files that one collector merges on scrape.

Labels are bounded sets only: a route pattern, never a path; a status or reason, never an id.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# `_created` series double every counter and histogram for a value no dashboard reads.
disable_created_metrics()

# Seconds. The accept path waits for Kafka's ack (target p99 25 ms); callbacks time out at 5 s.
_FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_DECISION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_CALLBACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)

# --- api --------------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "charge_http_requests",
    "HTTP requests answered, by method, URL pattern and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "charge_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and URL pattern.",
    ["method", "route"],
    buckets=_FAST_BUCKETS,
)
KAFKA_PRODUCE_SECONDS = Histogram(
    "charge_kafka_produce_seconds",
    "Time from send to the broker's acknowledgement (acks=all) of one accepted request.",
    buckets=_FAST_BUCKETS,
)
KAFKA_PRODUCE_FAILURES = Counter(
    "charge_kafka_produce_failures",
    "Requests the broker did not acknowledge in time (answered failed/503), by error type.",
    ["error"],
)

# --- bridge -----------------------------------------------------------------------------------------
BRIDGE_CONSUMER_LAG = Gauge(
    "charge_bridge_consumer_lag",
    "Messages in a partition not yet read by this bridge (high watermark minus position).",
    ["partition"],
    multiprocess_mode="max",
)
BRIDGE_BATCH_SIZE = Histogram(
    "charge_bridge_batch_size",
    "Messages per batch the bridge stored and published.",
    buckets=_BATCH_BUCKETS,
)
BRIDGE_MESSAGES = Counter(
    "charge_bridge_messages",
    "Messages the bridge handled, by outcome: stored (task published), dead_lettered, invalid (logged).",
    ["outcome"],
)
BRIDGE_BATCH_FAILURES = Counter(
    "charge_bridge_batch_failures",
    "Batches that failed and were rewound to be read again.",
)

# --- tasks -----------------------------------------------------------------------------------------
DECISION_BATCH_SIZE = Histogram(
    "charge_decision_batch_size",
    "Requests one set-wise decision carried, by who decided it (the bridge inline or an authorize task).",
    ["by"],
    buckets=_BATCH_BUCKETS,
)
CALLBACK_BATCH_SIZE = Histogram(
    "charge_callback_batch_size",
    "Deliveries one batch of attempts carried, by who made it (a callbacks.deliver task or the bridge).",
    ["by"],
    buckets=_BATCH_BUCKETS,
)
TASK_BATCH_SIZE = Histogram(
    "charge_task_batch_size",
    "Requests (charging.authorize) or deliveries (callbacks.deliver) one task carried, by task.",
    ["task"],
    buckets=_BATCH_BUCKETS,
)

# --- decisions (workers, beat sweeps, synchronous routes) -------------------------------------------
DECISIONS = Counter(
    "charge_decisions",
    "Decisions recorded in the decision log, by status, reason and source.",
    ["status", "reason", "source"],
)
DECISION_LATENCY_SECONDS = Histogram(
    "charge_decision_latency_seconds",
    "decided_at minus requested_at of each decision, by source.",
    ["source"],
    buckets=_DECISION_BUCKETS,
)

# --- callbacks --------------------------------------------------------------------------------------
CALLBACK_ATTEMPTS = Counter(
    "charge_callback_attempts",
    "Callback POST attempts, by outcome: delivered, stopped (410), retrying, failed (schedule exhausted).",
    ["outcome"],
)
CALLBACK_ATTEMPT_SECONDS = Histogram(
    "charge_callback_attempt_duration_seconds",
    "Duration of one callback attempt, by outcome.",
    ["outcome"],
    buckets=_CALLBACK_BUCKETS,
)

CALLBACK_ENQUEUE_FAILURES = Counter(
    "charge_callback_enqueue_failures",
    "Deliveries whose deliver task could not be queued (broker away); the dispatch sweep sends them.",
)

# --- OCPP gateway ----------------------------------------------------------------------------------
OCPP_STATIONS_CONNECTED = Gauge(
    "charge_ocpp_stations_connected",
    "Stations with an open OCPP WebSocket to this gateway, by subprotocol.",
    ["protocol"],
    multiprocess_mode="livesum",
)
OCPP_CALLS = Counter(
    "charge_ocpp_calls",
    "OCPP calls from stations, by action and outcome (answered, call_error, rate_limited, malformed).",
    ["action", "outcome"],
)
OCPP_CALL_SECONDS = Histogram(
    "charge_ocpp_call_duration_seconds",
    "Time from a station's call to our answer, by action.",
    ["action"],
    buckets=_FAST_BUCKETS,
)
OCPP_UPGRADES_REFUSED = Counter(
    "charge_ocpp_upgrades_refused",
    "WebSocket upgrades the gateway refused, by HTTP status (400 path/subprotocol, 401, 403, 503).",
    ["status"],
)

# --- readiness --------------------------------------------------------------------------------------
READINESS_FAILURES = Counter(
    "charge_readiness_failures",
    "Failed /api/readyz checks, by dependency (database, redis, kafka).",
    ["check"],
)

# --- computed on scrape by the api (apps.monitoring.exposition.PipelineStateCollector) -------------
SCRAPE_GAUGES = {
    "charge_requests_pending": "Decision-log rows still pending.",
    "charge_requests_overdue": "Pending rows past their deadline: the overdue sweep has not decided them.",
    "charge_celery_queue_length": "Tasks waiting in a Celery queue on the Redis broker, by queue.",
    "charge_scrape_errors": "State queries that failed during this scrape, by source (database, redis).",
}


def decision_observe(
    *, status: str, reason: str, source: str, requested_at: datetime, decided_at: datetime
) -> None:
    """Count one recorded decision and how long after the request it came."""
    DECISIONS.labels(status=status, reason=reason, source=source).inc()
    DECISION_LATENCY_SECONDS.labels(source=source).observe(
        max((decided_at - requested_at).total_seconds(), 0)
    )


def decisions_observe(decisions: Sequence[tuple[str, str]], *, source: str, latency_s: float) -> None:
    """Count recorded (status, reason) decisions of one source that all took `latency_s` (a
    synchronous batch's): one labels() lookup per kind, not two per decision."""
    for (status, reason), count in collections.Counter(decisions).items():
        DECISIONS.labels(status=status, reason=reason, source=source).inc(count)
    latency = DECISION_LATENCY_SECONDS.labels(source=source)
    for _ in decisions:
        latency.observe(latency_s)


def callback_attempt_observe(*, outcome: str, duration_ms: int) -> None:
    """Count one callback attempt and its duration."""
    CALLBACK_ATTEMPTS.labels(outcome=outcome).inc()
    CALLBACK_ATTEMPT_SECONDS.labels(outcome=outcome).observe(duration_ms / 1000)


def exported_metric_names() -> set[str]:
    """Every sample name a scrape can show, for dashboards and their tests."""
    names: set[str] = set(SCRAPE_GAUGES)
    for metric in (
        HTTP_REQUESTS,
        HTTP_REQUEST_SECONDS,
        KAFKA_PRODUCE_SECONDS,
        KAFKA_PRODUCE_FAILURES,
        BRIDGE_CONSUMER_LAG,
        BRIDGE_BATCH_SIZE,
        BRIDGE_MESSAGES,
        BRIDGE_BATCH_FAILURES,
        TASK_BATCH_SIZE,
        CALLBACK_BATCH_SIZE,
        DECISION_BATCH_SIZE,
        DECISIONS,
        DECISION_LATENCY_SECONDS,
        CALLBACK_ATTEMPTS,
        CALLBACK_ATTEMPT_SECONDS,
        CALLBACK_ENQUEUE_FAILURES,
        READINESS_FAILURES,
    ):
        for family in metric.describe():
            if family.type == "counter":
                names.add(f"{family.name}_total")
            elif family.type == "histogram":
                names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
            else:
                names.add(family.name)
    return names
