"""``labbridge machines``: list the lab's machines and their limits."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from labbridge.cli.common import ConfigOption, load_lab


def register(app: typer.Typer, sim_app: typer.Typer) -> None:
    @app.command("machines")
    def machines(config: ConfigOption = None, as_json: bool = typer.Option(False, "--json")) -> None:
        """List the machines in the config with their controller and envelope."""
        lab = load_lab(config)
        if as_json:
            out = {mid: m.model_dump(mode="json") for mid, m in lab.machines.items()}
            typer.echo(json.dumps(out, indent=2))
            return
        table = Table(title="InfoMobil lab machines")
        for column in ("id", "name", "controller", "envelope (mm)", "max feed", "max rpm"):
            table.add_column(column)
        for mid, m in lab.machines.items():
            env = "  ".join(f"{a} {lo:g}..{hi:g}" for a, (lo, hi) in m.envelope.items())
            table.add_row(mid, m.name, m.controller, env, f"{m.max_feed:g}", f"{m.spindle.max_rpm:g}")
        Console().print(table)
