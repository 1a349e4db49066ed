"""The Driver for Fanuc-style machines: live state from Modbus and/or OPC UA, programs by DNC.

A Fanuc-style control has no single status channel like GRBL's ``?``: the PLC or
spindle drive answers over Modbus, the control itself over OPC UA. This driver
starts whichever the config declares and merges them into one MachineState.
Programs go by DNC, a separate serial link the DNC job runner (``labbridge.streaming.dnc_runner``) opens;
``port`` here overrides the config's DNC port for it.
"""

from __future__ import annotations

from typing import Any

from labbridge.config import Machine
from labbridge.drivers.base import Unsupported
from labbridge.log import get_logger
from labbridge.model import MachineState, Status


class FanucDriver:
    """``connect()`` starts the status sources and returns once each has tried once."""

    def __init__(self, machine_id: str, machine: Machine, port: str | None = None) -> None:
        self.machine_id = machine_id
        self.config = machine
        self.port = port  # DNC port override (see dnc_port)
        self.state = MachineState(machine_id)
        self.log = get_logger(machine=machine_id).bind(driver="fanuc")
        self._links: dict[str, tuple[bool, str | None]] = {}
        self.sources: list[Any] = []
        conn = machine.connection
        if conn.modbus is not None:
            from labbridge.drivers.sources.modbus import ModbusSource

            self.sources.append(ModbusSource(machine_id, conn.modbus, self.state, on_link=self._on_link))
        if conn.opcua is not None:
            from labbridge.drivers.sources.opcua import OpcUaSource

            self.sources.append(OpcUaSource(machine_id, conn.opcua, self.state, on_link=self._on_link))

    def dnc_port(self) -> str | None:
        """Where the job runner sends tapes: the override given at construction, else connection.dnc.port."""
        dnc = self.config.connection.dnc
        return self.port or (dnc.port if dnc is not None else None)

    @property
    def reconnects(self) -> bool:
        """The Modbus and OPC UA sources reconnect by themselves once started."""
        return True

    def diagnostics(self) -> dict[str, Any]:
        """Each status source's link, and where programs go (DNC)."""
        dnc = self.config.connection.dnc
        return {
            "link": {
                "sources": {name: {"up": up, "fault": fault} for name, (up, fault) in self._links.items()},
                "dnc_port": self.port or (dnc.port if dnc is not None else None),
            },
        }

    def _on_link(self, name: str, up: bool, fault: str | None) -> None:
        self._links[name] = (up, fault)
        ups = [ok for ok, _ in self._links.values()]
        faults = [f for _, f in self._links.values() if f]
        connected = any(ups)
        changes: dict[str, Any] = {"connected": connected, "fault": "; ".join(faults) or None}
        if not connected:
            changes.update(state=Status.DISCONNECTED)
        elif self.state.state == Status.DISCONNECTED:
            changes.update(state=Status.UNKNOWN)  # until a state value arrives
        self.state.update(**changes)

    async def connect(self) -> None:
        if not self.sources:
            self.state.update(
                connected=False,
                state=Status.UNKNOWN,
                fault="no live status source: add connection.modbus or connection.opcua to see this machine's state",
            )
            return
        self.state.update(firmware=f"Fanuc-style ({', '.join(s.name for s in self.sources)})")
        for source in self.sources:
            await source.start()

    async def close(self) -> None:
        for source in self.sources:
            await source.stop()
        self._links.clear()
        self.state.mark_disconnected()

    async def feed_hold(self) -> None:
        """Write the map's feed_hold register (or spindle_stop if that is all it has)."""
        from labbridge.drivers.sources.modbus import ModbusSource

        for action in ("feed_hold", "spindle_stop"):
            for source in self.sources:
                if isinstance(source, ModbusSource) and action in source.fields:
                    await source.write_action(action)
                    return
        raise Unsupported(
            f"{self.machine_id}: no stop register is declared (add feed_hold: {{table: coil, address: N}} to "
            "connection.modbus.map and set writable: true); use the FEED HOLD button on the control"
        )
