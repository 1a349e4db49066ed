"""The modal state of a G-code program, with every modal value named.

G-codes are identified by ``gkey(value) = round(value * 10)`` (G38.2 is 382, G1 is
10) because that is how the dialect tables look words up. The enums below give
those keys names, so code reads ``Plane.XY`` instead of ``170``; they are
``IntEnum`` so the C fast path (labbridge/safety/_fastcheck.c, which mirrors the
values in its own enums) and older callers comparing with numbers still agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

MM_PER_INCH = 25.4


def gkey(value: float) -> int:
    """The table key of a G-code number: G38.2 -> 382."""
    return int(round(value * 10))


def gname(code: int) -> str:
    """The G-code a key stands for, as a student writes it: 382 -> 'G38.2'."""
    return f"G{code // 10}" + (f".{code % 10}" if code % 10 else "")


def fmt(v: float) -> str:
    """A number as short as it can be written: 10.0 -> '10', 0.25 -> '0.25'."""
    return f"{v:.3f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


class MotionMode(IntEnum):
    """Modal group 1: how axis words move the machine."""

    RAPID = 0  # G0
    LINEAR = 10  # G1
    ARC_CW = 20  # G2
    ARC_CCW = 30  # G3
    PROBE_TOWARD = 382  # G38.2: alarm if no contact
    PROBE_TOWARD_QUIET = 383  # G38.3
    PROBE_AWAY = 384  # G38.4: alarm if contact is kept
    PROBE_AWAY_QUIET = 385  # G38.5
    CYCLE_PECK_FAST = 730  # G73 high-speed peck drilling
    CYCLE_DRILL = 810  # G81
    CYCLE_DRILL_DWELL = 820  # G82
    CYCLE_PECK = 830  # G83
    CYCLE_TAP = 840  # G84
    CYCLE_BORE = 850  # G85: feed in, feed out
    CYCLE_BORE_STOP = 860  # G86: spindle stops at the bottom
    CYCLE_BORE_DWELL = 890  # G89: dwell, feed out
    CANCEL = 800  # G80: no motion mode


ARCS = frozenset((MotionMode.ARC_CW, MotionMode.ARC_CCW))
PROBES = frozenset((MotionMode.PROBE_TOWARD, MotionMode.PROBE_TOWARD_QUIET, MotionMode.PROBE_AWAY,
                    MotionMode.PROBE_AWAY_QUIET))
CYCLES = frozenset((MotionMode.CYCLE_PECK_FAST, MotionMode.CYCLE_DRILL, MotionMode.CYCLE_DRILL_DWELL,
                    MotionMode.CYCLE_PECK, MotionMode.CYCLE_TAP, MotionMode.CYCLE_BORE, MotionMode.CYCLE_BORE_STOP,
                    MotionMode.CYCLE_BORE_DWELL))


class NonModal(IntEnum):
    """Modal group 0: commands that act in their own block only."""

    DWELL = 40  # G4
    SET_OFFSETS = 100  # G10 L2/L20
    GO_PREDEFINED = 280  # G28
    SET_PREDEFINED = 281  # G28.1
    GO_PREDEFINED_2 = 300  # G30
    SET_PREDEFINED_2 = 301  # G30.1
    LATHE_CLAMP = 500  # G50 (Fanuc lathe: spindle clamp with S, coordinate shift with axis words)
    MACHINE_COORDS = 530  # G53
    SHIFT_ORIGIN = 920  # G92
    CLEAR_SHIFT = 921  # G92.1


class Plane(IntEnum):
    """Modal group 2: the plane arcs and canned cycles work in."""

    XY = 170  # G17
    ZX = 180  # G18
    YZ = 190  # G19

    @property
    def axes(self) -> tuple[int, int, int]:
        """(first plane axis, second plane axis, normal axis) as indices into (X, Y, Z)."""
        return PLANE_AXES[self]

    @property
    def label(self) -> str:
        return f"{gname(self)} ({'XY' if self is Plane.XY else 'ZX' if self is Plane.ZX else 'YZ'})"


PLANE_AXES: dict[int, tuple[int, int, int]] = {Plane.XY: (0, 1, 2), Plane.ZX: (2, 0, 1), Plane.YZ: (1, 2, 0)}


class Distance(IntEnum):
    """Modal group 3."""

    ABSOLUTE = 900  # G90
    INCREMENTAL = 910  # G91


class FeedMode(IntEnum):
    """Modal group 5: what F means."""

    INVERSE_TIME = 930  # G93: 1/minutes per move
    PER_MINUTE = 940  # G94: mm (or inch) per minute
    PER_REV = 950  # G95: mm (or inch) per spindle revolution


class Units(IntEnum):
    """Modal group 6."""

    INCH = 200  # G20
    MM = 210  # G21


class ToolLength(IntEnum):
    """Modal group 8."""

    TABLE = 430  # G43 H: Fanuc tool table
    DYNAMIC = 431  # G43.1 Z: GRBL's dynamic tool length
    CANCEL = 490  # G49


class Retract(IntEnum):
    """Modal group 10: where a canned cycle returns after each hole."""

    INITIAL_LEVEL = 980  # G98
    R_LEVEL = 990  # G99


class SpindleMode(IntEnum):
    """Fanuc spindle speed mode."""

    SURFACE_SPEED = 960  # G96: S is metres per minute
    RPM = 970  # G97


class Spindle(IntEnum):
    """Spindle state, named by its M-code."""

    CW = 3
    CCW = 4
    OFF = 5


WCS_BASE = 540  # G54; G55..G59 follow in steps of 10


@dataclass(slots=True)
class CycleState:
    """A canned-cycle series (LinuxCNC's and Fanuc's rules, see safety.cycles): kept from block to block until
    G80 or another motion mode ends it. ``initial_z`` is machine Z; the words are in mm as written (work
    coordinates under G90, increments under G91), as LinuxCNC keeps ``cycle_r`` and ``cycle_cc``."""

    initial_z: float | None = None  # the Z where the series started (G98 returns here)
    r_word: float | None = None
    z_word: float | None = None
    q: float = 0.0  # peck depth, mm
    p: float = 0.0  # dwell, seconds

    def copy(self) -> CycleState:
        return CycleState(self.initial_z, self.r_word, self.z_word, self.q, self.p)


@dataclass(slots=True)
class Modal:
    """The modal state a program leaves behind, block by block."""

    motion: int = MotionMode.RAPID
    plane: int = Plane.XY
    distance: int = Distance.ABSOLUTE
    feed_mode: int = FeedMode.PER_MINUTE
    units: int = Units.MM
    wcs: int = 0  # index into G54..G59
    tlo_mode: int = ToolLength.CANCEL
    spindle: int = Spindle.OFF
    flood: bool = False
    mist: bool = False
    feed: float = 0.0  # mm/min (G94), 1/min (G93), mm/rev (G95)
    rpm: float = 0.0  # S in rpm (or surface speed m/min under G96: see css_speed)
    tool: int = 0
    css: bool = False
    css_speed: float = 0.0
    clamp: float | None = None
    retract: int = Retract.INITIAL_LEVEL
    cycle: CycleState = field(default_factory=CycleState)

    def copy(self) -> Modal:
        values = [getattr(self, f) for f in self.__slots__]  # type: ignore[attr-defined]
        m = Modal(*values)
        m.cycle = self.cycle.copy()
        return m

    @classmethod
    def power_on(cls, lathe: bool) -> Modal:
        """The modes a controller starts in (a lathe works in G18 with feed per revolution)."""
        m = cls()
        if lathe:
            m.plane = Plane.ZX
            m.feed_mode = FeedMode.PER_REV
        return m
