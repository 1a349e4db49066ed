"""Register maps: decode/encode values, plan block reads. No I/O, no files, no clock.

Addresses are the protocol's zero-based ones. 32-bit values take two registers;
``word_order: big`` puts the high word first (the Modbus norm), ``little`` the
low word first (many PLCs and drives). Coils and discrete inputs are always bool.
A field is anything shaped like :class:`RegisterSpec` (the config's
``RegisterSpec``); drive profiles are read by :mod:`labbridge.config`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Protocol

STOP_ACTIONS = ("feed_hold", "spindle_stop")
"""Map keys that are not state but the registers a stop action writes (never read)."""



class RegisterSpec(Protocol):
    """Where a value lives and how it is encoded (``labbridge.config.RegisterSpec`` has this shape)."""

    table: str
    address: int
    type: str
    word_order: str
    scale: float
    offset: float
    values: dict[int, str] | None


BIT_TABLES = ("coil", "discrete")
WORDS = {"bool": 1, "uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2}
MAX_REGISTERS = 125  # per read (Modbus limit for function 3/4)
MAX_BITS = 2000

EXCEPTION_NAMES = {
    1: "ILLEGAL FUNCTION",
    2: "ILLEGAL DATA ADDRESS",
    3: "ILLEGAL DATA VALUE",
    4: "SERVER DEVICE FAILURE",
    5: "ACKNOWLEDGE",
    6: "SERVER DEVICE BUSY",
    8: "MEMORY PARITY ERROR",
    10: "GATEWAY PATH UNAVAILABLE",
    11: "GATEWAY TARGET DEVICE FAILED TO RESPOND",
}


def exception_name(code: int) -> str:
    return f"exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})"


def width(field: RegisterSpec) -> int:
    """Registers (or bits) the field occupies."""
    return 1 if field.table in BIT_TABLES else WORDS[field.type]


def _raw_from_registers(field: RegisterSpec, regs: list[int]) -> int | float:
    if field.type in ("bool", "uint16"):
        return regs[0] != 0 if field.type == "bool" else regs[0]
    if field.type == "int16":
        return regs[0] - 0x10000 if regs[0] & 0x8000 else regs[0]
    hi, lo = (regs[0], regs[1]) if field.word_order == "big" else (regs[1], regs[0])
    data = struct.pack(">HH", hi & 0xFFFF, lo & 0xFFFF)
    fmt = {"uint32": ">I", "int32": ">i", "float32": ">f"}[field.type]
    return struct.unpack(fmt, data)[0]


def decode(field: RegisterSpec, words: list[int] | list[bool]) -> Any:
    """The MachineState value of ``field`` from its registers or bits."""
    if field.table in BIT_TABLES or field.type == "bool":
        raw: Any = bool(words[0])
        if field.values is not None:
            return field.values.get(int(raw), raw)
        return raw
    raw = _raw_from_registers(field, list(words))  # type: ignore[arg-type]
    if field.values is not None:
        return field.values.get(int(raw), raw)
    if field.scale == 1.0 and field.offset == 0.0:
        return raw
    return raw * field.scale + field.offset


def encode(field: RegisterSpec, value: Any) -> list[int] | list[bool]:
    """Registers (or bits) that decode to ``value`` (used by the simulators and stop writes)."""
    if field.values is not None and not isinstance(value, (int, float)) or isinstance(value, str):
        reverse = {str(v).lower(): k for k, v in (field.values or {}).items()}
        key = str(getattr(value, "value", value)).lower()
        if key not in reverse:
            raise ValueError(f"{value!r} is not one of {sorted(reverse)}")
        value = reverse[key]
    elif field.values is None and field.type != "bool":
        value = (float(value) - field.offset) / field.scale
    if field.table in BIT_TABLES or field.type == "bool":
        return [bool(value)] if field.table in BIT_TABLES else [1 if value else 0]
    if field.type == "float32":
        hi, lo = struct.unpack(">HH", struct.pack(">f", float(value)))
    else:
        number = int(round(float(value)))
        if field.type in ("uint16", "int16"):
            return [number & 0xFFFF]
        hi, lo = struct.unpack(">HH", struct.pack(">i" if field.type == "int32" else ">I", number))
    return [hi, lo] if field.word_order == "big" else [lo, hi]


@dataclass(frozen=True)
class ReadBlock:
    """One request: a table and a contiguous address range covering some fields."""

    table: str
    address: int
    count: int
    fields: tuple[tuple[str, RegisterSpec], ...]

    def describe(self) -> str:
        end = self.address + self.count - 1
        return f"{self.table} {self.address:#06x}" + (f"..{end:#06x}" if end != self.address else "")

    def values(self, words: list[int] | list[bool]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for path, field in self.fields:
            start = field.address - self.address
            out[path] = decode(field, list(words[start : start + width(field)]))  # type: ignore[arg-type]
        return out


def plan_reads(fields: dict[str, RegisterSpec]) -> list[ReadBlock]:
    """Group fields into as few requests as possible without reading unmapped addresses.

    Only touching or overlapping fields share a request: devices answer a read that
    spans an unmapped address with ILLEGAL DATA ADDRESS for the whole request.
    """
    blocks: list[ReadBlock] = []
    by_table: dict[str, list[tuple[str, RegisterSpec]]] = {}
    for path, field in fields.items():
        if path in STOP_ACTIONS:
            continue
        by_table.setdefault(field.table, []).append((path, field))
    for table, items in by_table.items():
        limit = MAX_BITS if table in BIT_TABLES else MAX_REGISTERS
        items.sort(key=lambda item: item[1].address)
        current: list[tuple[str, RegisterSpec]] = []
        start = end = 0
        for path, field in items:
            f_end = field.address + width(field)
            if current and field.address <= end and max(end, f_end) - start <= limit:
                current.append((path, field))
                end = max(end, f_end)
                continue
            if current:
                blocks.append(ReadBlock(table, start, end - start, tuple(current)))
            current, start, end = [(path, field)], field.address, f_end
        if current:
            blocks.append(ReadBlock(table, start, end - start, tuple(current)))
    return blocks
