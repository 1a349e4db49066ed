"""Entry point of the ``labbridge`` console script.

Commands live in their own modules (``labbridge/cli/<name>.py``), each with a
``register(app, sim_app)`` function. Exit codes are a contract: 0 ok, 1 the
program has errors, 2 usage/config/unreadable input, 3 controller error or lost
connection (``stream``).
"""

from __future__ import annotations

import importlib
import sys

import typer

from labbridge.cli.common import fail
from labbridge.errors import LabbridgeError

COMMAND_MODULES = (
    "labbridge.cli.sim_grbl",
    "labbridge.cli.machines",
    "labbridge.cli.check",
    "labbridge.cli.stream",
    "labbridge.cli.serve",
    "labbridge.cli.state",
    "labbridge.cli.dnc",
    "labbridge.cli.fanuc_sim",
)

app = typer.Typer(
    name="labbridge",
    help="Machine-control bridge for the InfoMobil mobile CNC lab.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
sim_app = typer.Typer(help="Run a simulated controller speaking the real wire protocol.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app, sim_app)


def run() -> None:
    """Console-script entry: a person sees a one-line message, never a traceback."""
    try:
        app(standalone_mode=True)
    except LabbridgeError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    run()
