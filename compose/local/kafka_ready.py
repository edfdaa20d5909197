"""Wait until a local Kafka broker answers a metadata request.

Used by `compose/local/kafka.sh start|wait` (and usable from test fixtures):

    python compose/local/kafka_ready.py --port 19092 [--timeout 60] [--pid 1234]

Exit codes: 0 ready; 1 not ready in time, or the broker process (--pid) exited; 2 kafka-python missing.
Messages go to stderr through sys.stderr.write (the project's ruff config removes print calls).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from pathlib import Path

try:
    from kafka import KafkaAdminClient
except ImportError:  # reported by main(): this must run with the project's venv
    KafkaAdminClient = None  # type: ignore[assignment,misc]


def _say(message: str) -> None:
    sys.stderr.write(f"kafka_ready: {message}\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    # A zombie (exited, not yet reaped by its parent) still answers kill(0).
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _probe(bootstrap: str, timeout_s: float) -> str | None:
    """One metadata round trip. Returns None when ready, else why not."""
    client = None
    try:
        # The constructor already bootstraps (ApiVersions + Metadata) and raises when it cannot.
        client = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="charge-kafka-ready",
            bootstrap_timeout_ms=int(timeout_s * 1000),
            request_timeout_ms=int(timeout_s * 1000),
            reconnect_backoff_max_ms=500,
        )
        cluster = client.describe_cluster()
    except Exception as exc:  # noqa: BLE001 - any failure just means "not yet"
        return str(exc) or type(exc).__name__
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
    # A KRaft broker can accept connections before it has registered with the controller;
    # it is usable only once the metadata lists it.
    if not cluster.get("brokers"):
        return "metadata lists no broker yet"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--pid", type=int, help="give up early if this broker process exits")
    args = parser.parse_args(argv)

    if KafkaAdminClient is None:
        _say(
            f"kafka-python is not installed for {sys.executable}; "
            "run `make install-python` (or set PYTHON to a python that has kafka-python)"
        )
        return 2
    # kafka-python logs every refused connection at ERROR/WARNING while the broker is still booting.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)

    bootstrap = f"{args.host}:{args.port}"
    deadline = time.monotonic() + args.timeout
    last = "no attempt"
    while True:
        if args.pid is not None and not _alive(args.pid):
            _say(f"broker process {args.pid} exited before {bootstrap} was ready")
            return 1
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        started = time.monotonic()
        why_not = _probe(bootstrap, max(1.0, min(5.0, remaining)))
        if why_not is None:
            return 0
        last = why_not
        # Refused connections fail fast: don't spin.
        time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))
    _say(f"Kafka at {bootstrap} not ready after {args.timeout:g}s ({last})")
    return 1


if __name__ == "__main__":
    sys.exit(main())
