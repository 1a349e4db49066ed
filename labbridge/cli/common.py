"""Pieces every command shares: the --config option, loading a machine, failing cleanly."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from labbridge.config import LabConfig, Machine, load_config, resolve_config_path
from labbridge.errors import ConfigError
from labbridge.i18n import N_

EXIT_OK = 0
EXIT_PROGRAM_ERRORS = 1
EXIT_USAGE = 2
EXIT_CONTROLLER = 3

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help=N_("Lab config file (default ./config/machines.yaml, or $LABBRIDGE_CONFIG)."),
        show_default=False,
    ),
]
MachineOption = Annotated[str, typer.Option("--machine", "-m", help=N_("Machine id from the config, e.g. mill-1."))]


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print a one-line (or few-line) error on stderr and exit with ``code``."""
    sys.stderr.write(f"labbridge: {message}\n")
    raise SystemExit(code)


def load_lab(config: Path | None) -> LabConfig:
    try:
        return load_config(config)
    except ConfigError as exc:
        fail(str(exc))


def load_machine(config: Path | None, machine_id: str) -> tuple[str, Machine]:
    """Load the config and pick one machine, exiting 2 with a clear message on any problem."""
    lab = load_lab(config)
    try:
        return machine_id, lab.machine(machine_id, str(resolve_config_path(config)))
    except ConfigError as exc:
        fail(str(exc))
