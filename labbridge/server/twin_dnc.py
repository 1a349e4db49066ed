"""What a dry run needs beyond GRBL's for a Fanuc-style twin (DNC tape + Modbus or OPC UA status).

A tape job ends when the control has read the closing ``%``, while the control still runs the blocks in its
buffer; a rehearsal ends when the twin's program does, so its clock stops there (:func:`run_out`). The twin's
links are its own: none may name an endpoint of the real machine, its DNC line runs as many times faster as its
clock does, and its status is read often enough to time it (:func:`twin_links`). Feed hold goes through the
status link's stop register, or where the link declares none (OPC UA here is read-only) through the simulated
control's panel (:class:`TwinControl`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from labbridge.config import Machine
from labbridge.drivers.base import Unsupported
from labbridge.errors import LabbridgeError
from labbridge.model import Status

TWIN_POLL_HZ = 20.0  # the twin's Modbus is on loopback: read it often, so its end is timed closely
SETTLE = 0.15  # real seconds the twin must stay Idle after its tape before its program counts as ended
FIRST_RUN_WAIT = 2.0  # real seconds to wait for the twin's first Run report (a tiny program may end between two)
RUN_OUT_TIMEOUT = 60.0  # real seconds the twin may take for its last buffered blocks (not counting holds)
ALARM_WAIT = 2.0  # real seconds to wait for the twin's status link to report the alarm behind a NAK


class TwinLinkError(LabbridgeError):
    """A twin's link would reach the real machine: the dry run is refused."""


def _endpoints(machine: Machine) -> set[str]:
    conn = machine.connection
    found = {conn.serial.port if conn.serial else None, conn.dnc.port if conn.dnc else None,
             conn.modbus.url if conn.modbus else None, conn.opcua.url if conn.opcua else None}
    return {e for e in found if e}


def twin_links(machine_id: str, real: Machine, twin: Machine, speed: int) -> Machine:
    """The twin's config as a dry run uses it (see the module notes); raises TwinLinkError if any of its links
    names one of the real machine's."""
    shared = _endpoints(real) & _endpoints(twin)
    if shared:
        raise TwinLinkError(f"{machine_id}: the twin's link {sorted(shared)[0]} is the real machine's; a dry run "
                            "never touches a real port, so it was not started")
    conn = twin.connection
    updates: dict[str, Any] = {}
    if conn.dnc is not None:
        updates["dnc"] = conn.dnc.model_copy(update={"baudrate": conn.dnc.baudrate * speed})
    if conn.modbus is not None:
        updates["modbus"] = conn.modbus.model_copy(update={"poll_hz": max(conn.modbus.poll_hz, TWIN_POLL_HZ)})
    if not updates:
        return twin
    return twin.model_copy(update={"connection": conn.model_copy(update=updates)})


class TwinControl:
    """The twin's driver as the DNC job runner sees it: its state, its DNC port, and feed hold."""

    def __init__(self, driver: Any, panel: Any) -> None:
        self.driver = driver
        self.panel = panel  # the simulator's handle: feed_hold() and cycle_start() as on the control's panel

    @property
    def state(self) -> Any:
        return self.driver.state

    def dnc_port(self) -> str | None:
        return self.driver.dnc_port()  # type: ignore[no-any-return]

    async def feed_hold(self) -> None:
        try:
            await self.driver.feed_hold()
        except Unsupported:
            self.panel.feed_hold()


async def run_out(run: Any, message: str) -> tuple[str, str]:
    """After the tape: wait until the twin has run its last blocks (Idle) and set ``run.ended_at``; returns the
    rehearsal's outcome and message (failed if the twin alarmed, lost its link or never finished)."""
    state = run.driver.state
    deadline = time.monotonic() + FIRST_RUN_WAIT
    while not run.twin_ran and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    deadline = time.monotonic() + RUN_OUT_TIMEOUT
    idle_since: float | None = None
    while True:
        now = time.monotonic()
        if state.state == Status.ALARM:
            last = run.alarms[-1] if run.alarms else {"code": "alarm", "message": "(no alarm record)"}
            return "failed", f"the twin alarmed while running its last blocks ({last['code']} {last['message']})"
        if not state.connected:
            return "failed", "the twin's status link was lost before its program ended"
        if state.state == Status.IDLE:
            idle_since = now if idle_since is None else idle_since
            if now - idle_since >= SETTLE:
                run.ended_at = idle_since
                return "completed", f"{message}; the twin ran its last blocks"
        else:
            idle_since = None
            if state.state == Status.HOLD:
                deadline = now + RUN_OUT_TIMEOUT  # held: it waits for cycle start
        if now > deadline:
            return "failed", f"the twin did not finish its last blocks within {RUN_OUT_TIMEOUT:.0f} s"
        await asyncio.sleep(0.01)


async def alarm_reported(run: Any) -> None:
    """A NAK stopped the tape: wait (briefly) until the twin's status link reports the control's alarm, so the
    rehearsal records its code and message, not only the NAK."""
    deadline = time.monotonic() + ALARM_WAIT
    state = run.driver.state
    while not state.alarms and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
