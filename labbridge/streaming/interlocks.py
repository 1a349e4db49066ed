"""The conditions a machine must meet before a job may start; each refusal names its interlock.

Checked from the live MachineState just before the first byte goes out (and once
earlier, before the safety gate runs, so a person hears about an open door
before waiting for a long check). Names are stable: the web API and tests match on
``InterlockError.interlock``.
"""

from __future__ import annotations

from labbridge.config import Machine
from labbridge.errors import InterlockError
from labbridge.model import MachineState, Status

INTERLOCKS = {
    "busy": "no other job runs on the machine",
    "connected": "the controller is connected",
    "alarm": "the controller is not in alarm",
    "door": "the safety door is closed (no D in GRBL's Pn: field)",
    "homed": "the machine was homed since power-up, when its config requires homing",
    "idle": "the controller is Idle",
}


def check_interlocks(
    machine_id: str, machine: Machine, state: MachineState, *, check_mode: bool = False, busy_with: str | None = None,
) -> None:
    """Raise InterlockError naming the first interlock that refuses the start.

    Homing is not required for a check-mode run: GRBL's ``$C`` parses without moving.
    """
    if busy_with is not None:
        raise InterlockError("busy", f"{machine_id} is busy with {busy_with}; wait for it to end or cancel it")
    if not state.connected or state.state == Status.DISCONNECTED:
        why = f" ({state.fault})" if state.fault else ""
        raise InterlockError("connected", f"{machine_id} is not connected{why}; check the cable and the power")
    if state.state == Status.ALARM:
        last = state.alarms[-1] if state.alarms else None
        what = f" ({last.code}: {last.message})" if last else ""
        raise InterlockError("alarm", f"{machine_id} is in alarm{what}: find the cause, then home ($H) or unlock "
                             "($X) before starting a job")
    if "D" in state.pins or state.state == Status.DOOR:
        raise InterlockError("door", f"{machine_id}: the safety door is open; close it before starting a job")
    if machine.homing_required and not check_mode and state.homed is not True:
        raise InterlockError("homed", f"{machine_id} has not been homed since it was powered up or reset; home it "
                             "($H) before starting a job")
    if state.state not in (Status.IDLE,):
        raise InterlockError("idle", f"{machine_id} is {state.state.value}, not Idle; wait until it stops "
                             "(or finish the hold) before starting a job")
