"""Canonical motions: the seam between interpreting G-code and checking it.

Positions are machine coordinates in mm as (X, Y, Z) tuples; a lathe's X is a
radius here (true geometry), converted to diameter only for reports. Every
motion carries the program line it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Vec = tuple[float, float, float]
MotionKind = Literal["traverse", "feed", "arc", "probe", "dwell"]


@dataclass(slots=True)
class Motion:
    kind: MotionKind
    line: int
    start: Vec
    end: Vec
    feed: float = 0.0  # mm/min for feed, arc and probe; 0 for traverse and dwell
    # Arcs only: centre (machine coords), plane axes (a, b, normal) as indices into Vec, direction, and the
    # signed angle swept in radians (negative clockwise, magnitude up to 2*pi): see safety.geometry.
    center: Vec | None = None
    plane: tuple[int, int, int] = (0, 1, 2)
    clockwise: bool = False
    sweep: float = 0.0
    radius: float = 0.0
    seconds: float = 0.0  # dwell time, or inverse-time duration (G93)
