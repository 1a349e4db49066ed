"""Interoperability with an independent Modbus implementation: Debian's libmodbus (C), through ctypes.

Our driver reads a libmodbus TCP server; a libmodbus client reads our simulator's
server. Needs the libmodbus5 package (installed by .ci/run); skipped with a reason
if the library is absent.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import socket
import threading

import pytest

from labbridge.config import ModbusConnection, RegisterField
from labbridge.drivers.sources.modbus import ModbusSource
from labbridge.sim.modbus_server import RegisterServer
from labbridge.model import MachineState


def _load() -> ctypes.CDLL | None:
    for name in (ctypes.util.find_library("modbus"), "libmodbus.so.5"):
        if name:
            try:
                return ctypes.CDLL(name)
            except OSError:
                continue
    return None


LIB = _load()
pytestmark = pytest.mark.skipif(LIB is None, reason="libmodbus (Debian package libmodbus5) is not installed")


class Mapping(ctypes.Structure):
    _fields_ = [
        ("nb_bits", ctypes.c_int), ("start_bits", ctypes.c_int),
        ("nb_input_bits", ctypes.c_int), ("start_input_bits", ctypes.c_int),
        ("nb_input_registers", ctypes.c_int), ("start_input_registers", ctypes.c_int),
        ("nb_registers", ctypes.c_int), ("start_registers", ctypes.c_int),
        ("tab_bits", ctypes.POINTER(ctypes.c_uint8)), ("tab_input_bits", ctypes.POINTER(ctypes.c_uint8)),
        ("tab_input_registers", ctypes.POINTER(ctypes.c_uint16)), ("tab_registers", ctypes.POINTER(ctypes.c_uint16)),
    ]


def _setup() -> None:
    assert LIB is not None
    LIB.modbus_new_tcp.restype = ctypes.c_void_p
    LIB.modbus_new_tcp.argtypes = [ctypes.c_char_p, ctypes.c_int]
    LIB.modbus_mapping_new_start_address.restype = ctypes.POINTER(Mapping)
    LIB.modbus_mapping_new_start_address.argtypes = [ctypes.c_uint] * 8
    for name in ("modbus_tcp_listen", "modbus_connect", "modbus_close", "modbus_free", "modbus_receive",
                 "modbus_reply", "modbus_tcp_accept", "modbus_read_registers", "modbus_read_input_registers",
                 "modbus_read_input_bits", "modbus_set_slave"):
        getattr(LIB, name).restype = ctypes.c_int
    LIB.modbus_tcp_listen.argtypes = [ctypes.c_void_p, ctypes.c_int]
    LIB.modbus_tcp_accept.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
    LIB.modbus_receive.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8)]
    LIB.modbus_reply.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8), ctypes.c_int, ctypes.POINTER(Mapping)]
    LIB.modbus_connect.argtypes = [ctypes.c_void_p]
    LIB.modbus_close.argtypes = [ctypes.c_void_p]
    LIB.modbus_free.argtypes = [ctypes.c_void_p]
    LIB.modbus_set_slave.argtypes = [ctypes.c_void_p, ctypes.c_int]
    for name in ("modbus_read_registers", "modbus_read_input_registers"):
        getattr(LIB, name).argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_uint16)]
    LIB.modbus_read_input_bits.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_uint8)]


if LIB is not None:
    _setup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_one_client(port: int, mapping: ctypes.POINTER(Mapping), ready: threading.Event) -> None:  # type: ignore[valid-type]
    """A libmodbus TCP server for one connection (ends when the client disconnects)."""
    ctx = LIB.modbus_new_tcp(b"127.0.0.1", port)
    listen = LIB.modbus_tcp_listen(ctx, 1)
    ready.set()
    sock = ctypes.c_int(listen)
    LIB.modbus_tcp_accept(ctx, ctypes.byref(sock))
    query = (ctypes.c_uint8 * 260)()
    while True:
        rc = LIB.modbus_receive(ctx, query)
        if rc > 0:
            LIB.modbus_reply(ctx, query, rc, mapping)
        elif rc == -1:
            break
    socket.socket(fileno=listen).close()
    LIB.modbus_close(ctx)
    LIB.modbus_free(ctx)


async def test_our_driver_reads_a_libmodbus_server() -> None:
    mapping = LIB.modbus_mapping_new_start_address(0, 8, 0, 8, 0x2100, 8, 100, 6)
    m = mapping.contents
    m.tab_registers[3] = 3000  # 0x2103: 30.00 Hz -> 1800 rpm
    m.tab_registers[4] = 350  # 0x2104
    m.tab_input_registers[0], m.tab_input_registers[1] = 0x0000, 12500  # X 12.5 (int32, big word order)
    m.tab_input_registers[2], m.tab_input_registers[3] = 0x8AD0, 0xFFFF  # Z -30.0 (int32, little word order)
    m.tab_input_bits[5] = 1
    port = free_port()
    ready = threading.Event()
    thread = threading.Thread(target=serve_one_client, args=(port, mapping, ready), daemon=True)
    thread.start()
    assert await asyncio.to_thread(ready.wait, 10)
    conn = ModbusConnection(url=f"tcp://127.0.0.1:{port}", poll_hz=10, timeout=1.0, map={
        "spindle.rpm": {"table": "holding", "address": 0x2103, "scale": 0.6},
        "spindle.load": {"table": "holding", "address": 0x2104, "scale": 0.1},
        "position.machine.X": {"table": "input", "address": 100, "type": "int32", "scale": 0.001},
        "position.machine.Z": {"table": "input", "address": 102, "type": "int32", "scale": 0.001,
                               "word_order": "little"},
        "door_open": {"table": "discrete", "address": 5},
    })
    state = MachineState("lathe-1")
    src = ModbusSource("lathe-1", conn, state)
    await src.start()
    await src.stop()
    await asyncio.to_thread(thread.join, 10)
    assert src.fault is None
    assert state.spindle_rpm == pytest.approx(1800.0) and state.spindle_load == pytest.approx(35.0)
    assert state.position_machine == {"X": 12.5, "Z": -30.0}
    assert "D" in state.pins


async def test_a_libmodbus_client_reads_our_simulated_plc() -> None:
    fields = {
        "spindle.rpm": RegisterField(table="holding", address=0x2103, scale=0.6),
        "position.machine.Z": RegisterField(table="input", address=102, type="int32", scale=0.001),
        "door_open": RegisterField(table="discrete", address=5),
    }
    server = RegisterServer(fields, provider=lambda: {"spindle.rpm": 1800.0, "position.machine.Z": -30.0,
                                                      "door_open": True})
    await server.start()
    try:
        def read() -> tuple[list[int], list[int], list[int]]:
            ctx = LIB.modbus_new_tcp(b"127.0.0.1", server.port)
            LIB.modbus_set_slave(ctx, 1)
            assert LIB.modbus_connect(ctx) == 0
            try:
                holding = (ctypes.c_uint16 * 1)()
                inputs = (ctypes.c_uint16 * 2)()
                bits = (ctypes.c_uint8 * 1)()
                assert LIB.modbus_read_registers(ctx, 0x2103, 1, holding) == 1
                assert LIB.modbus_read_input_registers(ctx, 102, 2, inputs) == 2
                assert LIB.modbus_read_input_bits(ctx, 5, 1, bits) == 1
                return list(holding), list(inputs), list(bits)
            finally:
                LIB.modbus_close(ctx)
                LIB.modbus_free(ctx)

        holding, inputs, bits = await asyncio.to_thread(read)
        assert holding == [3000]
        assert inputs == [0xFFFF, 0x8AD0]  # -30000 as a big-endian int32
        assert bits == [1]
    finally:
        await server.stop()
