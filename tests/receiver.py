"""A real HTTP callback receiver on loopback, recording what it gets; its behaviour is scriptable."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harness.processes import wait_until


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hang_s: float = 0.0


class CallbackReceiver:
    """Answers each POST with `reply(received)` (200 by default) and keeps every request."""

    def __init__(self, reply: Callable[[Received], Reply] | None = None) -> None:
        self.received: list[Received] = []
        self.reply = reply or (lambda _: Reply())
        self._lock = threading.Lock()
        self._stop = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                got = Received(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
                )
                with receiver._lock:
                    receiver.received.append(got)
                answer = receiver.reply(got)
                if answer.hang_s:
                    receiver._stop.wait(answer.hang_s)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/callback") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> CallbackReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    def for_request(self, request_id: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.headers.get("x-charge-request-id") == request_id]

    def wait_for(self, request_id: str, *, count: int = 1, timeout: float = 30) -> list[Received]:
        wait_until(
            lambda: len(self.for_request(request_id)) >= count, timeout=timeout, what=f"callback {request_id}"
        )
        return self.for_request(request_id)


def now_unix() -> int:
    return int(time.time())
