"""GRBL 1.1 wire protocol without I/O: bytes in, events out; lines in, bytes to write out.

Kept free of asyncio and pyserial (h11 style) so the parser, the streaming
window and the simulator can be tested by feeding recorded bytes, and so the
driver, the job runner and the simulator share one reading of the protocol.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Union

from labbridge.protocols.grbl_codes import alarm_message, error_message

#: Realtime bytes: GRBL's serial interrupt acts on them at once; they never enter
#: the RX buffer and are never counted by the streaming window.
REALTIME: dict[str, bytes] = {
    "STATUS": b"?",
    "HOLD": b"!",
    "RESUME": b"~",
    "RESET": b"\x18",
    "DOOR": b"\x84",
    "JOG_CANCEL": b"\x85",
    "FEED_100": b"\x90",
    "FEED_PLUS_10": b"\x91",
    "FEED_MINUS_10": b"\x92",
    "FEED_PLUS_1": b"\x93",
    "FEED_MINUS_1": b"\x94",
    "RAPID_100": b"\x95",
    "RAPID_50": b"\x96",
    "RAPID_25": b"\x97",
    "SPINDLE_100": b"\x99",
    "SPINDLE_PLUS_10": b"\x9a",
    "SPINDLE_MINUS_10": b"\x9b",
    "SPINDLE_PLUS_1": b"\x9c",
    "SPINDLE_MINUS_1": b"\x9d",
    "SPINDLE_STOP": b"\x9e",
    "FLOOD": b"\xa0",
    "MIST": b"\xa1",
}
REALTIME_BYTES: frozenset[int] = frozenset(b[0] for b in REALTIME.values())

#: GRBL's line buffer is LINE_BUFFER_SIZE (80) bytes including the terminating NUL:
#: a cleaned line of more than 79 characters is answered with error:11.
LINE_MAX = 79
#: Serial receive buffer of a stock GRBL 1.1 on an ATmega328p (bytes).
RX_BUFFER_DEFAULT = 128


def clean_line(line: str) -> str:
    """The line as GRBL's main loop stores it before parsing.

    Mirrors protocol.c: ``( )`` comments and ``;`` to end of line dropped, spaces and
    control characters dropped, ``/`` (block delete) ignored, letters upper-cased
    (``$`` commands too: GRBL stores ``$N0=`` and ``$I=`` text upper-cased). Realtime
    characters (``? ! ~`` and bytes above 0x7F) are removed as well, because GRBL's
    serial interrupt takes them out of the stream before the line is assembled — so a
    cleaned line can never trigger a hold by accident.
    """
    out: list[str] = []
    in_paren = False
    for ch in line:
        if ch in "\r\n":
            break
        if in_paren:
            if ch == ")":
                in_paren = False
            continue
        code = ord(ch)
        if code <= 0x20 or code > 0x7F or ch in "/?!~":
            continue
        if ch == "(":
            in_paren = True
        elif ch == ";":
            break
        else:
            out.append(ch.upper() if "a" <= ch <= "z" else ch)
    return "".join(out)


_WORD = re.compile(r"([A-Z])([-+]?[0-9.]*)")
_EEPROM_DOLLAR = re.compile(r"^\$(\d+=|I=|N\d+=|RST=)")


def writes_eeprom(cleaned: str) -> bool:
    """True if GRBL writes EEPROM for this (cleaned) line: G10 L2/L20, G28.1, G30.1, $x=, $I=, $Nx=, $RST=.

    While the AVR writes EEPROM its serial receive interrupt is off and bytes arriving
    meanwhile are lost, so such a line must be sent alone and its answer awaited.
    """
    if cleaned.startswith("$"):
        return bool(_EEPROM_DOLLAR.match(cleaned))
    g_values: set[float] = set()
    l_values: set[float] = set()
    for letter, value in _WORD.findall(cleaned):
        try:
            number = float(value)
        except ValueError:
            continue
        if letter == "G":
            g_values.add(round(number, 1))
        elif letter == "L":
            l_values.add(number)
    if 28.1 in g_values or 30.1 in g_values:
        return True
    return 10.0 in g_values and bool(l_values & {2.0, 20.0})


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Banner:
    """Welcome message after power-up or soft reset: everything in flight was discarded."""

    version: str
    raw: str


@dataclass(frozen=True)
class Ok:
    pass


@dataclass(frozen=True)
class Error:
    code: int
    message: str


@dataclass(frozen=True)
class Alarm:
    code: int
    message: str


@dataclass(frozen=True)
class Status:
    """A ``<...>`` report, with both positions filled in from the cached work offset."""

    state: str
    substate: int | None
    mpos: tuple[float, ...] | None
    wpos: tuple[float, ...] | None
    wco: tuple[float, ...] | None
    planner_free: int | None
    rx_free: int | None
    line: int | None
    feed: float | None
    spindle: float | None
    overrides: tuple[int, int, int] | None
    pins: frozenset[str]
    accessories: frozenset[str]
    raw: str


@dataclass(frozen=True)
class Message:
    text: str


@dataclass(frozen=True)
class GcodeState:
    words: tuple[str, ...]


@dataclass(frozen=True)
class Help:
    text: str


@dataclass(frozen=True)
class Version:
    version: str
    info: str


@dataclass(frozen=True)
class Options:
    codes: str
    planner_blocks: int | None
    rx_buffer: int | None


@dataclass(frozen=True)
class Probe:
    position: tuple[float, ...]
    success: bool


@dataclass(frozen=True)
class Parameter:
    """One ``$#`` line: G54..G59, G28, G30, G92 (axis values) or TLO (one value)."""

    name: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class Setting:
    number: int
    value: str


