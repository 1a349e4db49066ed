"""``labbridge state ID [--config PATH] [--json] [--watch]``: connect with the machine's drivers, print its state.

``--json`` prints one object (the MachineState shape, fields a machine does not
provide are null) and exits: 0 when connected, 3 when the machine cannot be
reached (the object is still printed, with ``connected: false`` and ``fault``).
``--watch`` redraws until Ctrl-C; with ``--json`` it prints one object per line.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from labbridge.cli.common import EXIT_CONTROLLER, EXIT_OK, ConfigOption, load_machine
from labbridge.cli.owner import claim
from labbridge.errors import LabbridgeError
from labbridge.model import MachineState


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") + unit
    return f"{value}{unit}"


def render(state: MachineState) -> Table:
    d = state.to_dict()
    table = Table(title=f"{d['machine']}: {d['state']}" + ("" if d["connected"] else " (not connected)"),
                  show_header=False)
    table.add_column("field")
    table.add_column("value")
    for frame in ("machine", "work"):
        pos = d["position"][frame]
        table.add_row(f"position ({frame})", "  ".join(f"{a} {_fmt(v)}" for a, v in pos.items()) if pos else "—")
    sp = d["spindle"]
    table.add_row("spindle", f"{_fmt(sp['rpm'], ' rpm')}  load {_fmt(sp['load'], ' %')}  {sp['direction'] or ''}")
    table.add_row("feed", _fmt(d["feed"], " mm/min"))
    ov = d["overrides"]
    table.add_row("overrides", f"feed {_fmt(ov['feed'], '%')}  rapid {_fmt(ov['rapid'], '%')}  "
                               f"spindle {_fmt(ov['spindle'], '%')}")
    table.add_row("program", f"{d['program_name'] or '—'}  line {_fmt(d['line_number'])}")
    table.add_row("alarms", "; ".join(f"{a['code']}: {a['message']}" for a in d["alarms"]) or "none")
    if d["fault"]:
        table.add_row("fault", d["fault"])
    return table


async def _state(machine_id: str, machine: Any, as_json: bool, watch: bool) -> int:
    from labbridge.drivers.factory import create_driver

    try:
        driver = create_driver(machine_id, machine)
    except ImportError as exc:
        sys.stderr.write(f"labbridge: no driver for {machine_id} ({machine.controller}) in this install: {exc}\n")
        return EXIT_CONTROLLER
    try:
        try:
            await driver.connect()
        except LabbridgeError as exc:
            driver.state.mark_disconnected(str(exc))
        state = driver.state
        if not watch:
            if as_json:
                typer.echo(json.dumps(state.to_dict()))
            else:
                Console().print(render(state))
            if not state.connected:
                sys.stderr.write(f"labbridge: {machine_id} is not connected: {state.fault or 'no answer'}\n")
                return EXIT_CONTROLLER
            return EXIT_OK
        changed = asyncio.Event()
        unsubscribe = state.subscribe(lambda _s, _names: changed.set())
        try:
            if as_json:
                while True:
                    typer.echo(json.dumps(state.to_dict()))
                    await changed.wait()
                    changed.clear()
                    await asyncio.sleep(0.1)  # coalesce bursts: at most ten lines a second
            with Live(render(state), refresh_per_second=8, console=Console()) as live:
                while True:
                    try:
                        await asyncio.wait_for(changed.wait(), 1.0)
                    except asyncio.TimeoutError:
                        pass
                    changed.clear()
                    live.update(render(state))
        finally:
            unsubscribe()
    finally:
        await driver.close()


def register(app: typer.Typer, sim_app: typer.Typer) -> None:
    @app.command("state")
    def state(
        machine_id: Annotated[str, typer.Argument(metavar="ID", help="Machine id from the config, e.g. lathe-1.")],
        config: ConfigOption = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object and exit.")] = False,
        watch: Annotated[bool, typer.Option("--watch", help="Redraw live until Ctrl-C.")] = False,
    ) -> None:
        """Connect with the machine's drivers and print its live state."""
        mid, machine = load_machine(config, machine_id)
        if machine.connection.serial is not None:  # opening a GRBL port resets it: only its owner may
            claim(mid, machine.connection.serial.port)
        try:
            code = asyncio.run(_state(mid, machine, as_json, watch))
        except KeyboardInterrupt:
            code = EXIT_OK
        raise typer.Exit(code)
