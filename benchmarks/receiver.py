"""A fast callback receiver on loopback: records request_id → first arrival, counts duplicates.

Runs as its own process (so it has its own core share and GIL), answers every POST with 200 at once,
and checks each X-Charge-Signature against the client's secret. Arrival times are time.monotonic()
(CLOCK_MONOTONIC, one clock for every process on the machine), so the load generator can subtract
its own 202 times from them.

    BENCH_RECEIVER_SECRET=S python -m benchmarks.receiver --port 0 --ready-file /tmp/r.port

Control (GET, same port): /_stats → counters; /_arrivals?from=N → the arrivals from the Nth on, as
[[request_id, t], ...] in arrival order, plus the counters; /_duplicates → the request_ids that
arrived more than once.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import time
from pathlib import Path

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
MAX_HEAD = 16 * 1024


class Record:
    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.arrivals: list[tuple[str, float]] = []
        self.first: dict[str, float] = {}
        self.duplicates = 0
        self.duplicated: set[str] = set()
        self.posts = 0
        self.bad_signature = 0
        self.missing_id = 0

    def callback(self, request_id: str | None, signature: str | None, body: bytes, at: float) -> None:
        self.posts += 1
        if not request_id:
            self.missing_id += 1
            return
        if self.secret and not self._signature_ok(signature, body):
            self.bad_signature += 1
        if request_id in self.first:
            self.duplicates += 1
            self.duplicated.add(request_id)
            return
        self.first[request_id] = at
        self.arrivals.append((request_id, at))

    def _signature_ok(self, header: str | None, body: bytes) -> bool:
        # X-Charge-Signature: t=<unix>,v1=<hex>[,v1=<hex> during a secret rotation]
        if not header:
            return False
        parts = [item.split("=", 1) for item in header.split(",") if "=" in item]
        stamp = next((value for name, value in parts if name == "t"), None)
        if stamp is None:
            return False
        expected = hmac.new(self.secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return any(name == "v1" and hmac.compare_digest(value, expected) for name, value in parts)

    def stats(self) -> dict[str, float | int]:
        return {
            "now": time.monotonic(),
            "posts": self.posts,
            "unique": len(self.first),
            "duplicates": self.duplicates,
            "bad_signature": self.bad_signature,
            "missing_request_id": self.missing_id,
        }


class CallbackProtocol(asyncio.Protocol):
    def __init__(self, record: Record) -> None:
        self.record = record
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if isinstance(transport, asyncio.Transport):
            self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self.transport.close()
                return
            head = self.buffer[:end].decode("latin-1")
            lines = head.split("\r\n")
            method, _, rest = lines[0].partition(" ")
            target = rest.rpartition(" ")[0]
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if len(self.buffer) < end + 4 + length:
                return  # the body is still on its way
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            if method == "GET":
                self._control(target)
            else:
                self.record.callback(
                    headers.get("x-charge-request-id"),
                    headers.get("x-charge-signature"),
                    body,
                    time.monotonic(),
                )
                self.transport.write(OK)

    def _control(self, target: str) -> None:
        if self.transport is None:
            return
        path, _, query = target.partition("?")
        payload: dict[str, object]
        if path == "/_arrivals":
            start = int(query.partition("from=")[2] or 0) if "from=" in query else 0
            payload = {**self.record.stats(), "arrivals": self.record.arrivals[start:]}
            status = "200 OK"
        elif path == "/_duplicates":
            payload = {**self.record.stats(), "request_ids": sorted(self.record.duplicated)}
            status = "200 OK"
        elif path == "/_stats":
            payload = {**self.record.stats()}
            status = "200 OK"
        else:
            payload = {"error": "not found"}
            status = "404 Not Found"
        data = json.dumps(payload, separators=(",", ":")).encode()
        head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        self.transport.write(head.encode() + data)


async def serve(*, host: str, port: int, secret: str, ready_file: Path | None) -> None:
    loop = asyncio.get_running_loop()
    record = Record(secret)
    server = await loop.create_server(lambda: CallbackProtocol(record), host, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    if ready_file is not None:
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(str(bound))
        tmp.replace(ready_file)
    print(f"receiver: listening on {host}:{bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    print(f"receiver: stopped {json.dumps(record.stats())}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--secret",
        default=os.environ.get("BENCH_RECEIVER_SECRET", ""),
        help="the client's callback secret (default $BENCH_RECEIVER_SECRET; empty: do not check)",
    )
    parser.add_argument("--ready-file", type=Path, help="write the bound port here once listening")
    args = parser.parse_args()
    if args.host not in {"127.0.0.1", "::1", "localhost"}:
        parser.error("the receiver listens on loopback only")
    asyncio.run(serve(host=args.host, port=args.port, secret=args.secret, ready_file=args.ready_file))


if __name__ == "__main__":
    main()
