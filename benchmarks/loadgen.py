"""The load generator: a lean asyncio HTTP/1.1 keep-alive client and two schedulers.

- `open_loop`: a fixed offered rate (request i is due at t0 + i/rate whatever the answers do), for the
  ladder. Latency is measured from the moment a request was *due*, so waiting for a free connection
  counts (no coordinated omission); a request that could not even start within `max_lag_s` of its
  due time is counted as `dropped` instead of piling up without bound.
- `closed_loop`: N connections each sending its next request as soon as the last answer came, for the
  accept burst and the synchronous authorize phase.

Why not httpx or aiohttp: the generator shares the 2 cores with the stack it measures, so every
microsecond it spends is taken from the API. httpx's async client costs several times more CPU per
request than writing a prepared request and reading one Content-Length body from a stream, and
aiohttp is not among the project's locked packages. Only loopback HTTP without TLS is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

# Answers larger than this are a bug on one side or the other: stop reading rather than buffer them.
MAX_BODY = 1 << 20
REQUEST_TIMEOUT_S = 15.0


class HttpError(Exception):
    """The connection broke or the answer was not HTTP/1.1 we can read."""


@dataclass(slots=True)
class Sample:
    """One request: when it was due, sent and answered (time.monotonic), and what came back."""

    index: int
    due: float
    sent: float
    done: float
    status: int  # 0: no answer (transport error, timeout); -1: dropped, never sent
    body: bytes = b""

    @property
    def latency_s(self) -> float:
        """From when it was due to the full answer: what a caller on that schedule waits."""
        return self.done - self.due

    @property
    def service_s(self) -> float:
        """From when it went on the wire to the full answer."""
        return self.done - self.sent


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    body: bytes = b""


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = 0

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.used = 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, payload: bytes) -> tuple[int, bytes, bool]:
        """Write one prepared request, read its answer: (status, body, keep_alive)."""
        if self.reader is None or self.writer is None:
            await self.open()
        reader, writer = self.reader, self.writer
        if reader is None or writer is None:
            raise HttpError("not connected")
        self.used += 1
        writer.write(payload)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1."):
            raise HttpError(f"not an HTTP answer: {head[:40]!r}")
        status = int(head[9:12])
        length = 0
        chunked = False
        keep_alive = head.startswith(b"HTTP/1.1")
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lowered == b"connection":
                keep_alive = b"close" not in value.lower()
        if chunked:
            body = await self._read_chunked(reader)
        else:
            if length > MAX_BODY:
                raise HttpError(f"answer of {length} bytes")
            body = await reader.readexactly(length) if length else b""
        return status, body, keep_alive

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)


class HttpClient:
    """A keep-alive pool of at most `max_connections` connections to one host:port."""

    def __init__(
        self, host: str, port: int, *, max_connections: int, headers: dict[str, str] | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self._idle: list[Connection] = []
        self._open = 0
        self._waiters: asyncio.Queue[Connection] = asyncio.Queue()
        self._waiting = 0
        base = {"Host": f"{host}:{port}", **(headers or {})}
        self._head_tail = "".join(f"{name}: {value}\r\n" for name, value in base.items()).encode()
        self.retries = 0

    def prepare(self, request: Request) -> bytes:
        head = f"{request.method} {request.path} HTTP/1.1\r\n".encode() + self._head_tail
        if request.body or request.method in {"POST", "PUT", "PATCH"}:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(request.body)
        return head + b"\r\n" + request.body

    async def _acquire(self) -> Connection:
        if self._idle:
            return self._idle.pop()
        if self._open < self.max_connections:
            self._open += 1
            return Connection(self.host, self.port)
        self._waiting += 1
        try:
            return await self._waiters.get()
        finally:
            self._waiting -= 1

    def _release(self, conn: Connection, *, reusable: bool) -> None:
        if not reusable:
            conn.close()
            conn = Connection(self.host, self.port)  # a fresh slot; it connects when used
        if self._waiting:
            self._waiters.put_nowait(conn)
        else:
            self._idle.append(conn)

    async def send(self, payload: bytes) -> tuple[int, bytes, float]:
        """(status, body, sent_at). Raises HttpError/OSError/TimeoutError when there was no answer."""
        conn = await self._acquire()
        sent = time.monotonic()
        released = False
        try:
            for attempt in (1, 2):
                reused = conn.used > 0
                try:
                    status, body, keep_alive = await asyncio.wait_for(
                        conn.exchange(payload), timeout=REQUEST_TIMEOUT_S
                    )
                except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as exc:
                    conn.close()
                    partial = getattr(exc, "partial", b"")
                    # The server closed an idle keep-alive connection before reading this request:
                    # it never ran, so sending it once more on a new connection is safe.
                    if attempt == 1 and reused and not partial:
                        self.retries += 1
                        continue
                    raise HttpError(repr(exc)) from exc
                self._release(conn, reusable=keep_alive)
                released = True
                return status, body, sent
            raise HttpError("no answer after a retry")
        finally:
            if not released:
                self._release(conn, reusable=False)

    async def request(self, request: Request) -> tuple[int, bytes]:
        status, body, _ = await self.send(self.prepare(request))
        return status, body

    async def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        await asyncio.sleep(0)


Progress = Callable[["LoadState"], Awaitable[None] | None]


@dataclass
class LoadState:
    """What a running phase has done so far; handed to the progress callback once a second."""

    started: float
    offered: int = 0  # due so far (open loop) or started so far (closed loop)
    done: int = 0
    ok: int = 0
    errors: int = 0
    dropped: int = 0
    samples: list[Sample] = field(default_factory=list)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started


async def _one(
    client: HttpClient, payload: bytes, *, index: int, due: float, state: LoadState, ok_status: Sequence[int]
) -> None:
    try:
        status, body, sent = await client.send(payload)
    except (HttpError, OSError, TimeoutError, ValueError):
        status, body, sent = 0, b"", due
    sample = Sample(index=index, due=due, sent=sent, done=time.monotonic(), status=status, body=body)
    state.samples.append(sample)
    state.done += 1
    if status in ok_status:
        state.ok += 1
    else:
        state.errors += 1


async def _progress_loop(state: LoadState, progress: Progress | None, every_s: float) -> None:
    if progress is None:
        return
    while True:
        await asyncio.sleep(every_s)
        result = progress(state)
        if asyncio.iscoroutine(result):
            await result


async def open_loop(
    client: HttpClient,
    *,
    rate: float,
    duration_s: float,
    payloads: Sequence[bytes],
    ok_status: Sequence[int] = (200, 202),
    max_lag_s: float = 5.0,
    progress: Progress | None = None,
    progress_every_s: float = 1.0,
) -> LoadState:
    """Offer `rate` requests/s for `duration_s`, cycling through `payloads`; wait for every answer."""
    total = int(rate * duration_s)
    state = LoadState(started=time.monotonic())
    t0 = state.started + 0.01
    tasks: set[asyncio.Task[None]] = set()
    reporter = asyncio.create_task(_progress_loop(state, progress, progress_every_s))
    cycle = itertools.cycle(payloads)
    index = 0
    try:
        while index < total:
            now = time.monotonic()
            due_now = min(total, int((now - t0) * rate) + 1)
            while index < due_now:
                due = t0 + index / rate
                payload = next(cycle)
                state.offered += 1
                # More waiting for a connection than max_lag_s: the system fell behind this rate.
                if now - due > max_lag_s:
                    state.samples.append(Sample(index, due, now, now, -1))
                    state.dropped += 1
                    state.done += 1
                else:
                    task = asyncio.create_task(
                        _one(client, payload, index=index, due=due, state=state, ok_status=ok_status)
                    )
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                index += 1
            if index < total:
                await asyncio.sleep(max(0.0, t0 + index / rate - time.monotonic()))
        if tasks:
            await asyncio.gather(*tasks)
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
    return state


async def closed_loop(
    client: HttpClient,
    *,
    total: int,
    concurrency: int,
    payloads: Sequence[bytes],
    ok_status: Sequence[int] = (200, 202),
    min_duration_s: float = 0.0,
    max_duration_s: float = 600.0,
    progress: Progress | None = None,
    progress_every_s: float = 1.0,
) -> LoadState:
    """`concurrency` callers, each sending its next request on the previous answer, until `total` were
    sent and `min_duration_s` has passed, or `max_duration_s` has passed."""
    state = LoadState(started=time.monotonic())
    counter = itertools.count()
    reporter = asyncio.create_task(_progress_loop(state, progress, progress_every_s))

    async def caller() -> None:
        while True:
            elapsed = time.monotonic() - state.started
            index = next(counter)
            if elapsed >= max_duration_s or (index >= total and elapsed >= min_duration_s):
                return
            state.offered += 1
            now = time.monotonic()
            await _one(
                client,
                payloads[index % len(payloads)],
                index=index,
                due=now,
                state=state,
                ok_status=ok_status,
            )

    try:
        await asyncio.gather(*(caller() for _ in range(concurrency)))
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
    return state


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none)."""
    if not values:
        return None
    rank = max(1, min(len(values), int(fraction * len(values) + 0.999999)))
    return values[rank - 1]


def latency_summary_ms(values_s: Sequence[float]) -> dict[str, float | int | None]:
    """count, p50, p90, p99, max and mean in milliseconds."""
    ordered = sorted(values_s)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    return {
        "count": len(ordered),
        "p50_ms": ms(percentile(ordered, 0.50)),
        "p90_ms": ms(percentile(ordered, 0.90)),
        "p99_ms": ms(percentile(ordered, 0.99)),
        "max_ms": ms(ordered[-1] if ordered else None),
        "mean_ms": ms(sum(ordered) / len(ordered) if ordered else None),
    }
