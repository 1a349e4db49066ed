"""Modbus RTU: our driver and a pymodbus RTU server on two pseudo-terminals joined by a byte relay (a null-modem)."""

from __future__ import annotations

import asyncio
import os
import tty

import pytest

from labbridge.config import ModbusConnection, RegisterField
from labbridge.drivers.sources.modbus import ModbusSource
from labbridge.sim.modbus_server import RegisterServer
from labbridge.model import MachineState

MAP = {
    "spindle.rpm": {"table": "holding", "address": 0x2103, "scale": 0.6},
    "position.machine.X": {"table": "input", "address": 100, "type": "int32", "scale": 0.001, "word_order": "little"},
    "door_open": {"table": "discrete", "address": 5},
}


class NullModem:
    """Two ptys whose masters are copied into each other: open one slave at each end."""

    def __init__(self) -> None:
        self.fds = [os.openpty(), os.openpty()]
        self.paths = []
        for master, slave in self.fds:
            tty.setraw(slave)
            os.set_blocking(master, False)
            self.paths.append(os.ttyname(slave))
        loop = asyncio.get_running_loop()
        a, b = self.fds[0][0], self.fds[1][0]
        loop.add_reader(a, self._copy, a, b)
        loop.add_reader(b, self._copy, b, a)

    @staticmethod
    def _copy(src: int, dst: int) -> None:
        try:
            os.write(dst, os.read(src, 4096))
        except OSError:
            pass

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for master, slave in self.fds:
            loop.remove_reader(master)
            os.close(master)
            os.close(slave)


async def test_rtu_over_a_serial_line() -> None:
    modem = NullModem()
    fields = {k: RegisterField.model_validate(v) for k, v in MAP.items()}
    server = RegisterServer(fields, serial_port=modem.paths[0], device_id=7)
    server.values.update({"spindle.rpm": 1200.0, "position.machine.X": -42.25, "door_open": True})
    await server.start()
    try:
        url = f"rtu://{modem.paths[1]}?baudrate=19200&parity=N&stopbits=1&bytesize=8"
        state = MachineState("lathe-1")
        source = ModbusSource("lathe-1", ModbusConnection(url=url, device_id=7, map=MAP, poll_hz=10, timeout=1.0),
                              state)
        await source.start()
        await source.stop()
        assert source.fault is None, source.fault
        assert state.spindle_rpm == pytest.approx(1200.0)
        assert state.position_machine == {"X": -42.25}
        assert "D" in state.pins
    finally:
        await server.stop()
        modem.close()
