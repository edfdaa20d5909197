"""The stack under test: its environment, seed data, processes, and readiness."""

# Django and the apps are imported inside functions: only after the environment is prepared.
# ruff: noqa: PLC0415

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from benchmarks.config import PYTHON, VENV_BIN, Scale, say
from benchmarks.processes import group_of, listener_pid
from harness.processes import REPO, Process, free_port, wait_until

# --- the stack ----------------------------------------------------------------------------------------


@dataclass
class Stack:
    work: Path
    env: dict[str, str]
    api_port: int
    receiver_port: int = 0
    processes: dict[str, Process] = field(default_factory=dict)
    api_key: str = ""
    callback_secret: str = ""
    client_id: int = 0
    # Where the bridge and each worker serve their metrics (the batch-size histograms).
    metrics_ports: dict[str, int] = field(default_factory=dict)

    @property
    def database(self) -> str:
        """postgres (DATABASE_URL set) or sqlite (`make run`'s default file under CHARGE_LOCAL_DIR)."""
        return "postgres" if self.env.get("DATABASE_URL") else "sqlite"

    @property
    def ocpp_port(self) -> int:
        return int(self.env["OCPP_PORT"])

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    def start(self, name: str, argv: list[str], *, env: dict[str, str] | None = None) -> Process:
        process = Process(name, argv, self.logs / f"{name}.log", env=env or self.env).start()
        self.processes[name] = process
        return process

    def stop_all(self) -> None:
        """Producers of work first (api, bridge), then its consumers, then the receiver; each wave is
        signalled at once and then waited for, so the stop takes the longest of them, not the sum."""
        waves = [
            ["flower", "beat", "nginx", "api", "bridge", "ocpp"],
            ["authorize", "callbacks"],
            ["receiver"],
        ]
        named = {name for wave in waves for name in wave}
        waves[-1] += [name for name in self.processes if name not in named]
        for wave in waves:
            processes = [self.processes[name] for name in wave if name in self.processes]
            for process in processes:
                process.terminate()
            for process in processes:
                process.stop()


