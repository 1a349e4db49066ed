"""How fast a drip-feed may write so that a DC3 is obeyed within the control's slack.

A Fanuc-style control sends DC3 when its tape buffer is nearly full and then
accepts only about ten more characters (``dc3_slack``). Characters that reach it
after its DC3 are the rest of the chunk on the wire plus every chunk the sender
writes before it sees the DC3: that takes the DC3's own character time ``c`` plus
the sender's reaction ``R`` (USB adapter, thread, event loop) — a window
``W = c + R``. The sender writes ``k`` characters, waits their line time and a
``gap`` (a period ``P = k·c + gap``) and reads its input before each write. If the
chunk on the wire was written ``φ`` before the DC3, ``k - floor(φ/c)`` of its
characters follow the DC3, and so does every later write that starts less than
``W`` after the DC3: :func:`worst_after_dc3` takes the worst ``φ``.
:func:`plan_pacing` picks, for each ``k``, the shortest period that keeps this
within the slack, and the largest ``k`` within 10 % of the highest throughput. Pure arithmetic: no clock, no port.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_SLACK = 10
DEFAULT_REACTION = 0.010  # seconds from the DC3's last bit to labbridge not writing any more
MIN_PERIOD = 0.003  # a write and an event-loop turn take about this long: faster plans are not reached


@dataclass(frozen=True)
class Pacing:
    """``chunk`` characters per write, then the line time of those and ``gap`` seconds before the next."""

    chunk: int
    gap: float
    char_time: float  # seconds one character takes on the line
    reaction: float
    slack: int

    @property
    def period(self) -> float:
        return self.chunk * self.char_time + self.gap

    @property
    def worst_after_dc3(self) -> int:
        """Characters that can reach the control after it sent DC3, if the sender reacts within ``reaction``."""
        return worst_after_dc3(self.chunk, self.period, self.char_time, self.char_time + self.reaction)

    @property
    def throughput(self) -> float:
        """Fraction of the line's character rate used."""
        return self.chunk * self.char_time / self.period

    def wait_after(self, written: int) -> float:
        """Seconds to let pass after writing ``written`` characters before the next write."""
        return written * self.char_time + self.gap


def char_time(baudrate: int, bytesize: int = 7, parity: str = "E", stopbits: int = 2) -> float:
    """Seconds per character: start bit, data bits, parity bit, stop bits."""
    bits = 1 + bytesize + (0 if parity == "N" else 1) + stopbits
    return bits / baudrate


def worst_after_dc3(chunk: int, period: float, char_seconds: float, window: float) -> int:
    """At most this many characters follow a DC3 (see the module notes).

    With ``j`` later writes landing inside the window, the chunk on the wire left at
    least ``j·P - W`` before the DC3; the earliest such moment leaves the most of it.
    """
    worst = chunk  # j = 0: the whole chunk was written just as the DC3 left
    j = 1
    while j * period - window < period:
        sent_before = max(0.0, j * period - window)
        on_wire = max(0, chunk - math.floor(sent_before / char_seconds + 1e-12))
        worst = max(worst, chunk * j + on_wire)
        j += 1
    return worst


def plan_pacing(char_seconds: float, slack: int = DEFAULT_SLACK, reaction: float = DEFAULT_REACTION,
                max_chunk: int | None = None, min_period: float = MIN_PERIOD) -> Pacing:
    """The fastest chunk and gap whose worst case stays within ``slack`` characters after DC3."""
    if slack < 1:
        raise ValueError("dc3_slack must be at least 1 character")
    window = char_seconds + reaction
    plans = []
    for chunk in range(1, min(slack, max_chunk or slack) + 1):
        line = chunk * char_seconds
        lo, hi = line, line + window  # at a period of line + window, no second write can land: worst = chunk
        if worst_after_dc3(chunk, lo, char_seconds, window) <= slack:
            hi = lo
        else:
            for _ in range(60):  # the worst case only falls as the period grows: bisect for the shortest
                mid = (lo + hi) / 2
                if worst_after_dc3(chunk, mid, char_seconds, window) <= slack:
                    hi = mid
                else:
                    lo = mid
        gap = 0.0 if hi == line else hi - line + 1e-9  # a nanosecond more: rounding never shortens the period
        plans.append(Pacing(chunk, gap, char_seconds, reaction, slack))
    # Throughput as reached: no write cycle is shorter than min_period (a longer period is always safe).
    # Fewer, larger writes where they cost little: the largest chunk within 10 % of the best.
    def reached(p: Pacing) -> float:
        return p.chunk * char_seconds / max(p.period, min_period)

    best = max(reached(p) for p in plans)
    return max((p for p in plans if reached(p) >= 0.9 * best), key=lambda p: p.chunk)
