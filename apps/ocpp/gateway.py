"""The OCPP gateway: stations connect over a WebSocket and ask, among other things, may this idTag charge?

One asyncio loop serves every station (the `websockets` library); the `ocpp` package parses,
validates and routes each call to the handlers below; the database work runs on a few threads
(OCPP_DB_THREADS) so no station waits on another's query, and Authorize calls are decided in
batches of every call waiting (Authorizer).

    ws://OCPP_HOST:OCPP_PORT/ocpp/<identity>, subprotocol ocpp1.6 or ocpp2.0.1, HTTP Basic

Refused at the upgrade, before any OCPP is spoken: a path that is not /ocpp/<identity> (404), no
subprotocol of ours (400), an unknown identity or wrong password (401), a disabled station (403).
Every call is answered: a result, or the protocol's CALLERROR (NotImplemented, NotSupported, a
schema violation, a rate limit, InternalError when the database is away); a malformed frame too.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import logging
import signal
import socket
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import unquote

import structlog
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone
from ocpp import messages as ocpp_messages
from ocpp.charge_point import ChargePoint
from ocpp.exceptions import GenericError, InternalError, OCPPError
from ocpp.messages import CallError, MessageType, unpack
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v16.enums import RegistrationStatus
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from ocpp.v201.enums import RegistrationStatusEnumType
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from apps.access.credentials import identity_check
from apps.monitoring.metrics import (
    OCPP_CALL_SECONDS,
    OCPP_CALLS,
    OCPP_STATIONS_CONNECTED,
    OCPP_UPGRADES_REFUSED,
)
from apps.ocpp import services, validation
from apps.ocpp.protocol import (
    OCPP201,
    SUBPROTOCOLS,
    NoAnswer,
    id_tag_info,
    id_token_info,
    ocpp_time,
    status_text,
)

logger = structlog.get_logger(__name__)

# The package validates each payload on the default executor unless told otherwise: a thread hop
# twice per call for work that holds the GIL anyway. Validation stays on; it runs on the loop.
ocpp_messages.ASYNC_VALIDATION = False
# And most of it in compiled code (apps/ocpp/validation.py): what it refuses and how stays the package's.
validation.install()
# The package logs every CALLERROR it sends with a traceback at ERROR; a station sending garbage
# would flood the log. Our own line per refused call says what matters.
_QUIET = logging.getLogger("charge.ocpp.package")
_QUIET.setLevel(logging.CRITICAL)

PATH_PREFIX = "/ocpp/"
T = TypeVar("T")


class CallBucket:
    """A token bucket per connection: `rate` calls per second, `burst` at once."""

    def __init__(self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, float(burst), clock
        self._tokens, self._at = float(burst), clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


def _unique_id_of(raw: str | bytes) -> str:
    """The message id of a frame we cannot read, if one can be seen; OCPP-J's "-1" otherwise."""
    try:
        frame = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "-1"
    if isinstance(frame, list) and len(frame) > 1 and isinstance(frame[1], str) and len(frame[1]) <= 36:
        return frame[1]
    return "-1"


