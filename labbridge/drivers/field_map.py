"""Decoded values → :class:`MachineState` updates, shared by the Modbus and OPC UA drivers.

A machine's map names MachineState fields by path (``spindle.rpm``,
``position.machine.X``, ``state``, ``alarm``, ``door_open`` …). Whatever the
transport, a poll or a subscription yields ``{path: value}``; :func:`state_changes`
turns that into the keyword arguments of one ``state.update(...)`` call, so a
poll of ten registers notifies listeners once.
"""

from __future__ import annotations

import re
from typing import Any

from labbridge.config import ModbusConnection, RegisterField, load_profile
from labbridge.errors import ConfigError
from labbridge.model import AlarmRecord, MachineState, Status
from labbridge.protocols.modbus_registers import STOP_ACTIONS

SCALAR_PATHS: dict[str, str] = {
    "spindle.rpm": "spindle_rpm",
    "spindle.load": "spindle_load",
    "feed": "feed",
    "overrides.feed": "override_feed",
    "overrides.rapid": "override_rapid",
    "overrides.spindle": "override_spindle",
    "program_name": "program_name",
    "line_number": "line_number",
    "substate": "substate",
    "homed": "homed",
    "firmware": "firmware",
}
SPECIAL_PATHS = ("state", "alarm", "door_open", "spindle.direction", "spindle.rotating", "coolant")
_POSITION = re.compile(r"^position\.(machine|work)\.([XYZ])$")
_INT_FIELDS = {"override_feed", "override_rapid", "override_spindle", "line_number", "substate"}

STATUS_ALIASES = {
    "idle": Status.IDLE, "stop": Status.IDLE, "reset": Status.IDLE, "rset": Status.IDLE, "ready": Status.IDLE,
    "run": Status.RUN, "strt": Status.RUN, "start": Status.RUN, "running": Status.RUN, "active": Status.RUN,
    "hold": Status.HOLD, "feed hold": Status.HOLD, "feedhold": Status.HOLD, "interrupted": Status.HOLD,
    "alarm": Status.ALARM, "alm": Status.ALARM, "emergency": Status.ALARM, "estop": Status.ALARM,
    "jog": Status.JOG, "home": Status.HOME, "door": Status.DOOR, "check": Status.CHECK,
    "aborted": Status.IDLE, "ended": Status.IDLE,
}


def known_paths() -> list[str]:
    axes = [f"position.{frame}.{a}" for frame in ("machine", "work") for a in "XYZ"]
    return sorted([*SCALAR_PATHS, *SPECIAL_PATHS, *axes])


def check_path(path: str, *, allow_actions: bool = False) -> None:
    """Raise ValueError naming the known paths if ``path`` is not a MachineState path."""
    if path in SCALAR_PATHS or path in SPECIAL_PATHS or _POSITION.match(path):
        return
    if allow_actions and path in STOP_ACTIONS:
        return
    extra = f", or the stop actions {', '.join(STOP_ACTIONS)}" if allow_actions else ""
    raise ValueError(f"{path!r} is not a machine state field; use one of {', '.join(known_paths())}{extra}")


def to_status(value: Any) -> Status:
    """A controller's state word (already translated by a ``values`` map) as a Status."""
    if isinstance(value, Status):
        return value
    text = str(value).strip()
    for status in Status:
        if status.value.lower() == text.lower():
            return status
    return STATUS_ALIASES.get(text.lower(), Status.UNKNOWN)


def _direction(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        return {"m3": "cw", "m4": "ccw", "m5": "off", "stop": "off", "forward": "cw", "reverse": "ccw"}.get(text, text)
    number = float(value)
    return "cw" if number > 0 else "ccw" if number < 0 else "off"


def state_changes(state: MachineState, values: dict[str, Any], source: str) -> dict[str, Any]:
    """Keyword arguments for ``state.update`` from decoded ``{path: value}`` (None = unknown, skipped)."""
    changes: dict[str, Any] = {}
    positions: dict[str, dict[str, float]] = {}
    for path, value in values.items():
        if value is None:
            continue
        if path in SCALAR_PATHS:
            name = SCALAR_PATHS[path]
            if name in _INT_FIELDS:
                value = int(round(float(value)))
            elif name == "homed":
                value = bool(value)
            elif name in ("program_name", "firmware"):
                value = str(value)
            else:
                value = float(value)
            changes[name] = value
        elif (m := _POSITION.match(path)) is not None:
            positions.setdefault(m.group(1), {})[m.group(2)] = float(value)
        elif path == "state":
            changes["state"] = to_status(value)
        elif path == "alarm":
            changes["alarms"] = _alarms(state, value, source)
        elif path == "door_open":
            pins = set(changes.get("pins", state.pins))
            (pins.add if value else pins.discard)("D")
            changes["pins"] = frozenset(pins)
        elif path == "spindle.direction":
            changes["spindle_direction"] = _direction(value)
        elif path == "spindle.rotating":
            if not value:
                changes["spindle_direction"] = "off"
            elif state.spindle_direction == "off" and "spindle.direction" not in values:
                changes["spindle_direction"] = None  # turning, direction not reported
        elif path == "coolant":
            changes["coolant"] = str(value).lower()
    for frame, axes in positions.items():
        field = f"position_{frame}"
        current = getattr(state, field) or {}
        changes[field] = {**current, **axes}
    return changes


def _alarms(state: MachineState, value: Any, source: str) -> tuple[AlarmRecord, ...]:
    """Replace this source's alarm; 0, '' and False mean no alarm. Keeps the others' alarms."""
    others = tuple(a for a in state.alarms if a.source != source)
    if value in (0, "", False, "0") or value is None:
        return others
    text = str(value).strip()
    code, _, rest = text.partition(" ")
    if text.isdigit():
        code, message = text, f"alarm {text} reported by {source}"
    elif code.isdigit() and rest:
        message = rest.strip()
    else:
        code, message = text, text
    for existing in state.alarms:
        if existing.source == source and existing.code == code and existing.message == message:
            return tuple(a for a in state.alarms if a.source != source or a is existing)  # same alarm, same time
    return others + (AlarmRecord(code=code, message=message, source=source),)


def apply(state: MachineState, values: dict[str, Any], source: str) -> frozenset[str]:
    """Decode and apply in one ``update`` (one notification per poll)."""
    return state.update(**state_changes(state, values, source))


def effective_map(modbus: ModbusConnection, machine_id: str = "") -> dict[str, RegisterField]:
    """The profile's map overlaid with the machine's own entries; every key checked."""
    fields: dict[str, RegisterField] = {}
    if modbus.profile:
        fields.update(load_profile(modbus.profile))
    fields.update(modbus.map)
    for path in fields:
        try:
            check_path(path, allow_actions=True)
        except ValueError as exc:
            where = f"machines.{machine_id}.connection.modbus.map" if machine_id else "connection.modbus.map"
            raise ConfigError(f"{where}: {exc}") from None
    return fields
