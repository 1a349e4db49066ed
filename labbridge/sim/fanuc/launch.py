"""Start a simulated Fanuc-style machine: the control, its DNC tape reader on a pty, and its PLC or OPC UA server.

The lathe gets a Modbus PLC (:mod:`labbridge.sim.fanuc.modbus_plc`), the mill an OPC UA
server (:mod:`labbridge.sim.fanuc.opcua_server`); both follow one :class:`SimControl`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from labbridge.config import Machine
from labbridge.sim.fanuc.control import DncPort, SimControl


@dataclass
class FanucSimHandle:
    """A running simulator: endpoints to point drivers at, and the sim itself for tests and the demo."""

    machine_id: str
    machine: Machine  # the config machine with its connection pointed at the simulator
    sim: SimControl
    dnc: DncPort
    dnc_port: str
    modbus_url: str | None = None
    opcua_url: str | None = None
    servers: list[Any] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    @property
    def connection_overrides(self) -> Any:
        """The ``Connection`` to use instead of the config's (dnc.port, modbus.url, opcua.url replaced)."""
        return self.machine.connection

    def endpoints(self) -> dict[str, str | None]:
        return {"dnc": self.dnc_port, "modbus": self.modbus_url, "opcua": self.opcua_url}

    # The simulated control's panel: what an operator at the machine presses. A dry run holds and resumes
    # its twin here when the machine's status link declares no stop register (OPC UA is read-only).
    def feed_hold(self) -> None:
        self.sim.feed_hold()

    def cycle_start(self) -> None:
        self.sim.cycle_start()

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass
        for server in reversed(self.servers):
            try:
                await server.stop()
            except Exception:
                pass
        self.dnc.close()

    async def __aenter__(self) -> FanucSimHandle:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


async def _run(sim: SimControl, port: DncPort, tick: float) -> None:
    loop = asyncio.get_running_loop()
    last = loop.time()
    while True:
        await asyncio.sleep(tick)
        now = loop.time()
        sim.step(now - last)
        port.tick(now - last)
        last = now


async def start_fanuc_sim(
    machine_id: str,
    machine: Machine,
    *,
    time_scale: float = 1.0,
    buffer_bytes: int = 256,
    tv_check: bool | None = None,
    send_dc1: bool = True,
    modbus: bool | None = None,
    opcua: bool | None = None,
    opcua_port: int = 0,
    modbus_port: int = 0,
    opcua_users: dict[str, str] | None = None,
    alarm_hold: float = 10.0,
    tick: float = 0.02,
) -> FanucSimHandle:
    """Start the simulator for a fanuc-lathe (DNC + Modbus) or fanuc-mill (DNC + OPC UA) on 127.0.0.1.

    ``modbus``/``opcua`` default to what the machine's config has (a lathe always gets
    Modbus, a mill OPC UA). Returns once every endpoint accepts connections.
    """
    from labbridge.config import Connection, DncConnection, ModbusConnection, OpcUaConnection

    dnc_cfg = machine.connection.dnc or DncConnection(port="unset")
    sim = SimControl(machine_id, machine, time_scale=time_scale, buffer_bytes=buffer_bytes, alarm_hold=alarm_hold)
    port = DncPort(sim, tv_check=dnc_cfg.tv_check if tv_check is None else tv_check, send_dc1=send_dc1)
    handle = FanucSimHandle(machine_id, machine, sim, port, port.path)
    conn_updates: dict[str, Any] = {"dnc": dnc_cfg.model_copy(update={"port": port.path})}
    try:
        want_modbus = modbus if modbus is not None else (machine.is_lathe or machine.connection.modbus is not None)
        want_opcua = opcua if opcua is not None else (not machine.is_lathe or machine.connection.opcua is not None)
        if want_modbus:
            from labbridge.sim.fanuc.modbus_plc import start_modbus_server

            server, cfg = await start_modbus_server(sim, machine.connection.modbus, port=modbus_port)
            handle.servers.append(server)
            handle.modbus_url = server.url
            conn_updates["modbus"] = cfg
        if want_opcua:
            from labbridge.sim.fanuc.opcua_server import start_opcua_server

            server, cfg = await start_opcua_server(sim, machine.connection.opcua, port=opcua_port, users=opcua_users)
            handle.servers.append(server)
            handle.opcua_url = server.url
            conn_updates["opcua"] = cfg
    except BaseException:
        await handle.close()
        raise
    connection = Connection.model_validate({**machine.connection.model_dump(), **{
        k: (v.model_dump() if isinstance(v, (DncConnection, ModbusConnection, OpcUaConnection)) else v)
        for k, v in conn_updates.items()}})
    handle.machine = machine.model_copy(update={"connection": connection})
    handle.task = asyncio.create_task(_run(sim, port, tick), name=f"fanuc-sim-{machine_id}")
    return handle