class _Session(ChargePoint):
    """What both versions' handlers share: the station's login, the database threads, the call's
    answer or error counted, the rate limit, and a CALLERROR for a frame that is not OCPP."""

    _ocpp_version: str
    actions: frozenset[str]

    def __init__(
        self, *, login: services.StationLogin, connection: ServerConnection, gateway: Gateway
    ) -> None:
        super().__init__(login.identity, connection, logger=_QUIET)
        self.login = login
        self.gateway = gateway
        self.bucket = CallBucket(rate=settings.OCPP_CALLS_PER_S, burst=settings.OCPP_CALL_BURST)
        self._answered_with_error = False
        # The station's state row noted connected (Gateway._session); what writes to that row waits.
        self.opened: asyncio.Future[None] | None = None

    @property
    def station_id(self) -> str:
        return self.login.station_id

    async def db(self, function: Callable[..., T], **kwargs: Any) -> T:
        if self.opened is not None:
            await asyncio.shield(self.opened)
        return await self.gateway.db(function, **kwargs)

    async def _send(self, message: str) -> None:
        # The package sends results and CALLERRORs alike through here: note which one went.
        self._answered_with_error = message.startswith("[4")
        await self._connection.send(message)

    def _error_code(self, error: OCPPError) -> str:
        code = str(getattr(error, "code", "GenericError"))
        # 1.6 spells the JSON-syntax error "FormationViolation"; the package raises 2.0.1's name.
        if self._ocpp_version == "1.6" and code == "FormatViolation":
            return "FormationViolation"
        return code

    async def _call_error(self, unique_id: str, error: OCPPError) -> None:
        frame = CallError(unique_id, self._error_code(error), error.description, error.details or {})
        await self._send(frame.to_json())

    async def route_message(self, raw_msg: str | bytes) -> None:
        started = time.perf_counter()
        if not self.bucket.take():
            OCPP_CALLS.labels(action="any", outcome="rate_limited").inc()
            limit = (
                f"at most {settings.OCPP_CALLS_PER_S:g} calls per second ({settings.OCPP_CALL_BURST} at once)"
            )
            await self._call_error(_unique_id_of(raw_msg), GenericError(description=f"rate limit: {limit}"))
            return
        try:
            msg = unpack(raw_msg)
        except OCPPError as error:
            OCPP_CALLS.labels(action="unknown", outcome="malformed").inc()
            logger.info(
                "ocpp_frame_malformed",
                station=self.login.identity,
                error=self._error_code(error),
                cause=str(error.details),
            )
            await self._call_error(_unique_id_of(raw_msg), error)
            return
        if msg.message_type_id != MessageType.Call:
            # We send stations no calls, so no result or error is awaited: nothing to do.
            return
        action = msg.action if msg.action in self.actions else "other"
        try:
            await self._handle_call(msg)
        except OCPPError as error:
            # No handler (NotImplemented / NotSupported) or a payload the schema refuses.
            await self._call_error(msg.unique_id, error)
        outcome = "call_error" if self._answered_with_error else "answered"
        OCPP_CALLS.labels(action=action, outcome=outcome).inc()
        OCPP_CALL_SECONDS.labels(action=action).observe(time.perf_counter() - started)
        if self._answered_with_error:
            logger.info(
                "ocpp_call_refused", station=self.login.identity, action=msg.action, unique_id=msg.unique_id
            )

    async def authorize(self, id_token: str) -> services.Authorization:
        return await self.gateway.authorizer.authorize(station_id=self.station_id, id_token=id_token)

    async def boot(self, *, vendor: str, model: str, firmware_version: str, serial_number: str) -> datetime:
        """Store what a BootNotification says of the station (either version); returns when it came."""
        now = timezone.now()
        await self.db(
            services.boot_record,
            station_id=self.station_id,
            vendor=vendor,
            model=model,
            firmware_version=firmware_version,
            serial_number=serial_number,
            at=now,
        )
        return now

    async def heartbeat(self) -> str:
        now = timezone.now()
        await self.db(services.heartbeat_record, station_id=self.station_id, at=now)
        return ocpp_time(now)


def _info16(authorization: services.Authorization) -> Any:
    try:
        return id_tag_info(authorization.decision, group=authorization.group)
    except NoAnswer as exc:
        raise InternalError(description=str(exc)) from None


def _info201(authorization: services.Authorization) -> Any:
    try:
        return id_token_info(authorization.decision, group=authorization.group)
    except NoAnswer as exc:
        raise InternalError(description=str(exc)) from None


