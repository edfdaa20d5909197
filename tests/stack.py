"""Real Kafka, Redis and PostgreSQL for the tests, started by the project's own scripts.

Each service runs in the foreground of its own process group (`<script> run ...`), so stopping it is
one signal to that group: never a kill by name, and nothing outlives the test session.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.processes import REPO, SCRIPTS, Process, ProcessExited, free_port, wait_until


def api_server_process(
    name: str, log_path: Path, *, env: dict[str, str], port: int, workers: int = 1, threads: int = 4
) -> Process:
    """The api's HTTP server as `make run` starts it (compose/local/serve.sh: granian serving
    project.wsgi), on 127.0.0.1:`port`; not started yet."""
    server_env = {**env, "API_UPSTREAM_PORT": str(port), "API_WORKERS": str(workers)}
    server_env["API_THREADS"] = str(threads)
    return Process(name, ["bash", str(SCRIPTS / "serve.sh")], log_path, env=server_env)


@dataclass
class Service:
    """A started service: its process, its URL, and how to restart it on the same data."""

    process: Process
    url: str
    port: int
    data_dir: Path
    ready: Callable[[], bool]
    ready_timeout: float

    def wait_ready(self) -> None:
        def check() -> bool:
            self.process.ensure_running()
            return self.ready()

        try:
            wait_until(check, timeout=self.ready_timeout, what=self.process.name)
        except TimeoutError:
            self.process.stop()
            raise TimeoutError(f"{self.process.name} did not start:\n{self.process.log_tail()}") from None
        except ProcessExited:
            self.process.stop()
            raise

    def restart(self) -> None:
        self.process.stop()
        self.process.start()
        self.wait_ready()


def _redis_ready(port: int) -> Callable[[], bool]:
    def check() -> bool:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).ping())

    return check


def _postgres_ready(port: int) -> Callable[[], bool]:
    def check() -> bool:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=1
        ):
            return True

    return check


def _kafka_ready(port: int) -> Callable[[], bool]:
    def check() -> bool:
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=3000)
        try:
            consumer.topics()
            return True
        finally:
            consumer.close()

    return check


def start_redis(root: Path) -> Service:
    port = free_port()
    data = root / "redis"
    proc = Process(
        "redis",
        ["bash", str(SCRIPTS / "redis.sh"), "run", "--port", str(port), "--data", str(data)],
        root / "logs" / "redis.log",
    )
    service = Service(proc.start(), f"redis://127.0.0.1:{port}/0", port, data, _redis_ready(port), 20)
    service.wait_ready()
    return service


def start_postgres(root: Path) -> Service:
    port = free_port()
    data = root / "postgres"
    proc = Process(
        "postgres",
        ["bash", str(SCRIPTS / "postgres.sh"), "run", "--port", str(port), "--data", str(data)],
        root / "logs" / "postgres.log",
        # SIGINT is PostgreSQL's fast shutdown: it does not wait for open client sessions.
        stop_signal=signal.SIGINT,
    )
    url = f"postgres://postgres@127.0.0.1:{port}/charge"
    service = Service(proc.start(), url, port, data, _postgres_ready(port), 60)
    service.wait_ready()
    return service


def start_kafka(root: Path) -> Service:
    port, controller_port = free_port(), free_port()
    data = root / "kafka"
    argv = ["bash", str(SCRIPTS / "kafka.sh"), "run", "--port", str(port), "--controller-port"]
    argv += [str(controller_port), "--data", str(data)]
    proc = Process("kafka", argv, root / "logs" / "kafka.log", stop_timeout=30)
    service = Service(proc.start(), f"127.0.0.1:{port}", port, data, _kafka_ready(port), 120)
    service.wait_ready()
    return service


def manage_py(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a management command in a child process, as an operator would."""
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
