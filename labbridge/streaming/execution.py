"""Which program line a GRBL machine really executed: its reported position matched against the motions sent.

GRBL answers ``ok`` when a line enters its planner, up to 15 blocks (and a serial
buffer) before the machine runs it; after an ``error:N`` the runner holds and
resets and those blocks never run. So the last acknowledged line is not where
the machine stopped. The tracker interprets each line as it is sent — the same
interpreter as the safety gate, from the same start position and live offsets —
keeps the lines not yet known to have run, and on each status report takes the
first of them whose path passes through the reported machine position. Where
the firmware reports ``Ln:`` (line numbers compiled in and N words in the
program) that number decides.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass

from labbridge.config import Machine
from labbridge.safety import Interpreter
from labbridge.safety.geometry import distance_to_motion
from labbridge.safety.motion import Motion, Vec

TOLERANCE = 0.05  # mm: step resolution, arc chords and report rounding together stay well within this
MAX_PENDING = 20_000  # lines kept waiting for a position match (far more than GRBL ever buffers)
_N_WORD = re.compile(r"^N(\d+)")


@dataclass
class _Sent:
    number: int | None  # program line (None for a resume preamble line)
    motions: list[Motion]
    n_word: int | None


class ExecutionTracker:
    """Feed it each line as it is sent and each status report; ``executed`` is the program line reached."""

    def __init__(self, machine: Machine, machine_id: str, work_offsets: dict[str, Vec] | None = None,
                 start: Vec | None = None) -> None:
        self.interp = Interpreter(machine, work_offsets=work_offsets, start=start, machine_id=machine_id)
        self.pending: deque[_Sent] = deque()
        self.executed: int | None = None  # the program line running at the last report (or the last one run)

    def sent(self, number: int, text: str, preamble: bool = False) -> None:
        result = self.interp.execute(text, number)
        match = _N_WORD.match(text)
        self.pending.append(_Sent(None if preamble else number, list(result.motions),
                                  int(match.group(1)) if match else None))
        if len(self.pending) > MAX_PENDING:
            self._done_through(0)

    def report(self, position: Vec | None, *, idle: bool = False, line_word: int | None = None) -> int | None:
        """A status report: machine position, Idle with an empty planner, ``Ln:``. Returns ``executed``."""
        pending = self.pending
        if idle:
            if pending:
                self._done_through(len(pending) - 1)
            return self.executed
        if line_word is not None:
            for i, sent in enumerate(pending):
                if sent.n_word == line_word:
                    self._reached(i)
                    return self.executed
        if position is None:
            return self.executed
        for i, sent in enumerate(pending):
            if any(distance_to_motion(m, position) <= TOLERANCE for m in sent.motions):
                self._reached(i)
                break
        return self.executed

    def _reached(self, index: int) -> None:
        """The machine is on the line at ``index``: everything before it has run."""
        if index:
            self._done_through(index - 1)
        number = self.pending[0].number
        if number is not None:
            self.executed = number

    def _done_through(self, index: int) -> None:
        for _ in range(index + 1):
            sent = self.pending.popleft()
            if sent.number is not None:
                self.executed = sent.number


def locate(lines: list[str], machine: Machine, machine_id: str, position: Vec, first: int, last: int, *,
           work_offsets: dict[str, Vec] | None = None, idle: bool = True) -> int | None:
    """Where a machine stands in a program after the bridge stopped: the line to resume from, or None.

    The controller ran on with what it had buffered, so the truth lies between the last line
    the record saw executed (``first``) and the last line sent (``last``). Lines are searched
    from ``last`` backwards; a machine idle at the end of the last line sent ran everything:
    resume after it. On a line's path but not at its end: resume that line.
    """
    interp = Interpreter(machine, work_offsets=work_offsets, machine_id=machine_id)
    paths: dict[int, list[Motion]] = {}
    for number, text in enumerate(lines[:last], 1):
        result = interp.execute(text, number)
        if number >= first and result.motions:
            paths[number] = list(result.motions)
    for number in sorted(paths, reverse=True):
        motions = paths[number]
        if not any(distance_to_motion(m, position) <= TOLERANCE for m in motions):
            continue
        at_end = distance_to_motion_end(motions[-1], position) <= TOLERANCE
        if at_end and idle and number == max(paths):
            return last + 1 if last < len(lines) else None
        return number + 1 if at_end and idle else number
    return None


def distance_to_motion_end(m: Motion, p: Vec) -> float:
    return math.dist(m.end, p)
