"""The floors: what each figure of `make bench` is bounded by on this machine, measured in the same
run, on the same broker, with the same load generator, so the report can give each figure as a
fraction of its floor.

  celery  a no-op Celery task (benchmarks/celery_floor.py) on the stack's Redis, in each of the
          stack's two worker pools: tasks/s and CPU per task, beside CPU per authorize/deliver task
  kafka   a bare produce → consume round trip with the api's producer (benchmarks/kafka_floor.py)
          at fixed rates, and its max rate, beside end-to-end latency and accept latency
  http    the api's server (compose/local/serve.sh) serving benchmarks/floor_app.py: a no-op
          django-ninja route and a route that only produces to Kafka, each as a burst on 64 and on
          8 connections, beside the accept burst and the synchronous decisions

Run with the stack stopped (after its phases), except at the tiny scale, where they overlap its
start-up to keep `make test` quick (`Scale.floors_during_startup`).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import celery_floor, kafka_floor, loadgen
from benchmarks.config import FLOORS, Scale
from benchmarks.processes import GroupSampler, group_of, listener_pid
from harness.processes import REPO, Process, free_port, wait_until

HTTP_CONNECTIONS = (64, 8)
FLOOR_STATIONS = 200
FLOOR_ROUTES = {"noop": ("/api/floor/noop", 200), "produce": ("/api/floor/produce", 202)}


FLOOR_APP = "benchmarks.floor_app:application"


def floor_server(env: dict[str, str], port: int) -> tuple[list[str], dict[str, str]]:
    """The api's own server script (compose/local/serve.sh: the same server, workers, threads and
    knobs as `make run`) serving the floor app instead of project.wsgi: its argv and environment."""
    argv = ["bash", str(REPO / "compose" / "local" / "serve.sh")]
    return argv, {**env, "API_APP": FLOOR_APP, "API_UPSTREAM_PORT": str(port)}


def floors_measure(
    *,
    env: dict[str, str],
    scale: Scale,
    work: Path,
    which: Sequence[str],
    command: str,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Every floor in `which` (celery, kafka, http), one after another; each also says its progress."""
    out: dict[str, Any] = {"command": command, "what": (__doc__ or "").split("\n\n")[1].strip()}
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "celery": lambda: _celery(env=env, scale=scale, work=work, say=say),
        "kafka": lambda: kafka_floor.round_trip(
            rates=scale.floor_kafka_rates,
            duration_s=scale.floor_kafka_s,
            max_messages=scale.floor_kafka_max,
            topic=f"bench-floor-{uuid.uuid4().hex[:8]}",
            say=say,
        ),
        "http": lambda: _http(env=env, scale=scale, work=work, say=say),
    }
    for name in FLOORS:
        if name in which:
            say(f"floor {name}: measuring")
            out[name] = runners[name]()
    return out


def _celery(*, env: dict[str, str], scale: Scale, work: Path, say: Callable[[str], None]) -> dict[str, Any]:
    # The stack's own pools: authorize (AUTHORIZE_POOL, threads by default) and callbacks (threads).
    pools = [(env.get("AUTHORIZE_POOL") or "threads", int(env.get("AUTHORIZE_CONCURRENCY") or 4))]
    if scale.floor_celery_both_pools:
        pools.append(("threads", int(env.get("CALLBACK_CONCURRENCY") or 16)))
    results = []
    for pool, concurrency in pools:
        say(f"floor celery: {pool} x{concurrency}: a worker, then {scale.floor_celery_tasks} no-op tasks")
        results.append(
            celery_floor.measure(
                pool=pool,
                concurrency=concurrency,
                tasks=scale.floor_celery_tasks,
                broker_url=env["CELERY_BROKER_URL"],
                pings_url=env["REDIS_URL"],
                work=work,
                base_env=env,
            )
        )
    return {
        "what": "a no-op Celery task (ops.ping: one Redis SET) queued N at once on the stack's Redis, "
        "task events on; tasks/s and the worker's CPU (main process + pool) per task",
        "pools": results,
        "authorize_pool": results[0],
        "callbacks_pool": results[1] if len(results) > 1 else None,
    }


