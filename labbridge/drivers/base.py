"""What every driver offers the rest of labbridge.

A driver owns the link to one machine and keeps its :class:`MachineState`
current. The job runner, the CLI and the web API talk to drivers only through
this interface, so a Fanuc-style machine and a GRBL machine look the same from
above. Methods a controller cannot do raise :class:`Unsupported` with a message
a person can act on.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from labbridge.config import Machine
from labbridge.errors import LabbridgeError
from labbridge.model import MachineState


class Unsupported(LabbridgeError):
    """The machine's controller has no such command (e.g. jogging a lathe over Modbus)."""


@runtime_checkable
class Driver(Protocol):
    machine_id: str
    config: Machine
    state: MachineState

    async def connect(self) -> None:
        """Open the link and start keeping ``state`` current (returns once the first state is known)."""

    async def close(self) -> None:
        """Stop polling and close the link; leaves ``state`` disconnected."""

    async def feed_hold(self) -> None:
        """Stop motion now (always allowed; stop wins)."""
