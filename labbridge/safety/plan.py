"""What one block will do: decided against a copy of the modal state, committed only if valid.

The interpreter fills a :class:`Plan` step by step (modal groups, non-modal
commands, motion); any step may raise :class:`~labbridge.safety.words.BlockError`,
and then nothing of the plan is kept. :class:`BlockResult` is what the caller sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labbridge.safety.diagnostics import Diagnostic
from labbridge.safety.modal import Distance, Modal
from labbridge.safety.motion import Motion, Vec
from labbridge.safety.words import BlockWords


@dataclass(slots=True)
class ArcPlan:
    """An arc's geometry as the interpreter worked it out (machine coordinates, mm)."""

    center: Vec
    radius: float
    sweep: float  # signed radians: negative clockwise (see safety.geometry)
    clockwise: bool


@dataclass(slots=True)
class Plan:
    """The block's decisions; ``new`` is the modal state after it."""

    words: BlockWords
    state: Modal  # the modal state before the block (read only)
    new: Modal
    diags: list[Diagnostic] = field(default_factory=list)
    used: set[str] = field(default_factory=lambda: {"N", "F", "S", "T"})  # words some command consumed
    nonmodal: int | None = None
    axis_command: str | None = None
    axis_words: dict[int, float] = field(default_factory=dict)  # axis index -> value (mm after units)
    incremental_words: set[int] = field(default_factory=set)  # lathe U/W
    scale: float = 1.0  # program units to mm
    dwell_seconds: float | None = None
    tool_change: int | None = None
    tlo: float = 0.0  # tool length offset after the block
    block_wcs: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # the work offset this block uses
    wcs_values: tuple[int, list[float]] | None = None  # G10: (index, new offset)
    g92: list[float] | None = None
    store_home: int | None = None  # G28.1 / G30.1
    home_target: list[float] | None = None  # G28 / G30
    target: list[float] | None = None  # end point of the block's motion, machine coordinates
    arc: ArcPlan | None = None

    @property
    def line(self) -> int:
        return self.words.line

    @property
    def absolute(self) -> bool:
        return self.new.distance == Distance.ABSOLUTE


@dataclass(slots=True)
class BlockResult:
    ok: bool
    diagnostics: list[Diagnostic] = field(default_factory=list)
    motions: list[Motion] = field(default_factory=list)
    program_end: bool = False
    stop: bool = False
    cleaned: str | None = None  # the block as the controller should receive it (None: send nothing)
    message: str | None = None
    spindle_on: bool = False
    tool_change: int | None = None
    # GRBL finishes every queued motion before this block acts (protocol_buffer_synchronize): a spindle or
    # coolant change, a new S while the spindle runs, a dwell, an EEPROM write, a probe.
    sync: bool = False
