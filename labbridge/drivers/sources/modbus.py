"""Poll a PLC or spindle drive over Modbus TCP/RTU (pymodbus async) into a MachineState.

Read-only unless the machine's config says ``writable: true``; then only the stop
actions its map declares (``feed_hold``, ``spindle_stop``) are ever written.
A failed poll never raises out of the poll task: an exception response becomes
``state.fault`` naming the exception and the registers; a timeout or dropped
connection marks the source down and reconnects with exponential backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from labbridge.config import ModbusConnection
from labbridge.drivers import field_map
from labbridge.drivers.base import Unsupported
from labbridge.protocols.modbus_registers import ReadBlock, encode, exception_name, plan_reads
from labbridge.drivers.sources.link_state import LinkCallback, LinkState
from labbridge.errors import ConfigError, LabbridgeError
from labbridge.log import get_logger
from labbridge.model import MachineState, Status

# pymodbus logs every bad frame with a hex dump on stderr; our fault messages say it once, in words.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class ModbusTarget:
    kind: str  # "tcp" or "rtu"
    host: str
    port: int
    serial: dict[str, Any]

    def __str__(self) -> str:
        return f"tcp://{self.host}:{self.port}" if self.kind == "tcp" else f"rtu://{self.host}"


def parse_url(url: str) -> ModbusTarget:
    """``tcp://host[:port]`` or ``rtu:///dev/ttyUSB2?baudrate=19200&parity=E&stopbits=1&bytesize=8``."""
    parsed = urlparse(url)
    if parsed.scheme == "tcp":
        if not parsed.hostname:
            raise ConfigError(f"Modbus url {url!r}: no host (expected tcp://HOST:PORT)")
        return ModbusTarget("tcp", parsed.hostname, parsed.port or 502, {})
    if parsed.scheme == "rtu":
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        try:
            serial = {
                "baudrate": int(query.pop("baudrate", 19200)),
                "parity": query.pop("parity", "E").upper(),
                "stopbits": int(query.pop("stopbits", 1)),
                "bytesize": int(query.pop("bytesize", 8)),
            }
        except ValueError as exc:
            raise ConfigError(f"Modbus url {url!r}: {exc}") from None
        if query:
            raise ConfigError(f"Modbus url {url!r}: unknown option(s) {', '.join(query)}")
        if not parsed.path:
            raise ConfigError(f"Modbus url {url!r}: no serial device (expected rtu:///dev/ttyUSB0?...)")
        return ModbusTarget("rtu", parsed.path, 0, serial)
    raise ConfigError(f"Modbus url {url!r}: scheme must be tcp:// or rtu://")