def _redis_url(url: str, db: int | None) -> str:
    if db is None:
        return url
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def stack_env(work: Path, *, redis_db: int | None, database: str) -> dict[str, str]:
    """The stack's environment. database: postgres (DATABASE_URL, as bench.sh sets it) or sqlite
    (DATABASE_URL removed: the settings' default, a file under CHARGE_LOCAL_DIR, as `make run`)."""
    from apps.clients.keys import key_generate

    env = dict(os.environ)
    needed = ["REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS"] + (["DATABASE_URL"] if database == "postgres" else [])
    for var in needed:
        if not env.get(var):
            raise SystemExit(f"bench: {var} is not set (compose/local/bench.sh sets it)")
    if database == "sqlite":
        env.pop("DATABASE_URL", None)
    suffix = uuid.uuid4().hex[:8]
    redis_url = _redis_url(env["REDIS_URL"], redis_db)
    local = work / "local"
    # `make run` creates it before anything opens the database; SQLite will not create the folder.
    local.mkdir(parents=True, exist_ok=True)
    env.update(
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        SECRET_KEY=env.get("SECRET_KEY") or secrets.token_urlsafe(40),
        DEBUG="0",
        # The receiver is on loopback.
        CHARGE_CALLBACK_ALLOW_PRIVATE="1",
        CHARGE_LOCAL_DIR=str(local),
        CHARGE_TOPIC=f"bench-{suffix}",
        CHARGE_DLQ_TOPIC=f"bench-{suffix}.dlq",
        CHARGE_BRIDGE_GROUP=f"bench-bridge-{suffix}",
        CHARGE_BRIDGE_METRICS_PORT=str(free_port()),
        # As `make run`: nginx on API_PORT in front of the api server on API_UPSTREAM_PORT.
        API_PORT=env.get("BENCH_API_PORT") or str(free_port()),
        API_UPSTREAM_PORT=str(free_port()),
        OCPP_PORT=str(free_port()),
        CHARGE_OCPP_METRICS_PORT=str(free_port()),
        # dev_seed (run by api.sh) wants these; the benchmark uses its own client and key.
        CHARGE_ADMIN_USER="bench-admin",
        CHARGE_ADMIN_PASSWORD=secrets.token_urlsafe(16),
        CHARGE_API_KEY=key_generate(),
        CHARGE_CALLBACK_SECRET=secrets.token_urlsafe(32),
        FLOWER_USER="bench",
        FLOWER_PASSWORD=secrets.token_urlsafe(12),
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    return env


def django_setup(env: dict[str, str]) -> None:
    for var in ("REDIS_URL", "CELERY_BROKER_URL", "KAFKA_BOOTSTRAP_SERVERS", "SECRET_KEY"):
        os.environ[var] = env[var]
    if env.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = env["DATABASE_URL"]
    else:
        os.environ.pop("DATABASE_URL", None)
    for var in ("DEBUG", "CHARGE_TOPIC", "CHARGE_DLQ_TOPIC", "CHARGE_LOCAL_DIR"):
        os.environ[var] = env[var]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()


def seed(stack: Stack, scale: Scale) -> list[tuple[str, str]]:
    """The benchmark's API client (rate limit far above any offered rate), its key, and an ACL.

    Returns the (station_id, driver_token) pairs the requests cycle through: 90 % granted, 5 % an
    unknown token, 5 % a known token at a station it has no grant for.
    """
    from django.core.management import call_command
    from django.db import connections

    from apps.access.models import DriverToken, Grant, Station
    from apps.clients.models import Scope
    from apps.clients.services import api_client_get_or_create, api_key_create

    call_command("migrate", verbosity=0, interactive=False)
    stack.callback_secret = secrets.token_urlsafe(32)
    client = api_client_get_or_create(
        name=f"bench-{uuid.uuid4().hex[:8]}", callback_secret=stack.callback_secret
    )
    client.rate_limit_per_s = 1_000_000
    client.save(update_fields=["rate_limit_per_s"])
    stack.client_id = client.pk
    _, stack.api_key = api_key_create(
        client=client, scopes=[Scope.CHARGING_WRITE, Scope.CHARGING_READ, Scope.AUTHORIZE], name="bench"
    )

    run = uuid.uuid4().int & 0xFFFF_FFFF
    stations = [str(uuid.UUID(int=(0xBE4C << 112) | (run << 32) | n)) for n in range(scale.stations)]
    tokens = [f"BENCH-{run:08X}-{n:08d}" for n in range(scale.tokens)]
    Station.objects.bulk_create([Station(station_id=s, name="bench") for s in stations])
    token_rows = DriverToken.objects.bulk_create([DriverToken(value=t) for t in tokens])
    # Each token may charge at two stations.
    grants = []
    for n, token in enumerate(token_rows):
        for k in (0, 1):
            grants.append(Grant(token=token, station_id=stations[(n * 7 + k) % len(stations)], note="bench"))
    Grant.objects.bulk_create(grants)
    pairs: list[tuple[str, str]] = []
    for n in range(4000):
        t = n % len(tokens)
        if n % 20 == 18:
            pairs.append((stations[n % len(stations)], f"BENCH-UNKNOWN-{n:012d}"))
        elif n % 20 == 19:
            pairs.append((stations[(t * 7 + 5) % len(stations)], tokens[t]))
        else:
            pairs.append((stations[(t * 7 + n % 2) % len(stations)], tokens[t]))
    connections.close_all()
    return pairs


def start_stack(stack: Stack, *, flower: bool) -> None:
    env = stack.env
    scripts = REPO / "compose" / "local"
    celery = str(VENV_BIN / "celery")
    authorize_pool = env.get("AUTHORIZE_POOL", "threads")
    authorize_n = env.get("AUTHORIZE_CONCURRENCY", "4")
    callbacks_n = env.get("CALLBACK_CONCURRENCY", "16")
    # The same commands as compose/local/Procfile, metrics ports made free.
    stack.metrics_ports = {
        "bridge": int(env["CHARGE_BRIDGE_METRICS_PORT"]),
        "authorize": free_port(),
        "callbacks": free_port(),
    }
    stack.start("api", ["bash", str(scripts / "api.sh")])
    stack.start("nginx", ["bash", str(scripts / "nginx.sh"), "run", "--data", str(stack.work / "nginx")])
    stack.start("bridge", ["bash", str(scripts / "bridge.sh")])
    stack.start(
        "authorize",
        ["bash", str(scripts / "worker.sh"), "authorize", authorize_pool, authorize_n],
        env={**env, "CHARGE_WORKER_METRICS_PORT": str(stack.metrics_ports["authorize"])},
    )
    stack.start(
        "callbacks",
        ["bash", str(scripts / "worker.sh"), "callbacks", "threads", callbacks_n],
        env={**env, "CHARGE_WORKER_METRICS_PORT": str(stack.metrics_ports["callbacks"])},
    )
    start_ocpp(stack)
    beat_schedule = stack.work / "celerybeat-schedule"
    stack.start(
        "beat", [celery, "-A", "workers", "beat", "--schedule", str(beat_schedule), "--loglevel", "INFO"]
    )
    if flower:
        port = free_port()
        stack.env["BENCH_FLOWER_PORT"] = str(port)
        stack.start(
            "flower",
            [
                celery,
                "-A",
                "workers",
                "flower",
                "--address=127.0.0.1",
                f"--port={port}",
                f"--basic-auth={env['FLOWER_USER']}:{env['FLOWER_PASSWORD']}",
                f"--max_tasks={env.get('FLOWER_MAX_TASKS', '2000')}",
            ],
        )


def start_ocpp(stack: Stack) -> Process:
    """The OCPP gateway as compose/local/Procfile starts it (after the api's migrations)."""
    return stack.start("ocpp", ["bash", str(REPO / "compose" / "local" / "ocpp.sh")])


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(stack: Stack, *, timeout: float) -> None:
    import redis

    from workers import app

    procs = stack.processes

    def api_ready() -> bool:
        procs["api"].ensure_running()
        procs["nginx"].ensure_running()
        return http_get(stack.api_port, "/api/readyz")[0] == 200

    def bridge_ready() -> bool:
        procs["bridge"].ensure_running()
        return "partitions_assigned" in procs["bridge"].log_tail(400)

    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    nonces = {}
    for queue in ("authorize", "callbacks"):
        nonces[queue] = uuid.uuid4().hex
        app.send_task("ops.ping", kwargs={"nonce": nonces[queue]}, queue=queue)

    def worker_ready(queue: str) -> bool:
        procs[queue].ensure_running()
        return bool(client.exists(f"charge:ping:{nonces[queue]}"))

    started = time.monotonic()
    wait_until(api_ready, timeout=timeout, what="api")
    wait_until(bridge_ready, timeout=timeout, what="bridge")
    wait_until(lambda: worker_ready("authorize"), timeout=timeout, what="authorize worker")
    wait_until(lambda: worker_ready("callbacks"), timeout=timeout, what="callbacks worker")

    def ocpp_ready() -> bool:
        procs["ocpp"].ensure_running()
        return port_open(stack.ocpp_port)

    wait_until(ocpp_ready, timeout=timeout, what="OCPP gateway")
    procs["beat"].ensure_running()
    if "flower" in procs:
        port = int(stack.env["BENCH_FLOWER_PORT"])

        def flower_ready() -> bool:
            procs["flower"].ensure_running()
            return port_open(port)

        wait_until(flower_ready, timeout=timeout, what="flower")
    say(f"bench: stack ready in {time.monotonic() - started:.1f} s")


def port_open(port: int) -> bool:
    import socket

    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def start_receiver(stack: Stack) -> None:
    ready = stack.work / "receiver.port"
    env = {**stack.env, "BENCH_RECEIVER_SECRET": stack.callback_secret}
    process = stack.start(
        "receiver", [PYTHON, "-m", "benchmarks.receiver", "--port", "0", "--ready-file", str(ready)], env=env
    )

    def up() -> bool:
        process.ensure_running()
        return ready.exists()

    wait_until(up, timeout=30, what="callback receiver")
    stack.receiver_port = int(ready.read_text())


def service_groups(stack: Stack) -> dict[str, int]:
    """Process groups to watch: ours by leader pid; Kafka, Redis, PostgreSQL by their listening port."""
    groups = {name: p.pid for name, p in stack.processes.items() if name != "receiver"}
    for name, var in (
        ("kafka", "KAFKA_BOOTSTRAP_SERVERS"),
        ("redis", "REDIS_URL"),
        ("postgres", "DATABASE_URL"),
    ):
        if not stack.env.get(var):
            continue  # SQLite: the database is a file inside the api's, bridge's and workers' processes
        port = port_of(stack.env[var])
        pid = listener_pid(port) if port else None
        pgid = group_of(pid) if pid else None
        if pgid:
            groups[name] = pgid
        else:
            say(f"bench: cannot find the {name} process (port {port}); its memory and CPU are not counted")
    return groups


def port_of(url: str) -> int | None:
    netloc = url if "://" not in url else urlsplit(url).netloc
    host_port = netloc.rsplit("@", 1)[-1].split(",")[0]
    try:
        return int(host_port.rsplit(":", 1)[1].split("/")[0])
    except (IndexError, ValueError):
        return None