def _http(*, env: dict[str, str], scale: Scale, work: Path, say: Callable[[str], None]) -> dict[str, Any]:
    topic = f"bench-floor-{uuid.uuid4().hex[:8]}"
    from django.conf import settings  # noqa: PLC0415 - the harness has set Django up by now

    kafka_floor.topic_create(
        bootstrap=settings.KAFKA_BOOTSTRAP_SERVERS, name=topic, partitions=settings.CHARGE_TOPIC_PARTITIONS
    )
    metrics_dir = work / "floor-metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    upstream, port = free_port(), free_port()
    argv, server_env = floor_server(env, upstream)
    server_env.update(
        DJANGO_SETTINGS_MODULE="benchmarks.floor_settings",
        CHARGE_TOPIC=topic,
        # As api.sh: every worker process writes its metrics to files here.
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    server = Process("floor-api", argv, work / "logs" / "floor-api.log", env=server_env).start()
    # As the stack (and `make run`): nginx in front of the api's server.
    front = Process(
        "floor-nginx",
        ["bash", str(REPO / "compose" / "local" / "nginx.sh"), "run", "--data", str(work / "floor-nginx")],
        work / "logs" / "floor-nginx.log",
        env={**env, "API_PORT": str(port), "API_UPSTREAM_PORT": str(upstream)},
    ).start()
    sampler: GroupSampler | None = None
    try:

        def answers() -> bool:
            server.ensure_running()
            front.ensure_running()
            return _burst(port, "noop", requests=1, connections=1)["ok"] == 1

        wait_until(answers, timeout=180, what="floor server", interval=0.5)
        groups = {"floor_api": server.pid, "floor_nginx": front.pid}
        kafka_pid = listener_pid(int(settings.KAFKA_BOOTSTRAP_SERVERS[0].rsplit(":", 1)[1]))
        kafka_group = group_of(kafka_pid) if kafka_pid else None
        if kafka_group:
            groups["kafka"] = kafka_group
        sampler = GroupSampler(groups).start()
        results: dict[str, dict[str, Any]] = {}
        for route in FLOOR_ROUTES:
            # Warm-up: the first produce of each worker process creates its producer.
            _burst(port, route, requests=min(50, scale.floor_requests // 4), connections=8)
            results[route] = {}
            for connections in HTTP_CONNECTIONS:
                cpu0 = sampler.cpu_seconds()
                figures = _burst(port, route, requests=scale.floor_requests, connections=connections)
                cpu1 = sampler.cpu_seconds()
                done = figures["ok"] or 1
                figures["cpu_ms_per_request"] = {
                    name: round((cpu1[name] - cpu0.get(name, 0.0)) * 1000 / done, 3) for name in cpu1
                }
                results[route][str(connections)] = figures
                say(
                    f"floor http {route} on {connections} connections: {figures['per_s']}/s, "
                    f"p50 {figures['latency']['p50_ms']} ms p99 {figures['latency']['p99_ms']} ms, "
                    f"{figures['errors']} errors"
                )
    finally:
        if sampler is not None:
            sampler.stop()
        front.stop()
        server.stop()
    return {
        "what": "benchmarks/floor_app.py under the api's server (compose/local/serve.sh), behind nginx as "
        "the api is, "
        "and the project's middleware: "
        "noop = a django-ninja route that does nothing; produce = the api's producer only (acks=all), "
        f"202 once acknowledged; closed-loop bursts of {scale.floor_requests} requests on each of "
        f"{', '.join(map(str, HTTP_CONNECTIONS))} connections",
        "server": f"compose/local/serve.sh, API_WORKERS={env.get('API_WORKERS') or 1} "
        f"API_THREADS={env.get('API_THREADS') or 8}",
        **results,
    }


def _burst(port: int, route: str, *, requests: int, connections: int) -> dict[str, Any]:
    path, ok_status = FLOOR_ROUTES[route]
    # As many stations as the stack's seed: the messages spread over the topic's partitions alike.
    bodies = [
        json.dumps(
            {
                "station_id": str(uuid.UUID(int=(0xF100 << 112) | n)),
                "driver_token": f"FLOOR-TOKEN-{n:010d}",
                "callback_url": "http://127.0.0.1:9/callback",
            },
            separators=(",", ":"),
        ).encode()
        for n in range(FLOOR_STATIONS)
    ]

    async def go() -> loadgen.LoadState:
        client = loadgen.HttpClient("127.0.0.1", port, max_connections=connections)
        try:
            payloads = [client.prepare(loadgen.Request("POST", path, body)) for body in bodies]
            return await loadgen.closed_loop(
                client, total=requests, concurrency=connections, payloads=payloads, ok_status=(ok_status,)
            )
        finally:
            await client.close()

    state = asyncio.run(go())
    duration = max(s.done for s in state.samples) - state.started if state.samples else 0.0
    return {
        "requests": len(state.samples),
        "connections": connections,
        "ok": state.ok,
        "errors": state.errors,
        "duration_s": round(duration, 3),
        "per_s": round(state.ok / duration, 1) if duration else None,
        "latency": loadgen.latency_summary_ms([s.service_s for s in state.samples if s.status == ok_status]),
    }