@dataclass(frozen=True)
class StartupLine:
    """``$N0=...`` / ``$N1=...`` as listed by ``$N``."""

    index: int
    line: str


@dataclass(frozen=True)
class StartupEcho:
    """``>G20G54:ok``: a startup line GRBL ran after reset and its result."""

    line: str
    result: str


@dataclass(frozen=True)
class Unknown:
    line: str


Event = Union[
    Banner, Ok, Error, Alarm, Status, Message, GcodeState, Help, Version, Options, Probe,
    Parameter, Setting, StartupLine, StartupEcho, Unknown,
]

# --------------------------------------------------------------------------- parser

_BANNER = re.compile(r"^Grbl(?:HAL)?\s+(\S+)\s*\[.*\]\s*$")
_ERROR = re.compile(r"^error:(\d+)$")
_ALARM = re.compile(r"^ALARM:(\d+)$")
_SETTING = re.compile(r"^\$(\d+)=(.*)$")
_STARTUP_LINE = re.compile(r"^\$N(\d+)=(.*)$")
_STARTUP_ECHO = re.compile(r"^>(.*):(ok|error:\d+)$")
_PARAMS = {"G54", "G55", "G56", "G57", "G58", "G59", "G28", "G30", "G92", "TLO"}
_MAX_PARTIAL = 1024  # a "line" longer than this without a terminator is garbage


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


