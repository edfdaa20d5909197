"""Real Kafka, Redis and PostgreSQL for the tests, started by the project's own scripts.

Each service runs in the foreground of its own process group (`<script> run ...`), so stopping it is
one signal to that group: never a kill by name, and nothing outlives the test session.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "compose" / "local"


def free_port() -> int:
    """A port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ProcessExited(RuntimeError):
    """A process we wait for has died: waiting longer cannot help."""


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll `check` until it returns True; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except ProcessExited:
            raise
        except Exception as exc:  # noqa: BLE001 - any other failure just means "not yet"
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s (last error: {last_error!r})")


@dataclass
class ManagedProcess:
    """A child process in its own session; stop() signals the whole group and waits."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = 20.0
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=REPO,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    def kill(self) -> None:
        """kill -9 the whole group, as a crash would."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.signal(self.stop_signal)
        try:
            self.proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        # Children that ignored the signal (a forked pool process, say) must not outlive the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def ensure_running(self) -> None:
        if not self.alive():
            raise ProcessExited(f"{self.name} exited early; log tail:\n{self.log_tail()}")


def api_server_process(
    name: str, log_path: Path, *, env: dict[str, str], port: int, workers: int = 1, threads: int = 4
) -> ManagedProcess:
    """The api's HTTP server as `make run` starts it (compose/local/serve.sh: granian serving
    project.wsgi), on 127.0.0.1:`port`; not started yet."""
    server_env = {**env, "API_UPSTREAM_PORT": str(port), "API_WORKERS": str(workers)}
    server_env["API_THREADS"] = str(threads)
    return ManagedProcess(name, ["bash", str(SCRIPTS / "serve.sh")], log_path, env=server_env)


@dataclass
class Service:
    """A started service: its process, its URL, and how to restart it on the same data."""

    process: ManagedProcess
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
    proc = ManagedProcess(
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
    proc = ManagedProcess(
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
    proc = ManagedProcess("kafka", argv, root / "logs" / "kafka.log", stop_timeout=30)
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


def iter_log_lines(path: Path) -> Iterator[str]:
    if path.exists():
        yield from path.read_text(errors="replace").splitlines()