class Station16(_Session, ChargePoint16):
    """An OCPP 1.6J station."""

    actions = frozenset(action.value for action in Action16)

    @on(Action16.boot_notification)
    async def on_boot(
        self,
        charge_point_vendor: str,
        charge_point_model: str,
        firmware_version: str = "",
        charge_point_serial_number: str = "",
        **_: Any,
    ) -> result16.BootNotification:
        now = await self.boot(
            vendor=charge_point_vendor,
            model=charge_point_model,
            firmware_version=firmware_version,
            serial_number=charge_point_serial_number,
        )
        return result16.BootNotification(
            current_time=ocpp_time(now),
            interval=settings.OCPP_HEARTBEAT_INTERVAL_S,
            status=RegistrationStatus.accepted,
        )

    @on(Action16.heartbeat)
    async def on_heartbeat(self) -> result16.Heartbeat:
        return result16.Heartbeat(current_time=await self.heartbeat())

    @on(Action16.status_notification)
    async def on_status(
        self, connector_id: int, error_code: str, status: str, **_: Any
    ) -> result16.StatusNotification:
        text = status_text(connector_id=connector_id, status=status, error_code=error_code)
        await self.db(services.status_record, station_id=self.station_id, status=text, at=timezone.now())
        return result16.StatusNotification()

    @on(Action16.authorize)
    async def on_authorize(self, id_tag: str) -> result16.Authorize:
        return result16.Authorize(id_tag_info=_info16(await self.authorize(id_tag)))

    @on(Action16.start_transaction)
    async def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **_: Any
    ) -> result16.StartTransaction:
        transaction_id, authorization = await self.db(
            services.transaction_start,
            station_id=self.station_id,
            connector_id=connector_id,
            id_tag=id_tag,
            meter_start=meter_start,
            timestamp=timestamp,
        )
        return result16.StartTransaction(transaction_id=transaction_id, id_tag_info=_info16(authorization))

    @on(Action16.stop_transaction)
    async def on_stop_transaction(
        self,
        meter_stop: int,
        timestamp: str,
        transaction_id: int,
        reason: str | None = None,
        id_tag: str | None = None,
        **_: Any,
    ) -> result16.StopTransaction:
        authorization = await self.db(
            services.transaction_stop,
            station_id=self.station_id,
            transaction_id=transaction_id,
            meter_stop=meter_stop,
            timestamp=timestamp,
            reason=reason,
            id_tag=id_tag,
        )
        return result16.StopTransaction(id_tag_info=_info16(authorization) if authorization else None)


class Station201(_Session, ChargePoint201):
    """An OCPP 2.0.1 station."""

    actions = frozenset(action.value for action in Action201)

    @on(Action201.boot_notification)
    async def on_boot(
        self, charging_station: dict[str, Any], reason: str, **_: Any
    ) -> result201.BootNotification:
        now = await self.boot(
            vendor=charging_station.get("vendor_name", ""),
            model=charging_station.get("model", ""),
            firmware_version=charging_station.get("firmware_version", ""),
            serial_number=charging_station.get("serial_number", ""),
        )
        return result201.BootNotification(
            current_time=ocpp_time(now),
            interval=settings.OCPP_HEARTBEAT_INTERVAL_S,
            status=RegistrationStatusEnumType.accepted,
        )

    @on(Action201.heartbeat)
    async def on_heartbeat(self, **_: Any) -> result201.Heartbeat:
        return result201.Heartbeat(current_time=await self.heartbeat())

    @on(Action201.status_notification)
    async def on_status(
        self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **_: Any
    ) -> result201.StatusNotification:
        text = f"evse {evse_id} " + status_text(connector_id=connector_id, status=connector_status)
        await self.db(services.status_record, station_id=self.station_id, status=text, at=timezone.now())
        return result201.StatusNotification()

    @on(Action201.authorize)
    async def on_authorize(self, id_token: dict[str, Any], **_: Any) -> result201.Authorize:
        return result201.Authorize(id_token_info=_info201(await self.authorize(id_token["id_token"])))

    @on(Action201.transaction_event)
    async def on_transaction_event(
        self,
        event_type: str,
        timestamp: str,
        transaction_info: dict[str, Any],
        evse: dict[str, Any] | None = None,
        id_token: dict[str, Any] | None = None,
        **_: Any,
    ) -> result201.TransactionEvent:
        authorization = await self.db(
            services.transaction_event,
            station_id=self.station_id,
            event_type=event_type,
            transaction_id=transaction_info["transaction_id"],
            timestamp=timestamp,
            connector_id=(evse or {}).get("connector_id"),
            id_token=id_token["id_token"] if id_token else None,
            stopped_reason=transaction_info.get("stopped_reason"),
        )
        return result201.TransactionEvent(id_token_info=_info201(authorization) if authorization else None)


def _basic_auth(headers: Headers) -> tuple[str, str] | None:
    """(user, password) from an Authorization: Basic header, or None."""
    value = headers.get("Authorization", "")
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


