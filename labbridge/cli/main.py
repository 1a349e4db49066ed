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

from labbridge.cli.common import EXIT_USAGE, fail
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
    "labbridge.cli.jobs",
    "labbridge.cli.fleet",
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
    """Console-script entry: a person sees a one-line message, never a traceback (usage errors exit 2)."""
    try:
        code = app(prog_name="labbridge", standalone_mode=False)
    except LabbridgeError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        _interrupted()
    except Exception as exc:  # the CLI toolkit's own errors, matched by shape (typer vendors its click)
        _toolkit_error(exc)
    sys.exit(code if isinstance(code, int) else 0)


def _interrupted() -> None:
    sys.stderr.write("labbridge: interrupted\n")
    sys.exit(130)


def _toolkit_error(exc: Exception) -> None:
    """Usage errors as one line naming the command's --help; anything else is a real bug and propagates."""
    ctx = getattr(exc, "ctx", None)
    name = type(exc).__name__
    if name == "NoArgsIsHelpError" and ctx is not None:
        sys.stderr.write(ctx.get_help() + "\n")
        sys.exit(EXIT_USAGE)
    if name == "Abort":
        _interrupted()
    if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
        command = ctx.command_path if ctx is not None else "labbridge"
        fail(f"{exc.format_message()} (see '{command} --help')", int(exc.exit_code))
    raise exc


if __name__ == "__main__":
    run()