class GrblParser:
    """Turns received bytes into events; keeps a partial line and the report caches.

    WCO and Ov appear only in some status reports (GRBL refreshes them every 10-30
    reports), so they are cached; every Status carries MPos and WPos both, computed
    with the cached WCO (None until a WCO has been seen). A banner (reset) clears
    the caches: GRBL resets overrides to 100 % and reports WCO in its next report.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.wco: tuple[float, ...] | None = None
        self.overrides: tuple[int, int, int] | None = None
        self.accessories: frozenset[str] = frozenset()

    def feed(self, data: bytes) -> list[Event]:
        """Events for every complete line in ``data`` (plus what was kept from earlier calls)."""
        self._buffer += data
        events: list[Event] = []
        while True:
            lf = self._buffer.find(b"\n", 0, _MAX_PARTIAL + 1)
            cr = self._buffer.find(b"\r", 0, _MAX_PARTIAL + 1)
            cut = min(i for i in (lf, cr, 1 << 30) if i >= 0)
            if cut == 1 << 30:
                if len(self._buffer) > _MAX_PARTIAL:
                    chunk = bytes(self._buffer[:_MAX_PARTIAL])
                    del self._buffer[:_MAX_PARTIAL]
                    events.append(Unknown(chunk.decode("utf-8", "replace")))
                    continue
                return events
            raw = bytes(self._buffer[:cut])
            del self._buffer[: cut + 1]
            if raw:
                events.append(self.parse_line(raw.decode("utf-8", "replace")))

    def parse_line(self, line: str) -> Event:
        """One line (without its terminator) as an event; never raises."""
        try:
            return self._parse(line)
        except (ValueError, IndexError):
            return Unknown(line)

    def _parse(self, line: str) -> Event:
        if line == "ok":
            return Ok()
        if line.startswith("<") and line.endswith(">"):
            return self._status(line)
        if m := _ERROR.match(line):
            code = int(m.group(1))
            return Error(code, error_message(code))
        if m := _ALARM.match(line):
            code = int(m.group(1))
            return Alarm(code, alarm_message(code))
        if line.startswith("[") and line.endswith("]"):
            return self._bracket(line[1:-1], line)
        if m := _STARTUP_LINE.match(line):
            return StartupLine(int(m.group(1)), m.group(2))
        if m := _SETTING.match(line):
            return Setting(int(m.group(1)), m.group(2))
        if m := _STARTUP_ECHO.match(line):
            return StartupEcho(m.group(1), m.group(2))
        if m := _BANNER.match(line):
            self.wco = None
            self.overrides = (100, 100, 100)
            self.accessories = frozenset()
            return Banner(m.group(1), line)
        return Unknown(line)

    def _bracket(self, body: str, line: str) -> Event:
        tag, sep, rest = body.partition(":")
        if not sep:
            return Unknown(line)
        if tag == "MSG":
            return Message(rest)
        if tag == "GC":
            return GcodeState(tuple(rest.split()))
        if tag == "HLP":
            return Help(rest)
        if tag == "VER":
            version, _, info = rest.partition(":")
            return Version(version, info)
        if tag == "OPT":
            parts = rest.split(",")
            codes = parts[0]
            blocks = int(parts[1]) if len(parts) > 1 and parts[1] else None
            rx = int(parts[2]) if len(parts) > 2 and parts[2] else None
            return Options(codes, blocks, rx)
        if tag == "PRB":
            position, _, flag = rest.rpartition(":")
            return Probe(_floats(position), flag == "1")
        if tag in _PARAMS:
            return Parameter(tag, _floats(rest))
        return Unknown(line)

    def _status(self, line: str) -> Event:
        fields = line[1:-1].split("|")
        state, _, sub = fields[0].partition(":")
        if not state:
            return Unknown(line)
        substate = int(sub) if sub else None
        mpos = wpos = None
        planner_free = rx_free = line_no = None
        feed = spindle = None
        pins: frozenset[str] = frozenset()
        accessories: frozenset[str] | None = None
        overrides: tuple[int, int, int] | None = None
        wco = None
        for item in fields[1:]:
            name, _, value = item.partition(":")
            if name == "MPos":
                mpos = _floats(value)
            elif name == "WPos":
                wpos = _floats(value)
            elif name == "Bf":
                a, b = value.split(",")
                planner_free, rx_free = int(a), int(b)
            elif name == "Ln":
                line_no = int(value)
            elif name == "F":
                feed = float(value)
            elif name == "FS":
                a, b = value.split(",")
                feed, spindle = float(a), float(b)
            elif name == "WCO":
                wco = _floats(value)
            elif name == "Ov":
                f, r, s = (int(v) for v in value.split(","))
                overrides = (f, r, s)
            elif name == "Pn":
                pins = frozenset(value)
            elif name == "A":
                accessories = frozenset(value)
            # other fields (from forks) are ignored, not fatal
        if wco is not None:
            self.wco = wco
        if overrides is not None:
            self.overrides = overrides
            self.accessories = accessories if accessories is not None else frozenset()
        elif accessories is not None:
            self.accessories = accessories
        cached = self.wco
        if cached is not None:
            if mpos is not None and wpos is None and len(cached) == len(mpos):
                wpos = tuple(round(m - w, 6) for m, w in zip(mpos, cached))
            elif wpos is not None and mpos is None and len(cached) == len(wpos):
                mpos = tuple(round(p + w, 6) for p, w in zip(wpos, cached))
        return Status(
            state=state, substate=substate, mpos=mpos, wpos=wpos, wco=cached,
            planner_free=planner_free, rx_free=rx_free, line=line_no, feed=feed, spindle=spindle,
            overrides=self.overrides, pins=pins, accessories=self.accessories, raw=line,
        )


# --------------------------------------------------------------------------- sending


class WindowError(RuntimeError):
    """A line was registered although :meth:`CharacterCounter.can_send` said no."""


@dataclass
class _InFlight:
    size: int
    tag: object
    eeprom: bool


class CharacterCounter:
    """The streaming window: how many bytes sit unanswered in GRBL's RX buffer.

    Mode ``"cc"`` (character counting) keeps the RX buffer as full as it can hold;
    mode ``"sr"`` (send-response) allows one line in flight. In both, a line that
    writes EEPROM waits for an empty window, goes alone, and blocks further lines
    until its answer. Answers (``ok``/``error``) arrive in send order, so each one
    releases the oldest line. Realtime bytes never pass through here.
    """

    def __init__(self, rx_buffer: int = RX_BUFFER_DEFAULT, mode: str = "cc") -> None:
        if mode not in ("cc", "sr"):
            raise ValueError(f"mode must be 'cc' or 'sr', not {mode!r}")
        if rx_buffer <= 0:
            raise ValueError("rx_buffer must be positive")
        self.rx_buffer = rx_buffer
        self.mode = mode
        self._queue: deque[_InFlight] = deque()
        self._bytes = 0

    @property
    def in_flight(self) -> int:
        """Bytes sent and not yet answered."""
        return self._bytes

    @property
    def pending(self) -> int:
        """Lines sent and not yet answered."""
        return len(self._queue)

    @property
    def blocked_on_eeprom(self) -> bool:
        """An EEPROM-writing line is in flight: nothing else may go until it is answered."""
        return any(item.eeprom for item in self._queue)

    def can_send(self, cleaned_line: str) -> bool:
        if self.blocked_on_eeprom:
            return False
        if self.mode == "sr" or writes_eeprom(cleaned_line):
            return not self._queue
        if not self._queue:
            return True
        return self._bytes + len(cleaned_line.encode("ascii", "replace")) + 1 <= self.rx_buffer

    def sent(self, cleaned_line: str, tag: object) -> bytes:
        """Register the line as sent; returns the bytes to write (line + newline)."""
        if not self.can_send(cleaned_line):
            raise WindowError(f"line does not fit the window now ({self._bytes} bytes in flight)")
        data = cleaned_line.encode("ascii", "replace") + b"\n"
        self._queue.append(_InFlight(len(data), tag, writes_eeprom(cleaned_line)))
        self._bytes += len(data)
        return data

    def acknowledge(self) -> object:
        """Release the oldest line (on ``ok`` or ``error:N``) and return its tag; None if nothing is in flight."""
        if not self._queue:
            return None
        item = self._queue.popleft()
        self._bytes -= item.size
        return item.tag

    def reset(self) -> None:
        """Forget everything in flight (after a soft reset or a lost link GRBL discards its buffers)."""
        self._queue.clear()
        self._bytes = 0
