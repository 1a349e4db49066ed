"""Simulators of every controller kind, speaking the real protocols over real channels (pty, TCP).

``make demo`` and the tests run the whole lab on these. They follow the real
controllers' source and documents (GRBL 1.1h's ``grbl/*.c``, Fanuc's DNC and
PLC conventions, OPC 40501/40502), not labbridge's model of them.

Import rule: nothing outside ``labbridge.sim``, ``labbridge.cli`` and the tests
imports this package. The server receives :func:`start_simulator` from the CLI
(``serve --demo``) as a plain callable, so the drivers and the server stay
ignorant of simulators. The simulators themselves may import anything below the
server (config, model, protocols, safety, and ``drivers.field_map`` for the
machine's own Modbus map), never the server or the CLI.
"""

from __future__ import annotations

from typing import Any

from labbridge.config import Machine


async def start_simulator(machine_id: str, machine: Machine, **options: Any) -> tuple[Any, Machine]:
    """Start the simulator for ``machine``; return its handle (``await handle.close()``) and the
    machine config whose connection points at it."""
    if machine.controller == "grbl":
        from labbridge.sim.grbl.port import start_grbl_sim

        handle = await start_grbl_sim(machine_id, machine, **options)
        from labbridge.config import SerialConnection

        serial = machine.connection.serial
        pointed = serial.model_copy(update={"port": handle.port}) if serial else SerialConnection(port=handle.port)
        connection = machine.connection.model_copy(update={"serial": pointed})
        return handle, machine.model_copy(update={"connection": connection})
    from labbridge.sim.fanuc.launch import start_fanuc_sim

    fanuc = await start_fanuc_sim(machine_id, machine, **options)
    return fanuc, fanuc.machine
