"""The start scripts refuse a bad environment with one clear line, and start nothing."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.processes import REPO


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_make_run_refuses_a_taken_port_before_starting_anything(taken_port: int, tmp_path: Path) -> None:
    env = dict(os.environ, API_PORT=str(taken_port), CHARGE_LOCAL_DIR=str(tmp_path))

    result = _run(["bash", "compose/local/run.sh"], env)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"make run: port {taken_port} is already in use (is a stack already running?); "
        "set API_PORT to a free port."
    ]
    assert not (tmp_path / "dev.env").exists()


@pytest.mark.parametrize(
    ("script", "extra"),
    [
        ("redis.sh", []),
        ("postgres.sh", []),
        ("kafka.sh", ["--controller-port", "1"]),
        ("nginx.sh", ["--upstream-port", "1"]),
    ],
)
def test_each_service_script_refuses_a_taken_port(
    taken_port: int, tmp_path: Path, script: str, extra: list[str]
) -> None:
    argv = [
        "bash",
        f"compose/local/{script}",
        "run",
        "--port",
        str(taken_port),
        *extra,
        "--data",
        str(tmp_path),
    ]

    result = _run(argv, dict(os.environ))

    assert result.returncode == 2
    assert f"port {taken_port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
