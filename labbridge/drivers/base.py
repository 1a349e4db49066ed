"""What drivers offer the rest of labbridge: one base :class:`Driver` and a capability protocol per ability.

A driver owns the link to one machine and keeps its :class:`MachineState` current. Every driver can connect,
close and feed-hold (stop wins). Anything more is a capability: a driver implements the protocol (structural
typing, no base class to inherit) and the server asks ``isinstance(driver, Homes)`` before offering a Home
button or running ``home``. A controller that has a method but cannot do it at the moment (a Fanuc-style
control without a stop register) raises :class:`Unsupported` with a message a person can act on.

May import config, errors and model only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from labbridge.config import Machine
from labbridge.errors import LabbridgeError
from labbridge.model import MachineState


class Unsupported(LabbridgeError):
    """The machine's controller has no such command (e.g. jogging a lathe over Modbus)."""


@runtime_checkable
class Holds(Protocol):
    async def feed_hold(self) -> None:
        """Stop motion now (always allowed; stop wins)."""


@runtime_checkable
class Driver(Holds, Protocol):
    """What every driver is: a live MachineState behind a link that it opens, keeps and closes."""

    machine_id: str
    config: Machine
    state: MachineState

    @property
    def reconnects(self) -> bool:
        """True when, once connect() returned, the driver keeps its link up by itself (else the server does)."""

    async def connect(self) -> None:
        """Open the link and start keeping ``state`` current (returns once the first state is known)."""

    async def close(self) -> None:
        """Stop polling and close the link; leaves ``state`` disconnected."""


@runtime_checkable
class Polls(Protocol):
    """The driver asks the controller for its state at a rate the server may set."""

    poll_hz: float


@runtime_checkable
class Resumes(Protocol):
    async def cycle_start(self) -> None:
        """Resume after a feed hold (this starts motion)."""


@runtime_checkable
class Homes(Protocol):
    async def home(self) -> None:
        """Run the homing cycle; returns when it is done."""


@runtime_checkable
class Unlocks(Protocol):
    async def unlock(self) -> None:
        """Clear an alarm lock without homing."""


@runtime_checkable
class Resets(Protocol):
    async def soft_reset(self, wait: bool = True) -> None:
        """Stop at once and discard everything buffered (the controller restarts)."""


@runtime_checkable
class Jogs(Protocol):
    async def jog(self, axis_words: dict[str, float], feed: float, *, incremental: bool = True) -> None:
        """Jog by (or, not incremental, to) the axis words at ``feed`` mm/min."""

    async def jog_cancel(self) -> None:
        """Stop a jog in progress."""


@runtime_checkable
class Overrides(Protocol):
    async def override(self, name: str) -> None:
        """Send one override step by name (FEED_100, FEED_PLUS_10, RAPID_50, SPINDLE_MINUS_1, ...)."""


@runtime_checkable
class HasSettings(Protocol):
    """The controller keeps numbered settings that can be read and written."""

    settings: dict[Any, Any]
    mismatches: list[str]

    async def read_settings(self) -> dict[Any, Any]:
        """Read every setting (and recompute ``mismatches`` against the config)."""

    async def write_setting(self, number: Any, value: Any) -> None:
        """Write one setting."""

    def describe_settings(self) -> dict[str, dict[str, Any]]:
        """Each known setting with its value, name and unit, as a technician reads them."""


@runtime_checkable
class HasDiagnostics(Protocol):
    def diagnostics(self) -> dict[str, Any]:
        """JSON-ready facts for a technician: ``build_info``, ``parameters``, ``link`` (any may be missing)."""


@runtime_checkable
class Streams(Protocol):
    """Programs go to the controller whole, as a tape over a link of their own (DNC); the job runner sends it."""

    def dnc_port(self) -> str | None:
        """The serial port the tape goes out on (the config's ``connection.dnc.port`` unless overridden)."""


@runtime_checkable
class StreamsLines(Protocol):
    """The job runner streams line by line itself (character counting) on the driver's channel."""

    on_disconnect: list[Callable[[str], Any]]
    busy_with: str | None
    parameters: dict[str, tuple[float, ...]]

    @property
    def rx_buffer(self) -> int:
        """The controller's receive buffer in bytes."""

    def write(self, data: bytes) -> None:
        """Put bytes on the wire as they are."""

    def subscribe(self, callback: Callable[[Any], Any]) -> Callable[[], None]:
        """Receive every parsed event; returns a function that unsubscribes."""

    def exclusive(self, owner: str) -> AbstractAsyncContextManager[None]:
        """Hold the line channel for a job: other line commands are refused meanwhile."""

    async def read_parameters(self) -> dict[str, tuple[float, ...]]:
        """Read work offsets and other parameters."""


CAPABILITIES: dict[str, type] = {
    "feed_hold": Holds,
    "cycle_start": Resumes,
    "home": Homes,
    "unlock": Unlocks,
    "soft_reset": Resets,
    "jog": Jogs,
    "jog_cancel": Jogs,
    "override": Overrides,
    "read_settings": HasSettings,
    "write_setting": HasSettings,
    "stream": Streams,
}
"""The names the API and the dashboard use for what a machine can do, and the protocol behind each."""


def capabilities(driver: object) -> list[str]:
    """The capability names ``driver`` implements (none for a machine without a driver)."""
    if driver is None:
        return []
    return [name for name, protocol in CAPABILITIES.items() if isinstance(driver, protocol)]


__all__ = ["CAPABILITIES", "Driver", "HasDiagnostics", "HasSettings", "Holds", "Homes", "Jogs", "Overrides", "Polls",
           "Resets", "Resumes", "Streams", "StreamsLines", "Unlocks", "Unsupported", "capabilities"]
