"""One MachineState per machine: every driver writes it, the API and dashboard only read it.

Drivers call :meth:`MachineState.update` with the fields they know; listeners (the
websocket hub, the job runner, ``labbridge state --watch``) are told which fields
changed. Listeners run synchronously in the driver's task and must be cheap: the
hub only marks the machine dirty and coalesces.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Literal, get_type_hints

from pydantic import BaseModel, Field, create_model


class Status(str, Enum):
    """Controller states, named as GRBL names them; Fanuc-style states map onto these."""

    IDLE = "Idle"
    RUN = "Run"
    HOLD = "Hold"
    JOG = "Jog"
    ALARM = "Alarm"
    DOOR = "Door"
    CHECK = "Check"
    HOME = "Home"
    SLEEP = "Sleep"
    DISCONNECTED = "Disconnected"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class AlarmRecord:
    """An alarm or controller error as a person should read it."""

    code: str
    message: str
    time: float = field(default_factory=time.time)
    source: str = ""


@dataclass
class JobProgress:
    """The job running on a machine, as the dashboard shows it."""

    job_id: str
    program: str
    state: str
    lines_total: int
    lines_acked: int = 0
    line_number: int | None = None
    started_at: float | None = None
    eta_seconds: float | None = None
    message: str = ""

    @property
    def fraction(self) -> float:
        return self.lines_acked / self.lines_total if self.lines_total else 0.0


Listener = Callable[["MachineState", frozenset[str]], None]


@dataclass
class MachineState:
    """Everything known about a machine right now. Fields a machine does not provide stay None."""

    machine: str
    connected: bool = False
    state: Status = Status.DISCONNECTED
    substate: int | None = None
    position_machine: dict[str, float] | None = None
    position_work: dict[str, float] | None = None
    work_offset: dict[str, float] | None = None
    feed: float | None = None
    spindle_rpm: float | None = None
    spindle_load: float | None = None
    spindle_direction: str | None = None  # "cw", "ccw", "off"
    coolant: str | None = None  # "flood", "mist", "both", "off"
    override_feed: int | None = None
    override_rapid: int | None = None
    override_spindle: int | None = None
    pins: frozenset[str] = frozenset()
    planner_free: int | None = None
    rx_free: int | None = None
    line_number: int | None = None
    alarms: tuple[AlarmRecord, ...] = ()
    fault: str | None = None
    program_name: str | None = None
    job: JobProgress | None = None
    homed: bool | None = None
    firmware: str | None = None
    updated_at: float = 0.0
    version: int = 0
    _listeners: list[Listener] = field(default_factory=list, repr=False, compare=False)

    def update(self, **changes: Any) -> frozenset[str]:
        """Apply the changes that differ from the current values and notify listeners."""
        changed = []
        for name, value in changes.items():
            if name.startswith("_") or not hasattr(self, name):
                raise AttributeError(f"MachineState has no field {name!r}")
            if getattr(self, name) != value:
                setattr(self, name, value)
                changed.append(name)
        if not changed:
            return frozenset()
        self.updated_at = time.time()
        self.version += 1
        names = frozenset(changed)
        for listener in list(self._listeners):
            listener(self, names)
        return names

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Register a change listener; returns a function that removes it."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def raise_alarm(self, code: str, message: str, source: str = "") -> None:
        self.update(alarms=self.alarms + (AlarmRecord(code, message, source=source),))

    def clear_alarms(self) -> None:
        self.update(alarms=())

    def mark_disconnected(self, reason: str | None = None) -> None:
        self.update(connected=False, state=Status.DISCONNECTED, substate=None, fault=reason)

    @property
    def is_moving(self) -> bool:
        return self.state in (Status.RUN, Status.JOG, Status.HOME)

    def to_dict(self) -> dict[str, Any]:
        """The public shape, shared by ``labbridge state --json``, the REST API and the websocket."""
        return self.public().model_dump()

    def public(self) -> _MachineStateFields:
        """This state as :class:`MachineStateJSON` (the one definition of its public shape).

        Built without re-validation or conversion (the dataclass is already typed, and this runs for every
        websocket update): numbers keep their type, so the JSON is exactly what the driver reported.
        """
        job = None
        if self.job is not None:
            job = JobProgressJSON.model_construct(**{f.name: getattr(self.job, f.name) for f in _JOB_FIELDS},
                                                  fraction=self.job.fraction)
        return MachineStateJSON.model_construct(
            machine=self.machine,
            connected=self.connected,
            state=self.state.value,
            substate=self.substate,
            position=Position.model_construct(machine=self.position_machine, work=self.position_work),
            work_offset=self.work_offset,
            spindle=Spindle.model_construct(rpm=self.spindle_rpm, load=self.spindle_load,
                                            direction=self.spindle_direction),
            feed=self.feed,
            coolant=self.coolant,
            overrides=Overrides.model_construct(feed=self.override_feed, rapid=self.override_rapid,
                                                spindle=self.override_spindle),
            pins=sorted(self.pins),
            buffer=Buffer.model_construct(planner_free=self.planner_free, rx_free=self.rx_free),
            line_number=self.line_number,
            alarms=list(self.alarms),
            fault=self.fault,
            program_name=self.program_name,
            homed=self.homed,
            firmware=self.firmware,
            job=job,
            updated_at=self.updated_at,
        )


# The public shape ---------------------------------------------------------------------------------------
# What `labbridge state --json`, the REST API (and its /openapi.json), the websocket and the fleet link show.
# Field order is the order of the JSON object.


def model_of(source: type, name: str, **extra: Any) -> type[BaseModel]:
    """A pydantic model with a dataclass's fields (types and defaults) plus ``extra`` fields, for its JSON shape."""
    hints = get_type_hints(source)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(source):
        if f.name.startswith("_"):
            continue
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=f.default_factory)
        else:
            default = ...
        fields[f.name] = (hints[f.name], default)
    fields.update(extra)
    return create_model(name, __doc__=source.__doc__, **fields)  # type: ignore[call-overload, no-any-return]


