"""The simulated lathe's PLC: a Modbus TCP server whose registers follow :class:`SimControl`.

The register layout is the machine's own map from machines.yaml (profile included),
so the driver under test decodes exactly what a real installation would configure.
"""

from __future__ import annotations

from typing import Any

from labbridge.config import ModbusConnection, RegisterField
from labbridge.sim.fanuc.control import SimControl
from labbridge.drivers.field_map import effective_map
from labbridge.sim.modbus_server import RegisterServer

DEFAULT_LATHE_MAP: dict[str, dict[str, Any]] = {
    "state": {"table": "holding", "address": 10, "values": {0: "Idle", 1: "Run", 2: "Hold", 3: "Alarm"}},
    "alarm": {"table": "holding", "address": 11},
    "spindle.rpm": {"table": "holding", "address": 0x2103, "scale": 0.6},
    "spindle.load": {"table": "holding", "address": 0x2104, "scale": 0.1},
    "position.machine.X": {"table": "input", "address": 100, "type": "int32", "scale": 0.001},
    "position.machine.Z": {"table": "input", "address": 102, "type": "int32", "scale": 0.001},
    "door_open": {"table": "discrete", "address": 5},
    "feed_hold": {"table": "coil", "address": 0, "write_value": 1},
}


async def start_modbus_server(
    sim: SimControl, config: ModbusConnection | None, *, port: int = 0
) -> tuple[RegisterServer, ModbusConnection]:
    """Serve the sim on 127.0.0.1; returns the server and the ModbusConnection that reaches it."""
    if config is None:
        config = ModbusConnection(url="tcp://127.0.0.1:502", map=DEFAULT_LATHE_MAP, poll_hz=4)
    fields: dict[str, RegisterField] = effective_map(config, sim.machine_id)

    def action(name: str) -> None:
        if name == "feed_hold":
            sim.feed_hold()
        elif name == "spindle_stop":
            sim.spindle_stop()

    server = RegisterServer(fields, provider=sim.snapshot, on_action=action, port=port)
    await server.start()
    return server, config.model_copy(update={"url": server.url})
