"""``labbridge sim lathe`` and ``labbridge sim mill2``: Fanuc-style controls on a pty plus Modbus/OPC UA.

Prints the endpoints (and the connection block to put in a test config), then
runs until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from labbridge.cli.common import ConfigOption, load_machine


async def _serve(machine_id: str, machine, time_scale: float, modbus_port: int, opcua_port: int) -> None:
    from labbridge.sim.fanuc.launch import start_fanuc_sim

    handle = await start_fanuc_sim(machine_id, machine, time_scale=time_scale, modbus_port=modbus_port,
                                   opcua_port=opcua_port)
    try:
        typer.echo(f"simulating {machine_id} ({machine.controller}); Ctrl-C to stop")
        for name, url in handle.endpoints().items():
            if url:
                typer.echo(f"  {name:7s} {url}")
        typer.echo("connection (for a test copy of machines.yaml):")
        typer.echo("  " + json.dumps(handle.machine.connection.model_dump(mode="json", exclude_none=True)))
        await asyncio.Event().wait()
    finally:
        await handle.close()


def _command(default_id: str, controller: str):
    def command(
        machine: Annotated[str, typer.Option("--machine", "-m", help="Machine id from the config.")] = default_id,
        config: ConfigOption = None,
        time_scale: Annotated[float, typer.Option("--time-scale", help="Run this many times faster.")] = 1.0,
        modbus_port: Annotated[int, typer.Option("--modbus-port", help="0 picks a free port.")] = 0,
        opcua_port: Annotated[int, typer.Option("--opcua-port", help="0 picks a free port.")] = 0,
    ) -> None:
        mid, m = load_machine(config, machine)
        if m.controller != controller:
            from labbridge.cli.common import fail

            fail(f"{mid} is a {m.controller} machine; this simulator plays a {controller}")
        try:
            asyncio.run(_serve(mid, m, time_scale, modbus_port, opcua_port))
        except KeyboardInterrupt:
            pass

    return command


def register(app: typer.Typer, sim_app: typer.Typer) -> None:
    sim_app.command("lathe", help="A Fanuc-style lathe: DNC on a pty plus a Modbus TCP PLC.")(
        _command("lathe-1", "fanuc-lathe"))
    sim_app.command("mill2", help="A Fanuc-style mill: DNC on a pty plus an OPC UA server (40501/40502).")(
        _command("mill-2", "fanuc-mill"))
