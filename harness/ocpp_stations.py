"""Stations for the tests and the benchmark: the `ocpp` package's own ChargePoint over a real WebSocket.

Nothing here is ours but the wiring: the client classes, message validation and framing are the
package's, so a test through them speaks OCPP the way a third party's station would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v201 import ChargePoint as ChargePoint201
from websockets.asyncio.client import ClientConnection, connect


@dataclass
class Station:
    """One connected station: its socket, the package's client on it, and the task reading answers."""

    websocket: ClientConnection
    client: Any
    reader: asyncio.Task[None]

    async def call(self, payload: Any, **kwargs: Any) -> Any:
        return await self.client.call(payload, suppress=False, **kwargs)


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@contextlib.asynccontextmanager
async def station_connected(
    url: str, identity: str, password: str, *, protocol: str = "ocpp1.6", timeout: float = 10
) -> AsyncIterator[Station]:
    """Connect as `identity` to the gateway at `url` (ws://host:port), speak `protocol`, close after."""
    websocket = await connect(
        f"{url}/ocpp/{identity}",
        subprotocols=[protocol],  # type: ignore[list-item]
        additional_headers={"Authorization": basic_auth(identity, password)},
        open_timeout=timeout,
        compression=None,
    )
    kind = ChargePoint201 if protocol == "ocpp2.0.1" else ChargePoint16
    client = kind(identity, websocket, response_timeout=timeout)
    reader = asyncio.create_task(client.start())
    try:
        yield Station(websocket=websocket, client=client, reader=reader)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        await websocket.close()
