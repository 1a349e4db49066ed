"""The Modbus status source against a real pymodbus TCP server on 127.0.0.1, faults included."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymodbus.constants import ExcCodes

from labbridge.config import ModbusConnection, RegisterField
from labbridge.drivers.base import Unsupported
from labbridge.drivers.sources.modbus import ModbusSource, parse_url
from labbridge.sim.modbus_server import RegisterServer
from labbridge.errors import ConfigError
from labbridge.model import MachineState, Status
from tests.conftest import wait_for

MAP: dict[str, dict[str, Any]] = {
    "spindle.rpm": {"table": "holding", "address": 0x2103, "type": "uint16", "scale": 0.6},
    "spindle.load": {"table": "holding", "address": 0x2104, "type": "uint16", "scale": 0.1},
    "position.machine.X": {"table": "input", "address": 100, "type": "int32", "scale": 0.001},
    "position.machine.Z": {"table": "input", "address": 102, "type": "int32", "scale": 0.001, "word_order": "little"},
    "feed": {"table": "input", "address": 104, "type": "float32"},
    "overrides.feed": {"table": "input", "address": 106, "type": "int16"},
    "state": {"table": "holding", "address": 10, "values": {0: "Idle", 1: "Run", 2: "Hold", 3: "Alarm"}},
    "alarm": {"table": "holding", "address": 11},
    "door_open": {"table": "discrete", "address": 5},
    "homed": {"table": "coil", "address": 3},
    "feed_hold": {"table": "coil", "address": 0, "write_value": 1},
}
VALUES = {"spindle.rpm": 1800.0, "spindle.load": 35.0, "position.machine.X": 12.5, "position.machine.Z": -30.0,
          "feed": 120.0, "overrides.feed": 90, "state": "Run", "alarm": 0, "door_open": True, "homed": True}


@pytest.fixture
async def server():
    fields = {k: RegisterField.model_validate(v) for k, v in MAP.items()}
    srv = RegisterServer(fields)
    srv.values.update(VALUES)
    await srv.start()
    yield srv
    await srv.stop()


def source_for(url: str, state: MachineState, links: list | None = None, **kw: Any) -> ModbusSource:
    conn = ModbusConnection(url=url, map=kw.pop("map", MAP), poll_hz=20, timeout=0.5, **kw)
    return ModbusSource("lathe-1", conn, state, on_link=(lambda *a: links.append(a)) if links is not None else None,
                        max_backoff=0.5)


async def test_every_type_lands_in_machine_state_in_one_update(server: RegisterServer) -> None:
    state = MachineState("lathe-1")
    notes = []
    state.subscribe(lambda s, names: notes.append(names))
    src = source_for(server.url, state)
    await src.start()
    try:
        assert src.up and src.fault is None
        d = state.to_dict()
        assert d["state"] == "Run"
        assert d["position"]["machine"] == {"X": 12.5, "Z": -30.0}
        assert d["spindle"]["rpm"] == pytest.approx(1800.0, abs=0.6) and d["spindle"]["load"] == pytest.approx(35.0)
        assert d["feed"] == pytest.approx(120.0) and d["overrides"]["feed"] == 90
        assert d["pins"] == ["D"] and d["homed"] is True and d["alarms"] == []
        assert len(notes[0]) >= 8, "one poll is one notification"
        server.values.update({"alarm": 1042, "state": "Alarm", "door_open": False})
        await wait_for(lambda: state.state == Status.ALARM and state.alarms)
        assert state.alarms[0].code == "1042" and state.alarms[0].source == "modbus"
        assert "D" not in state.pins
        server.values["alarm"] = 0
        await wait_for(lambda: not state.alarms)
    finally:
        await src.stop()


async def test_exception_responses_become_a_fault_naming_the_exception(server: RegisterServer) -> None:
    state = MachineState("lathe-1")
    src = source_for(server.url, state)
    await src.start()
    try:
        server.fail_with = ExcCodes.DEVICE_FAILURE
        await wait_for(lambda: src.fault is not None)
        assert "exception 4 (SERVER DEVICE FAILURE)" in src.fault
        assert state.state == Status.UNKNOWN and src.up
        server.fail_with = None
        await wait_for(lambda: src.fault is None and state.state == Status.RUN)
    finally:
        await src.stop()


async def test_a_register_the_device_does_not_have_is_illegal_data_address(server: RegisterServer) -> None:
    state = MachineState("lathe-1")
    bad_map = {**MAP, "line_number": {"table": "holding", "address": 9000}}
    src = source_for(server.url, state, map=bad_map)
    await src.start()
    try:
        assert src.fault is not None and "exception 2 (ILLEGAL DATA ADDRESS) reading holding 0x2328" in src.fault
        assert state.spindle_rpm is not None, "the other blocks are still read"
    finally:
        await src.stop()


async def test_server_killed_mid_poll_then_back_recovers_with_backoff(server: RegisterServer) -> None:
    state = MachineState("lathe-1")
    links: list = []
    src = source_for(server.url, state, links)
    await src.start()
    try:
        assert links[-1][1] is True
        await server.stop()
        await wait_for(lambda: not src.up)
        assert "stopped answering" in src.fault or "cannot connect" in src.fault
        await wait_for(lambda: src.failures >= 3)
        assert src._task is not None and not src._task.done(), "the poller keeps going"
        await server.start()  # same port
        await wait_for(lambda: src.up and src.fault is None)
        assert links[-1] == ("modbus", True, None)
    finally:
        await src.stop()


async def test_a_device_that_never_answers_times_out_instead_of_hanging() -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        await asyncio.sleep(30)

    mute = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = mute.sockets[0].getsockname()[1]
    state = MachineState("lathe-1")
    src = source_for(f"tcp://127.0.0.1:{port}", state)
    try:
        await src.start()
        assert not src.up and "stopped answering" in (src.fault or "")
    finally:
        await src.stop()
        mute.close()


async def test_stop_writes_only_when_allowed(server: RegisterServer) -> None:
    actions: list[str] = []
    server.on_action = actions.append
    state = MachineState("lathe-1")
    read_only = source_for(server.url, state)
    await read_only.start()
    try:
        with pytest.raises(Unsupported, match="writable: true"):
            await read_only.write_action("feed_hold")
        with pytest.raises(Unsupported, match="no spindle_stop register"):
            await read_only.write_action("spindle_stop")
    finally:
        await read_only.stop()
    assert server.writes == []
    writable = source_for(server.url, state, writable=True)
    await writable.start()
    try:
        await writable.write_action("feed_hold")
        assert server.writes == [("coil", 0, [True])] and actions == ["feed_hold"]
    finally:
        await writable.stop()


def test_urls() -> None:
    assert str(parse_url("tcp://127.0.0.1:1502")) == "tcp://127.0.0.1:1502"
    rtu = parse_url("rtu:///dev/ttyUSB2?baudrate=9600&parity=N&stopbits=2")
    assert rtu.kind == "rtu" and rtu.host == "/dev/ttyUSB2" and rtu.serial["baudrate"] == 9600
    for bad in ("udp://x", "rtu:///dev/x?speed=1", "tcp://"):
        with pytest.raises(ConfigError, match="Modbus url"):
            parse_url(bad)


async def test_a_device_answering_garbage_is_a_fault_not_a_crash() -> None:
    async def babble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(1 << 16):
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n\x00\xff\x13")
            await writer.drain()

    noisy = await asyncio.start_server(babble, "127.0.0.1", 0)
    port = noisy.sockets[0].getsockname()[1]
    state = MachineState("lathe-1")
    src = source_for(f"tcp://127.0.0.1:{port}", state)
    try:
        await src.start()
        await wait_for(lambda: src.failures >= 2)
        assert not src.up and src.fault and "127.0.0.1" in src.fault
        assert src._task is not None and not src._task.done()
    finally:
        await src.stop()
        noisy.close()
