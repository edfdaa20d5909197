"""The one process harness of the tests and the benchmarks: start a real process, wait for it, stop it.

Each process is started in its own session, so it leads its own process group: stopping it is one
signal to that group (never a kill by name), and nothing it forked outlives the run. tests/stack.py
(the services and the api server for the tests) and benchmarks/processes.py (CPU and memory of each
group) build on it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "compose" / "local"


def free_port() -> int:
    """A loopback port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ProcessExited(RuntimeError):
    """A process we wait for has died: waiting longer cannot help."""


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll `check` until it returns True; TimeoutError naming `what` after `timeout` seconds.

    An exception from `check` means "not yet", except ProcessExited, which ends the wait at once."""
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
class Process:
    """A child in its own session, its output in `log_path`; stop() signals the whole group and waits.

    env None: the child inherits this process's environment."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = 20.0
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=REPO,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure_running(self) -> None:
        if not self.alive():
            raise ProcessExited(f"{self.name} exited early; log tail:\n{self.log_tail()}")

    def signal(self, sig: signal.Signals) -> None:
        """`sig` to the whole group, if it still runs."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    def terminate(self) -> None:
        """The stop signal to the group, without waiting (stop() waits): to stop several at once."""
        self.signal(self.stop_signal)

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


def iter_log_lines(path: Path) -> Iterator[str]:
    if path.exists():
        yield from path.read_text(errors="replace").splitlines()