StatusName = Literal[tuple(s.value for s in Status)]  # type: ignore[valid-type]
"""A :class:`Status` as it appears in JSON."""


class Position(BaseModel):
    """Axis positions in mm: ``machine`` (MPos) and ``work`` (WPos = MPos − work offset)."""

    machine: dict[str, float] | None = None
    work: dict[str, float] | None = None


class Spindle(BaseModel):
    rpm: float | None = None
    load: float | None = Field(None, description="percent of rated load")
    direction: str | None = Field(None, description='"cw", "ccw" or "off"')


class Overrides(BaseModel):
    """Overrides in percent."""

    feed: int | None = None
    rapid: int | None = None
    spindle: int | None = None


class Buffer(BaseModel):
    """GRBL's free planner blocks and serial receive bytes (``Bf:``)."""

    planner_free: int | None = None
    rx_free: int | None = None


JobProgressJSON = model_of(JobProgress, "JobProgress", fraction=(float, Field(0.0, description="0..1")))
_JOB_FIELDS = dataclasses.fields(JobProgress)


class _MachineStateFields(BaseModel):
    """Everything known about a machine right now. Fields a machine does not provide are null."""

    machine: str
    connected: bool
    state: StatusName  # type: ignore[valid-type]
    substate: int | None = None
    position: Position
    work_offset: dict[str, float] | None = None
    spindle: Spindle
    feed: float | None = Field(None, description="mm/min")
    coolant: str | None = Field(None, description='"flood", "mist", "both" or "off"')
    overrides: Overrides
    pins: list[str]
    buffer: Buffer
    line_number: int | None = None
    alarms: list[AlarmRecord]
    fault: str | None = None
    program_name: str | None = None
    homed: bool | None = None
    firmware: str | None = None
    job: JobProgressJSON | None = None  # type: ignore[valid-type]
    updated_at: float


MachineStateJSON = create_model("MachineState", __base__=_MachineStateFields, __doc__=_MachineStateFields.__doc__)
"""MachineState's public shape (named so in /openapi.json)."""
