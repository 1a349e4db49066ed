"""``labbridge dnc-receive --machine ID OUTFILE``: save a program the control punches out (a backup)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer

from labbridge.cli.common import EXIT_CONTROLLER, ConfigOption, MachineOption, fail, load_machine
from labbridge.errors import ConfigError, LabbridgeError


def register(app: typer.Typer, sim_app: typer.Typer) -> None:
    @app.command("dnc-receive")
    def dnc_receive(
        outfile: Annotated[Path, typer.Argument(help="Where to save the program (written only when complete).")],
        machine: MachineOption,
        config: ConfigOption = None,
        port: Annotated[str | None, typer.Option("--port", help="Serial port instead of the config's.")] = None,
        timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the punch-out to start.")]
        = 120.0,
    ) -> None:
        """Wait for the control to punch out a program (EDIT mode, PUNCH) and save it to OUTFILE."""
        from labbridge.streaming.dnc_transfer import receive_dnc

        mid, m = load_machine(config, machine)
        sys.stderr.write(f"waiting for {mid} to punch out a program (start PUNCH on the control)…\n")
        try:
            received = asyncio.run(
                receive_dnc(mid, m, outfile, port=port, start_timeout=timeout,
                            on_started=lambda: sys.stderr.write("receiving…\n"))
            )
        except ConfigError as exc:
            fail(str(exc))
        except LabbridgeError as exc:
            fail(str(exc), EXIT_CONTROLLER)
        except KeyboardInterrupt:
            fail("interrupted: nothing saved", 130)
        typer.echo(f"saved {received.blocks} blocks to {outfile}")