class Authorizer:
    """Every station's Authorize calls, decided in batches on the database threads.

    A call waits in one queue; each of a few drain loops takes every call waiting (at most
    OCPP_AUTHORIZE_BATCH) and decides them with one ACL read and one INSERT of their log rows
    (services.tokens_authorize). Nothing waits for a batch to fill: a call to an idle gateway is
    decided alone, at once; under load, the calls that came in during one batch's round trips make
    the next. One query per call on a pool of threads cost three round trips per call and kept
    the threads fighting the event loop for the GIL (py-spy, benchmarks "ocpp").
    """

    def __init__(self, *, batch: int, loops: int) -> None:
        # Threads of its own: decisions never queue behind the logins and bookkeeping of a crowd of
        # stations reconnecting at once (after a gateway restart, all of them).
        self._executor = ThreadPoolExecutor(max_workers=loops, thread_name_prefix="ocpp-authorize")
        self._batch = batch
        self._loops = loops
        self._queue: asyncio.Queue[tuple[str, str, asyncio.Future[services.Authorization]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._drain()) for _ in range(self._loops)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def authorize(self, *, station_id: str, id_token: str) -> services.Authorization:
        answer: asyncio.Future[services.Authorization] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((station_id, id_token, answer))
        return await answer

    async def _drain(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            asks = [(station, token) for station, token, _ in batch]
            try:
                decided = await asyncio.get_running_loop().run_in_executor(
                    self._executor, functools.partial(_db_job, services.tokens_authorize, {"asks": asks})
                )
            except Exception as error:  # noqa: BLE001 - the database is away: each call fails as one would
                for *_, answer in batch:
                    if not answer.done():
                        answer.set_exception(error)
                continue
            for (*_, answer), authorization in zip(batch, decided, strict=True):
                # A station that went away meanwhile: its decision is logged, its answer not needed.
                if not answer.done():
                    answer.set_result(authorization)


class Gateway:
    """The server: upgrades, one session per connected station, the database threads."""

    def __init__(self, *, host: str, port: int, db_threads: int, sock: socket.socket | None = None) -> None:
        self.host, self.port = host, port
        # A socket already listening (apps/ocpp/processes.py: one of several on the port), or None.
        self._sock = sock
        self._executor = ThreadPoolExecutor(max_workers=db_threads, thread_name_prefix="ocpp-db")
        # Login checked at the upgrade, picked up by the session; weak, for an upgrade that fails later.
        self._logins: weakref.WeakKeyDictionary[ServerConnection, tuple[services.StationLogin, str]] = (
            weakref.WeakKeyDictionary()
        )
        # The open session of each station: a station that connects again replaces its old socket.
        self._sessions: dict[str, ServerConnection] = {}
        self._server: Server | None = None
        self.authorizer = Authorizer(batch=settings.OCPP_AUTHORIZE_BATCH, loops=settings.OCPP_AUTHORIZE_LOOPS)

    async def db(self, function: Callable[..., T], **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(_db_job, function, kwargs))

    def _refuse(self, connection: ServerConnection, status: int, text: str) -> Response:
        OCPP_UPGRADES_REFUSED.labels(status=str(status)).inc()
        response = connection.respond(status, f"{text}\n")
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
        return response

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if not path.startswith(PATH_PREFIX) or "/" in path[len(PATH_PREFIX) :]:
            return self._refuse(connection, 404, "connect to /ocpp/<station identity>")
        try:
            identity = identity_check(unquote(path[len(PATH_PREFIX) :]))
        except ValueError as exc:
            return self._refuse(connection, 404, str(exc))
        offered = [p.strip() for p in ",".join(request.headers.get_all("Sec-WebSocket-Protocol")).split(",")]
        protocol = next((p for p in SUBPROTOCOLS if p in offered), None)
        if protocol is None:
            return self._refuse(
                connection, 400, f"Sec-WebSocket-Protocol must offer {' or '.join(SUBPROTOCOLS)}"
            )
        credentials = _basic_auth(request.headers)
        if credentials is not None and credentials[0] != identity:
            credentials = None  # the user name is the identity of the URL, or the login fails
        try:
            login = await self.db(
                services.station_login, identity=identity, password=credentials[1] if credentials else None
            )
        except services.LoginRefused as refused:
            logger.info(
                "ocpp_upgrade_refused", identity=identity, status=refused.status, reason=refused.reason
            )
            return self._refuse(connection, refused.status, refused.reason)
        except Exception:  # the database is away: the station retries, as it would after any outage
            logger.exception("ocpp_login_failed", identity=identity)
            return self._refuse(connection, 503, "authorization backend unavailable")
        self._logins[connection] = (login, protocol)
        return None

    def _select_subprotocol(self, connection: ServerConnection, offered: Any) -> Any:
        # Checked in _process_request already; the same choice.
        return next((p for p in SUBPROTOCOLS if p in offered), None)

    async def _session(self, connection: ServerConnection) -> None:
        login, protocol = self._logins.pop(connection)
        station = login.station_id
        previous = self._sessions.get(station)
        self._sessions[station] = connection
        if previous is not None:
            await previous.close(1000, "replaced by a new connection of the same station")
        kind = Station201 if protocol == OCPP201 else Station16
        session = kind(login=login, connection=connection, gateway=self)
        OCPP_STATIONS_CONNECTED.labels(protocol=protocol).inc()
        logger.info("ocpp_station_connected", station=station, identity=login.identity, protocol=protocol)
        # Noted beside the session, not before it: the station's first call need not wait for it.
        connected_at = timezone.now()
        opened = session.opened = asyncio.create_task(
            self.db(services.connection_opened, station_id=station, protocol=protocol, at=connected_at)
        )
        opened.add_done_callback(_opened_noted)
        try:
            await session.start()
        except ConnectionClosed:
            pass
        finally:
            OCPP_STATIONS_CONNECTED.labels(protocol=protocol).dec()
            if self._sessions.get(station) is connection:
                del self._sessions[station]
                try:
                    await opened  # "closed" must land after "opened"
                    await self.db(
                        services.connection_closed,
                        station_id=station,
                        connected_at=connected_at,
                        at=timezone.now(),
                    )
                except Exception:
                    logger.exception("ocpp_disconnect_not_recorded", station=station)
            logger.info("ocpp_station_disconnected", station=station, code=connection.close_code)

    async def run(self, stop: asyncio.Event, *, forget: bool = True) -> None:
        if forget:
            await self.db(services.connections_forget, at=timezone.now())
        self.authorizer.start()
        where: dict[str, Any] = {"sock": self._sock} if self._sock else {"host": self.host, "port": self.port}
        async with serve(
            self._session,
            **where,
            subprotocols=list(SUBPROTOCOLS),  # type: ignore[arg-type]
            select_subprotocol=self._select_subprotocol,
            process_request=self._process_request,
            # Stations do not compress, and deflate state costs ~100 KiB per connection.
            compression=None,
            max_size=settings.OCPP_MAX_FRAME_BYTES,
            # A station whose link died is noticed within ~40 s, and its row says so.
            ping_interval=20,
            ping_timeout=20,
            logger=_QUIET,
        ) as server:
            self._server = server
            self.port = server.sockets[0].getsockname()[1]
            logger.info("ocpp_gateway_listening", host=self.host, port=self.port)
            await stop.wait()
            logger.info("ocpp_gateway_stopping", stations=len(self._sessions))
            server.close(close_connections=True)
            await server.wait_closed()
        await self.authorizer.stop()
        self._executor.shutdown(wait=True)


def _opened_noted(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("ocpp_connect_not_recorded", error=str(task.exception()))


def _db_job(function: Callable[..., T], kwargs: dict[str, Any]) -> T:
    try:
        return function(**kwargs)
    finally:
        # A failed query may have left this thread's connection broken (the database restarted):
        # drop it then, so the next call connects afresh.
        if connection.errors_occurred:
            close_old_connections()


def statements_prepared() -> None:
    """From now on, connections this process opens prepare their statements (PostgreSQL; see
    settings.OCPP_DB_PREPARED_STATEMENTS). Called before any database thread connects: each thread's
    connection is made from this very dict. psycopg prepares a statement the fifth time it sees its
    text, which needs server-side parameters."""
    if connection.vendor == "postgresql":
        connection.settings_dict.setdefault("OPTIONS", {}).update(
            server_side_binding=True, prepare_threshold=5
        )


def gateway_run(
    *, host: str, port: int, db_threads: int, sock: socket.socket | None = None, forget: bool = True
) -> None:
    """Serve until SIGTERM or SIGINT; then close every station's socket (1001 going away).

    `sock`: serve this listening socket instead of binding host:port. `forget`: first mark every
    station disconnected (no other gateway process runs beside this one)."""
    if settings.OCPP_DB_PREPARED_STATEMENTS:
        statements_prepared()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await Gateway(host=host, port=port, db_threads=db_threads, sock=sock).run(stop, forget=forget)

    asyncio.run(main())