class ModbusSource(LinkState):
    """One Modbus device feeding one MachineState; ``start()`` returns after the first poll."""

    name = "modbus"

    def __init__(
        self,
        machine_id: str,
        conn: ModbusConnection,
        state: MachineState,
        *,
        on_link: LinkCallback | None = None,
        max_backoff: float = 10.0,
    ) -> None:
        self.machine_id = machine_id
        self.conn = conn
        self.state = state
        self.fields = field_map.effective_map(conn, machine_id)
        self.blocks: list[ReadBlock] = plan_reads(self.fields)
        self.target = parse_url(conn.url)
        self.on_link = on_link
        self.max_backoff = max_backoff
        self.log = get_logger(machine=machine_id).bind(source="modbus", url=str(self.target))
        self.client: Any = None
        self.up = False
        self.fault: str | None = None
        self.last_update: float | None = None  # monotonic time of the newest good poll
        self.polls = 0
        self.failures = 0
        self._task: asyncio.Task[None] | None = None
        self._first = asyncio.Event()

    # -- lifecycle
    async def start(self, first_poll_timeout: float | None = None) -> None:
        self._task = asyncio.create_task(self._run(), name=f"modbus-{self.machine_id}")
        timeout = first_poll_timeout if first_poll_timeout is not None else self.conn.timeout * 3 + 2
        try:
            await asyncio.wait_for(self._first.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        self._close_client()

    def _new_client(self) -> Any:
        t = self.target
        if t.kind == "tcp":
            return AsyncModbusTcpClient(t.host, port=t.port, timeout=self.conn.timeout, retries=0, reconnect_delay=0)
        return AsyncModbusSerialClient(
            t.host, timeout=self.conn.timeout, retries=0, reconnect_delay=0, **t.serial
        )

    def _close_client(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except Exception:
                pass
            self.client = None

    # -- polling
    async def _run(self) -> None:
        period = 1.0 / self.conn.poll_hz
        backoff = min(0.5, period)
        while True:
            try:
                if self.client is None or not self.client.connected:
                    await self._connect()
                started = time.monotonic()
                await self.poll_once()
                backoff = min(0.5, period)
                self._first.set()
                await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))
            except asyncio.CancelledError:
                raise
            except _LinkDown as exc:
                self.failures += 1
                self._close_client()
                self._set_link(False, str(exc))
                self._first.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
            except Exception as exc:  # never let a bad reply kill the poller
                self.failures += 1
                self.log.exception("modbus_poll_crashed")
                self._set_link(self.up, f"Modbus poll failed unexpectedly at {self.target}: {exc!r}")
                self._first.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    async def _connect(self) -> None:
        self._close_client()
        self.client = self._new_client()
        try:
            ok = await asyncio.wait_for(self.client.connect(), self.conn.timeout + 1)
        except (asyncio.TimeoutError, OSError, ModbusException) as exc:
            ok = False
            reason = str(exc) or type(exc).__name__
        else:
            reason = "connection refused or no answer"
        if not ok:
            raise _LinkDown(f"cannot connect to Modbus device at {self.target}: {reason}; retrying")

    async def poll_once(self) -> dict[str, Any]:
        """Read every block once and apply what was read; returns the decoded values."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        for block in self.blocks:
            try:
                reply = await self._read(block)
            except (ModbusException, asyncio.TimeoutError, OSError) as exc:
                raise _LinkDown(
                    f"Modbus device {self.conn.device_id} at {self.target} stopped answering "
                    f"(reading {block.describe()}: {exc or type(exc).__name__}); reconnecting"
                ) from None
            if reply.isError():
                code = getattr(reply, "exception_code", 0)
                problems.append(
                    f"Modbus {exception_name(code)} reading {block.describe()} from device {self.conn.device_id} "
                    f"at {self.target}; check the register map"
                )
                for path, _field in block.fields:
                    if path == "state":
                        values["state"] = Status.UNKNOWN
                continue
            words = reply.bits if block.table in ("coil", "discrete") else reply.registers
            values.update(block.values(list(words)))
        self.polls += 1
        self.last_update = time.monotonic()
        field_map.apply(self.state, values, self.name)
        self._set_link(True, "; ".join(problems) or None)
        return values

    async def _read(self, block: ReadBlock) -> Any:
        c, dev = self.client, self.conn.device_id
        if c is None:
            raise ModbusException("not connected")
        call = {
            "holding": c.read_holding_registers,
            "input": c.read_input_registers,
            "coil": c.read_coils,
            "discrete": c.read_discrete_inputs,
        }[block.table]
        return await asyncio.wait_for(call(block.address, count=block.count, device_id=dev), self.conn.timeout + 1)

    # -- stop actions
    def has_action(self, action: str) -> bool:
        return action in self.fields and self.conn.writable

    async def write_action(self, action: str) -> None:
        """Write the register the map declares for ``action`` (``feed_hold`` or ``spindle_stop``)."""
        field = self.fields.get(action)
        if field is None:
            raise Unsupported(f"{self.machine_id}: the Modbus map declares no {action} register")
        if not self.conn.writable:
            raise Unsupported(
                f"{self.machine_id}: Modbus is read-only (set writable: true under connection.modbus to allow "
                f"the {action} write)"
            )
        if self.client is None or not self.client.connected:
            raise LabbridgeError(f"{self.machine_id}: cannot send {action}: Modbus link to {self.target} is down")
        value = field.write_value if field.write_value is not None else 1
        dev = self.conn.device_id
        try:
            if field.table == "coil":
                reply = await self.client.write_coil(field.address, bool(value), device_id=dev)
            elif field.table == "holding":
                words = encode(field.model_copy(update={"scale": 1.0, "offset": 0.0, "values": None}), value)
                if len(words) == 1:
                    reply = await self.client.write_register(field.address, int(words[0]), device_id=dev)
                else:
                    reply = await self.client.write_registers(field.address, [int(w) for w in words], device_id=dev)
            else:
                raise Unsupported(f"{self.machine_id}: {action} maps to a read-only {field.table} table")
        except (ModbusException, asyncio.TimeoutError, OSError) as exc:
            raise LabbridgeError(f"{self.machine_id}: {action} write to {self.target} failed: {exc}") from None
        if reply.isError():
            raise LabbridgeError(
                f"{self.machine_id}: {action} write refused by the device: "
                f"{exception_name(getattr(reply, 'exception_code', 0))}"
            )
        self.log.warning("modbus_stop_written", action=action, address=field.address, value=value)


class _LinkDown(Exception):
    """The Modbus link failed; the message is the fault a person sees."""


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel until the task ends: a library that swallows one CancelledError must not keep it alive."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
