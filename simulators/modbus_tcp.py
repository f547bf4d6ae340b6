"""Simulated Modbus units behind one Modbus TCP endpoint: a pymodbus TCP server.

Like a Modbus TCP gateway in front of an RS-485 line, one endpoint hosts many unit ids;
a unit that is not answering leaves the request unanswered. `disconnect()` drops every
client connection, as a gateway that reboots does.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from types import TracebackType
from typing import Self

from pymodbus.datastore import ModbusServerContext
from pymodbus.server import ModbusTcpServer

from simulators.modbus_device import SimulatedDevice


class TcpBusSimulator:
    """A pymodbus TCP server on 127.0.0.1 and a free port; use as `async with`."""

    def __init__(self, devices: Iterable[SimulatedDevice], host: str = "127.0.0.1") -> None:
        self.units: dict[int, SimulatedDevice] = {}
        for device in devices:
            if device.unit in self.units:
                raise ValueError(f"two devices with unit id {device.unit}")
            self.units[device.unit] = device
        self.host = host
        self._server: ModbusTcpServer | None = None
        self._port = 0

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the server is not up: use `async with`")
        return self._port

    async def __aenter__(self) -> Self:
        context = ModbusServerContext(  # type: ignore[no-untyped-call]
            devices=dict(self.units), single=False)
        # port 0: the OS picks a free port, read back from the listening socket
        self._server = ModbusTcpServer(context, address=(self.host, 0),
                                       ignore_missing_devices=True, trace_packet=self._wire)
        await self._server.serve_forever(background=True)
        listener = self._server.transport
        assert isinstance(listener, asyncio.Server)
        sockets: tuple[socket.socket, ...] = tuple(listener.sockets)
        self._port = int(sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]

    def disconnect(self) -> None:
        """Drop every client connection; the server keeps listening."""
        assert self._server is not None
        for connection in list(self._server.active_connections.values()):
            connection.close()

    @property
    def connections(self) -> int:
        return 0 if self._server is None else len(self._server.active_connections)

    def _wire(self, sending: bool, data: bytes) -> bytes:
        # answers pass here on their way out: the unit id is at offset 6 of the MBAP header
        if not sending or len(data) < 7:
            return data
        device = self.units.get(data[6])
        return data if device is None else device.mangle(data, "tcp")
