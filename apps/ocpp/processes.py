"""Several gateway processes on one port (OCPP_PROCESSES), so stations are served on every core.

One asyncio loop holds Python's GIL for all its stations: at 400 Authorize calls a second one
process is busy most of the time, and a call that arrives while the loop or its database thread
works waits for it. Here the parent binds OCPP_PROCESSES listening sockets to the same port with
SO_REUSEPORT and forks one gateway per socket; the kernel spreads new connections over them
evenly. The parent serves the metrics of them all (PROMETHEUS_MULTIPROC_DIR, set by
compose/local/ocpp.sh) and waits. Two against one, side by side (benchmarks/results/
ab-ocpp-2026-12-04-processes): the last station answered 502-816 ms after a restart against
849-972 ms, round trips p50 5.3-6.7 against 6.0-8.0 ms, for ~0.3 ms more CPU per call (each
process's Authorize batches are smaller).

Every gateway process keeps no state another needs: a station's session lives where its socket
is, everything else is in the database. What the processes share is ordered by the parent:
stations are marked disconnected once, before any process listens; SIGTERM or SIGINT stops all
of them (each closes its stations' sockets, 1001); a process that dies on its own stops the rest
and the parent exits non-zero, so the service manager restarts the whole gateway and the start's
clean-up holds again (its stations reconnect within a second, benchmarks "ocpp" restart).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

import structlog
from django.db import connections
from django.utils import timezone

from apps.ocpp import services
from apps.ocpp.gateway import gateway_run

logger = structlog.get_logger(__name__)

# asyncio's own default is 100; a gateway restart has every station connect within a second.
LISTEN_BACKLOG = 1024


def listening_sockets(*, host: str, port: int, count: int) -> list[socket.socket]:
    """`count` sockets listening on one port (port 0: one the first gets), each with SO_REUSEPORT."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
            # The next ones bind where the first one landed.
            address = sock.getsockname()
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


# Held back while the parent forks: a child must never run the parent's handler, and the parent
# must not be stopped before it has noted every child it would then have to stop.
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class _Children:
    """The gateway processes by pid (their index), and whether they are being stopped."""

    def __init__(self) -> None:
        self.by_pid: dict[int, int] = {}
        self.stopping = False

    def stop(self, _signum: int = signal.SIGTERM, _frame: FrameType | None = None) -> None:
        self.stopping = True
        for pid in list(self.by_pid):
            with contextlib.suppress(ProcessLookupError):  # already gone
                os.kill(pid, signal.SIGTERM)


def gateways_run(
    *, host: str, port: int, db_threads: int, processes: int, started: Callable[[], object]
) -> int:
    """Fork `processes` gateways sharing one port, serve until SIGTERM/SIGINT; the exit status.
    `started` runs in the parent once they are forked (the metrics server: no thread may cross a fork)."""
    forgotten = services.connections_forget(at=timezone.now())
    # No connection may cross a fork: each process opens its own.
    connections.close_all()
    sockets = listening_sockets(host=host, port=port, count=processes)
    bound_port = sockets[0].getsockname()[1]
    children = _Children()
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        for index, sock in enumerate(sockets):
            pid = os.fork()
            if pid == 0:
                _child_serve(index, sock, sockets, host=host, port=bound_port, db_threads=db_threads)
            children.by_pid[pid] = index
        signal.signal(signal.SIGTERM, children.stop)
        signal.signal(signal.SIGINT, children.stop)
    except BaseException:
        children.stop()  # a fork failed: the ones made must not serve on alone
        raise
    finally:
        # The parent keeps no listening socket: a connection must never queue where no one accepts.
        for sock in sockets:
            sock.close()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    started()
    logger.info("ocpp_gateways_started", host=host, port=bound_port, processes=processes, forgotten=forgotten)
    return _children_wait(children)


def _child_serve(
    index: int, sock: socket.socket, sockets: list[socket.socket], *, host: str, port: int, db_threads: int
) -> NoReturn:
    """A forked gateway: serve `sock` until stopped, then leave; never return into the parent's code."""
    status = 1
    try:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)  # until the gateway's loop takes them over
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        for other in sockets:
            if other is not sock:
                other.close()
        gateway_run(host=host, port=port, db_threads=db_threads, sock=sock, forget=False)
        status = 0
    except BaseException:  # whatever it was: said, and the process leaves with a status
        logger.exception("ocpp_gateway_process_failed", process=index)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _children_wait(children: _Children) -> int:
    status = 0
    while children.by_pid:
        pid, wait_status = os.wait()
        index = children.by_pid.pop(pid, None)
        if index is None:
            continue
        code = os.waitstatus_to_exitcode(wait_status)
        if not children.stopping:
            # Its stations reconnect to the others, but the start's clean-up of the stations' rows
            # no longer holds for them: stop everything and let the service manager start afresh.
            logger.error("ocpp_gateway_process_died", process=index, pid=pid, exit=code)
            status = 1
            children.stop()
        elif code != 0:
            status = 1
    logger.info("ocpp_gateways_stopped", status=status)
    return status
