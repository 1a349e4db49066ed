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
from labbridge.streaming import texts as T

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
        raise InterlockError("busy", T.BUSY.format(machine=machine_id, job=busy_with))
    if not state.connected or state.state == Status.DISCONNECTED:
        raise InterlockError("connected", T.NOT_CONNECTED_WHY.format(machine=machine_id, reason=state.fault)
                             if state.fault else T.NOT_CONNECTED.format(machine=machine_id))
    if state.state == Status.ALARM:
        last = state.alarms[-1] if state.alarms else None
        raise InterlockError("alarm", T.IN_ALARM_START_CODE.format(machine=machine_id, code=last.code,
                                                                  meaning=last.message)
                             if last else T.IN_ALARM_START.format(machine=machine_id))
    if "D" in state.pins or state.state == Status.DOOR:
        raise InterlockError("door", T.DOOR_OPEN.format(machine=machine_id))
    if machine.homing_required and not check_mode and state.homed is not True:
        raise InterlockError("homed", T.NOT_HOMED.format(machine=machine_id))
    if state.state not in (Status.IDLE,):
        raise InterlockError("idle", T.NOT_IDLE.format(machine=machine_id, state=state.state.value))
