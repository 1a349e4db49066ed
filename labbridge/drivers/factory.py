"""Build the right driver (and, for the demo and tests, the right simulator) for a machine.

Imports are lazy so that checking a program never loads pymodbus or asyncua.
"""

from __future__ import annotations

from labbridge.config import Machine
from labbridge.drivers.base import Driver


def create_driver(machine_id: str, machine: Machine, *, port: str | None = None) -> Driver:
    """A driver for ``machine`` (not yet connected). ``port`` overrides the config's serial port."""
    if machine.controller == "grbl":
        from labbridge.drivers.grbl import GrblDriver

        return GrblDriver(machine_id, machine, port=port)
    from labbridge.drivers.fanuc import FanucDriver

    return FanucDriver(machine_id, machine, port=port)
