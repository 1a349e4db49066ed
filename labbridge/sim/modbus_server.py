"""A pymodbus TCP server laid out by a register map, for the lathe simulator and tests.

Registers are refreshed from ``provider()`` (MachineState paths → values) on every
read, so what a client reads always follows the simulated machine. Writes to a
mapped stop action call ``on_action(name)``. ``fail_with`` makes every request
answer with a Modbus exception, to test fault handling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from labbridge.config import RegisterField
from labbridge.protocols.modbus_registers import BIT_TABLES, encode, width

_TABLE_OF_FC = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 3: "holding", 6: "holding", 16: "holding",
                22: "holding", 23: "holding", 4: "input"}
_TABLES = ("coil", "discrete", "holding", "input")  # SimDevice's tuple order


class RegisterServer:
    """Serve ``fields`` on 127.0.0.1 (port 0 picks a free port; see ``port`` after ``start``)."""

    def __init__(
        self,
        fields: dict[str, RegisterField],
        *,
        provider: Callable[[], dict[str, Any]] | None = None,
        on_action: Callable[[str], None] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        device_id: int = 0,
        serial_port: str | None = None,
        baudrate: int = 19200,
    ) -> None:
        self.fields = fields
        self.values: dict[str, Any] = {}
        self.provider = provider
        self.on_action = on_action
        self.host = host
        self.port = port
        self.device_id = device_id
        self.serial_port = serial_port  # serve RTU on this serial device instead of TCP
        self.baudrate = baudrate
        self.fail_with: ExcCodes | None = None
        self.requests = 0
        self.writes: list[tuple[str, int, list[Any]]] = []
        self._server: ModbusTcpServer | None = None
        self._task: asyncio.Task[Any] | None = None

    def _device(self) -> SimDevice:
        blocks: list[list[SimData]] = []
        for table in _TABLES:
            mapped = [f for f in self.fields.values() if f.table == table]
            if not mapped:
                blocks.append([SimData(0, count=16, values=False, datatype=DataType.BITS)] if table in BIT_TABLES
                              else [SimData(0, values=0, datatype=DataType.REGISTERS)])
                continue
            low = min(f.address for f in mapped)
            high = max(f.address + width(f) for f in mapped)
            if table in BIT_TABLES:
                blocks.append([SimData(low, count=high - low, values=False, datatype=DataType.BITS)])
            else:
                blocks.append([SimData(low, count=high - low, values=0, datatype=DataType.REGISTERS)])
        return SimDevice(self.device_id, simdata=tuple(blocks), action=self._action)  # type: ignore[arg-type]

    async def _action(
        self, fc: int, start: int, address: int, count: int, registers: list[int], set_values: Any
    ) -> ExcCodes | None:
        self.requests += 1
        if self.fail_with is not None:
            return self.fail_with
        table = _TABLE_OF_FC.get(fc)
        if set_values is not None and table is not None:
            self.writes.append((table, address, list(set_values)))
            for name, field in self.fields.items():
                if field.table == table and field.address == address and self.on_action is not None:
                    self.on_action(name)
            return None
        current = dict(self.values)
        if self.provider is not None:
            current.update(self.provider())
        bits = table in BIT_TABLES
        for path, field in self.fields.items():
            if field.table != table or path not in current or current[path] is None:
                continue
            try:
                words = encode(field, current[path])
            except (ValueError, TypeError, OverflowError):
                continue
            if bits:
                # Bits are packed 16 to a register; ``start`` is the first register's index.
                index = field.address - start * 16
                reg, bit = divmod(index, 16)
                if 0 <= reg < len(registers):
                    if words[0]:
                        registers[reg] |= 1 << bit
                    else:
                        registers[reg] &= ~(1 << bit) & 0xFFFF
            else:
                offset = field.address - start
                for i, word in enumerate(words):
                    if 0 <= offset + i < len(registers):
                        registers[offset + i] = int(word) & 0xFFFF
        return None

    async def start(self) -> int:
        if self.serial_port is not None:
            self._server = ModbusSerialServer(self._device(), port=self.serial_port, baudrate=self.baudrate)
        else:
            self._server = ModbusTcpServer(self._device(), address=(self.host, self.port))
        await self._server.serve_forever(background=True)
        sockets = getattr(self._server.transport, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        return self.port

    @property
    def url(self) -> str:
        if self.serial_port is not None:
            return f"rtu://{self.serial_port}?baudrate={self.baudrate}&parity=N&stopbits=1&bytesize=8"
        return f"tcp://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
