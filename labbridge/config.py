"""The lab's machines, as described in ``config/machines.yaml``.

The schema is strict on purpose: a misspelt key in a safety limit must not be
silently ignored, so unknown keys are rejected and every error names the file,
the machine and the field (``config/machines.yaml: machines.mill-1.envelope.X:
min 10.0 is above max 0.0``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from labbridge.errors import ConfigError

Axis = Literal["X", "Y", "Z"]
AXES: tuple[str, str, str] = ("X", "Y", "Z")
WORK_OFFSET_CODES = ("G54", "G55", "G56", "G57", "G58", "G59")
DEFAULT_CONFIG = Path("config/machines.yaml")
CONFIG_ENV = "LABBRIDGE_CONFIG"
Controller = Literal["grbl", "fanuc-mill", "fanuc-lathe"]


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, not typos to ignore."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SerialConnection(Strict):
    """A GRBL controller on a USB serial port (or a pyserial URL such as socket://host:port)."""

    port: str
    baudrate: int = Field(115200, gt=0)


class DncConnection(Strict):
    """RS-232 line settings of a Fanuc-style control acting as a tape reader."""

    port: str
    baudrate: int = Field(9600, gt=0)
    bytesize: Literal[7, 8] = 7
    parity: Literal["N", "E", "O"] = "E"
    stopbits: Literal[1, 2] = 2
    xonxoff: bool = True
    end_of_block: Literal["LF", "CRLF"] = "LF"
    nul_leader: int = Field(0, ge=0, description="NUL characters sent before the leading %")
    tv_check: bool = False
    dc1_timeout: float = Field(30.0, gt=0, description="seconds to wait for the control's first DC1")
    stall_timeout: float = Field(60.0, gt=0, description="seconds a DC3 pause may last")
    chunk_size: int = Field(16, gt=0)


class RegisterField(Strict):
    """One MachineState field read from (or, for stop actions, written to) a Modbus register."""

    table: Literal["coil", "discrete", "input", "holding"]
    address: int = Field(ge=0, le=0xFFFF)
    type: Literal["bool", "uint16", "int16", "uint32", "int32", "float32"] = "uint16"
    word_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    offset: float = 0.0
    values: dict[int, str] | None = None
    write_value: int | None = Field(None, description="value written for a stop action")


class ModbusConnection(Strict):
    """Status over Modbus TCP or RTU, mapped field by field (see firmware-notes/modbus.md)."""

    url: str
    device_id: int = Field(1, ge=0, le=247)
    poll_hz: float = Field(4.0, gt=0, le=50)
    timeout: float = Field(1.0, gt=0)
    profile: str | None = Field(None, description="a spindle-drive profile from config/profiles")
    map: dict[str, RegisterField] = {}
    writable: bool = Field(False, description="allow writes for the stop actions the map declares")


class OpcUaConnection(Strict):
    """Status from the control's OPC UA server; nodes named by namespace URI, never index."""

    url: str
    username: str | None = None
    password: str | None = None
    security: str | None = Field(None, description="e.g. Basic256Sha256,SignAndEncrypt,cert.pem,key.pem")
    server_certificate: str | None = None
    nodes: dict[str, str] = {}
    use_default_map: bool = True
    namespace_uri: str | None = None


class Connection(Strict):
    """How labbridge reaches a machine; which parts are needed depends on the controller."""

    serial: SerialConnection | None = None
    dnc: DncConnection | None = None
    modbus: ModbusConnection | None = None
    opcua: OpcUaConnection | None = None


class SpindleLimits(Strict):
    max_rpm: float = Field(gt=0)
    min_rpm: float = Field(0.0, ge=0)


class KeepOutBox(Strict):
    """A region no motion may enter (a vise, a fixture), in machine coordinates."""

    name: str
    min: dict[Axis, float]
    max: dict[Axis, float]

    @model_validator(mode="after")
    def _ordered(self) -> KeepOutBox:
        for axis in self.min:
            if axis in self.max and self.min[axis] > self.max[axis]:
                raise ValueError(f"{axis}: min {self.min[axis]} is above max {self.max[axis]}")
        return self


class Tool(Strict):
    length: float = 0.0
    diameter: float = 0.0
    description: str = ""


def _default_rates() -> dict[str, float]:
    return {}


class Machine(Strict):
    """One machine of the lab: its controller, limits and the context programs start in."""

    name: str
    controller: Controller
    connection: Connection = Connection()
    envelope: dict[Axis, tuple[float, float]]
    home: dict[Axis, float] = {}
    work_offsets: dict[str, dict[Axis, float]] = {}
    spindle: SpindleLimits
    max_feed: float = Field(gt=0, description="mm/min")
    rapid_rate: dict[Axis, Annotated[float, Field(gt=0)]] = Field(
        default_factory=_default_rates, description="mm/min per axis; default max_feed"
    )
    acceleration: dict[Axis, Annotated[float, Field(gt=0)]] = Field(
        default_factory=_default_rates, description="mm/s² per axis; default 500"
    )
    junction_deviation: float = Field(0.01, gt=0)
    arc_tolerance: float = Field(0.002, gt=0, description="mm; GRBL $12: how finely arcs are cut into chords")
    steps_per_mm: dict[Axis, Annotated[float, Field(gt=0)]] = Field(
        default_factory=_default_rates, description="per axis (GRBL $100-$102); default 250 on GRBL, 1000 else"
    )
    keep_out: list[KeepOutBox] = []
    tool_changer: bool = False
    tools: dict[int, Tool] = {}
    g28_position: dict[Axis, float] = {}
    g30_position: dict[Axis, float] = {}
    line_buffer: int | None = Field(None, gt=0, description="max characters of a cleaned block")
    rx_buffer: int = Field(128, gt=0, description="controller serial receive buffer, bytes")
    homing_required: bool = False
    forbidden_codes: list[str] = Field([], description="codes students may not use on this machine, e.g. G53")
    diameter_mode: bool = Field(True, description="lathe X words are diameters")
    gcode_system: Literal["A", "B"] = Field(
        "A", description="Fanuc-style lathe G-code system: A (G98/G99 feed modes, U/W incremental) or B"
    )

    @field_validator("envelope")
    @classmethod
    def _envelope_ordered(cls, value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for axis, (low, high) in value.items():
            if low > high:
                raise ValueError(f"{axis}: min {low} is above max {high}")
        return value

    @field_validator("work_offsets")
    @classmethod
    def _known_offsets(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for code in value:
            if code not in WORK_OFFSET_CODES:
                raise ValueError(f"{code} is not a work offset; use one of {', '.join(WORK_OFFSET_CODES)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Machine:
        axes = self.axes
        if self.controller == "fanuc-lathe":
            if set(self.envelope) - {"X", "Z"} or not {"X", "Z"} <= set(self.envelope):
                raise ValueError("envelope: a lathe has exactly the axes X and Z")
        elif set(self.envelope) != set(AXES):
            raise ValueError("envelope: a mill needs X, Y and Z")
        for field in ("home", "g28_position", "g30_position"):
            extra = set(getattr(self, field)) - set(axes)
            if extra:
                raise ValueError(f"{field}: axis {', '.join(sorted(extra))} is not in the envelope")
        if self.controller == "grbl" and self.connection.serial is None and self.connection.dnc is None:
            pass  # a GRBL machine without a port can still have programs checked
        return self

    @property
    def axes(self) -> tuple[str, ...]:
        """The machine's axes in X, Y, Z order (a lathe has X and Z)."""
        return tuple(a for a in AXES if a in self.envelope)

    @property
    def dialect(self) -> str:
        return self.controller

    @property
    def is_lathe(self) -> bool:
        return self.controller == "fanuc-lathe"

    def home_position(self) -> tuple[float, float, float]:
        return tuple(float(self.home.get(a, 0.0)) for a in AXES)  # type: ignore[return-value]

    def offset(self, code: str) -> tuple[float, float, float]:
        values = self.work_offsets.get(code, {})
        return tuple(float(values.get(a, 0.0)) for a in AXES)  # type: ignore[return-value]

    def rapid(self, axis: str) -> float:
        return float(self.rapid_rate.get(axis, self.max_feed))  # type: ignore[call-overload]

    def accel(self, axis: str) -> float:
        return float(self.acceleration.get(axis, 500.0))  # type: ignore[call-overload]

    def steps(self, axis: str) -> float:
        """Steps per mm of an axis: GRBL's factory 250, or a fine 1000 for controls that do not say."""
        return float(self.steps_per_mm.get(axis, 250.0 if self.controller == "grbl" else 1000.0))  # type: ignore[call-overload]

    def effective_line_buffer(self) -> int:
        """GRBL accepts at most 79 characters of a cleaned block (LINE_BUFFER_SIZE 80 minus one)."""
        if self.line_buffer is not None:
            return self.line_buffer
        return 79 if self.controller == "grbl" else 256


class LabConfig(Strict):
    machines: dict[str, Machine]

    @field_validator("machines")
    @classmethod
    def _not_empty(cls, value: dict[str, Machine]) -> dict[str, Machine]:
        if not value:
            raise ValueError("at least one machine is needed")
        return value

    def machine(self, machine_id: str, source: str = "config") -> Machine:
        try:
            return self.machines[machine_id]
        except KeyError:
            known = ", ".join(self.machines)
            raise ConfigError(f"{source}: no machine {machine_id!r}; the config has: {known}") from None


def resolve_config_path(path: str | Path | None) -> Path:
    """--config beats LABBRIDGE_CONFIG beats ./config/machines.yaml."""
    if path:
        return Path(path)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG


def _describe(error: dict[str, Any]) -> str:
    loc = [str(p) for p in error["loc"]]
    # Drop pydantic's internal tags (union members, tuple indices of envelope pairs stay readable).
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling; see the config reference in README.md)"
    elif error["type"] == "missing":
        message = "required field is missing"
    if loc and ":" in message and error["type"] == "value_error":
        # A model-level check names its own field ("X: min 10 is above max 0"): fold it into the path.
        head, _, rest = message.partition(": ")
        if " " not in head:
            return ".".join(loc + head.split(".")) + ": " + rest
    return ".".join(loc) + ": " + message


def parse_config(data: Any, source: str) -> LabConfig:
    """Validate already-loaded YAML data; errors name ``source`` and the field path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with a 'machines' key at the top")
    try:
        return LabConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {_describe(e)}" for e in exc.errors()]
        raise ConfigError("\n".join(lines)) from None


def load_config(path: str | Path | None = None) -> LabConfig:
    """Load and validate the lab config; raise ConfigError with a one-line-per-problem message."""
    resolved = resolve_config_path(path)
    source = str(resolved)
    try:
        text = resolved.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: config file not found (pass --config PATH or set {CONFIG_ENV})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read config: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}{where}: not valid YAML: {problem}") from None
    return parse_config(data, source)
