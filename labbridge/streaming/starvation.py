"""A stream that starves mid-cut: labbridge stopped feeding the machine (the process was stopped, the laptop
slept, the CPU was taken) and the planner ran dry with the spindle on, the tool rubbing one spot.

The runner beats every ``BEAT`` seconds and before each write. A gap of more than
``STALL_AFTER`` seconds between beats means nothing could be sent for that long.
Then, before any more lines go out, the runner asks for status reports for
``JUDGE_SECONDS``: a report read from the port buffer may be stale (asked for
before the stall), but a machine that ran dry stays Idle until new lines arrive,
so one Idle report while lines are still to send is proof. :class:`Starved` says
for how long nothing went out and at which program line the tool stood. Sans-IO:
the runner passes the clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from labbridge.streaming import texts as T

BEAT = 0.25
STALL_AFTER = 1.5
JUDGE_SECONDS = 0.3


@dataclass(frozen=True)
class Starved:
    seconds: float  # how long no data went out
    line: int | None  # the program line the machine stood at

    def message(self) -> str:
        seconds = f"{self.seconds:.1f}"
        if self.line is None:
            return T.STARVED.format(seconds=seconds)
        return T.STARVED_AT.format(seconds=seconds, line=self.line)


class StallWatch:
    """Notices gaps in the runner's own activity and judges them by the status reports that follow."""

    def __init__(self, stall_after: float = STALL_AFTER, judge_seconds: float = JUDGE_SECONDS) -> None:
        self.stall_after = stall_after
        self.judge_seconds = judge_seconds
        self.last_beat: float | None = None
        self.starvations: list[Starved] = []
        self._gap: float | None = None
        self._until: float | None = None
        self._idle_line: int | None = None
        self._idle = False

    def beat(self, now: float) -> bool:
        """A heartbeat or a write is due; True when it follows a stall (judging begins: send nothing yet)."""
        last, self.last_beat = self.last_beat, now
        if last is None or self._until is not None or now - last <= self.stall_after:
            return False
        self._gap, self._until, self._idle, self._idle_line = now - last, now + self.judge_seconds, False, None
        return True

    @property
    def gap(self) -> float | None:
        """The stall being judged, in seconds."""
        return self._gap

    @property
    def judging(self) -> bool:
        return self._until is not None

    def status(self, idle: bool, line: int | None) -> None:
        """A status report while judging: Idle with lines still to send means the planner ran dry."""
        if self._until is not None and idle and not self._idle:
            self._idle, self._idle_line = True, line

    def due(self, now: float) -> bool:
        return self._until is not None and now >= self._until

    def conclude(self) -> Starved | None:
        """End the judgement; a Starved when the machine ran dry."""
        starved = Starved(self._gap or 0.0, self._idle_line) if self._idle else None
        self._gap = self._until = None
        self._idle, self._idle_line = False, None
        if starved is not None:
            self.starvations.append(starved)
        return starved
