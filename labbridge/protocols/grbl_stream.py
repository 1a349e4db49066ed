"""The streaming engine without I/O: program lines in, bytes to write out; controller answers in, outcomes out.

Kept sans-IO so that every rule that decides what reaches the machine — the
character-counting window, EEPROM-writing lines sent alone, stopping at once on
``error:N`` or ``ALARM:N``, forgetting the window after a reset — is tested by
feeding events, with no port and no clock. The job runner wraps it with the
driver; the benchmark uses it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Union

from labbridge.protocols import grbl as gp


@dataclass(frozen=True)
class StreamLine:
    """One block as it goes on the wire, with where it came from (for messages and resume)."""

    number: int  # program line number; resume-preamble lines count 1, 2, ... in their own numbering
    text: str  # cleaned, as the controller receives it (no newline)
    preamble: bool = False

    @property
    def where(self) -> str:
        return f"resume preamble line {self.number}" if self.preamble else f"line {self.number}"


def program_lines(numbered: Iterable[tuple[int, str]], *, preamble: bool = False) -> list[StreamLine]:
    """Clean each source line as GRBL would and drop what sends nothing (comments, blank lines, ``%``)."""
    out = []
    for number, raw in numbered:
        text = gp.clean_line(raw)
        if text and text != "%":
            out.append(StreamLine(number, text, preamble))
    return out


class EngineState(Enum):
    STREAMING = "streaming"
    PAUSED = "paused"  # held: nothing new goes out until resumed
    STOPPED = "stopped"  # cancelled by the operator: nothing more goes out
    COMPLETED = "completed"  # every line answered ok
    FAILED = "failed"  # error:N, ALARM:N or an unexpected reset: nothing more goes out


@dataclass(frozen=True)
class Acked:
    """The controller answered ``ok`` for this line."""

    line: StreamLine
    index: int


@dataclass(frozen=True)
class Rejected:
    """The controller answered ``error:N`` for this line; streaming stopped."""

    line: StreamLine
    index: int
    code: int
    message: str

    @property
    def words(self) -> str:
        return f"error:{self.code}"


@dataclass(frozen=True)
class Alarmed:
    """``ALARM:N``: the controller stopped and locked itself; streaming stopped."""

    code: int
    message: str
    last_acked: StreamLine | None

    @property
    def words(self) -> str:
        return f"ALARM:{self.code}"


@dataclass(frozen=True)
class ControllerReset:
    """A banner arrived: the controller was reset and discarded every line in flight."""

    lost: int  # lines sent but never answered
    expected: bool  # the runner asked for the reset (cancel)


@dataclass(frozen=True)
class Completed:
    lines: int


@dataclass(frozen=True)
class Stray:
    """An ``ok``/``error`` with nothing in flight (from a command sent outside the job)."""

    event: object


Outcome = Union[Acked, Rejected, Alarmed, ControllerReset, Completed, Stray]


class StreamEngine:
    """Decides which lines go out when, and what each controller answer means for the job.

    ``mode`` is ``"cc"`` (character counting, the default) or ``"sr"`` (send-response).
    Call :meth:`data_to_send` whenever something may have changed and write what it
    returns; feed every parsed controller event to :meth:`receive`.
    """

    def __init__(self, lines: Sequence[StreamLine], rx_buffer: int = gp.RX_BUFFER_DEFAULT, mode: str = "cc") -> None:
        self.lines = list(lines)
        self.window = gp.CharacterCounter(rx_buffer, mode)
        self.state = EngineState.STREAMING if self.lines else EngineState.COMPLETED
        self.next_index = 0  # next line to send
        self.acked = 0
        self.last_acked: StreamLine | None = None
        self.failure: Rejected | Alarmed | ControllerReset | None = None
        self.bytes_sent = 0
        self._reset_expected = False

    # -- what the runner reads -----------------------------------------------------------
    @property
    def lines_total(self) -> int:
        return len(self.lines)

    @property
    def lines_sent(self) -> int:
        return self.next_index

    @property
    def in_flight(self) -> int:
        return self.window.pending

    @property
    def finished(self) -> bool:
        return self.state in (EngineState.COMPLETED, EngineState.FAILED) or (
            self.state == EngineState.STOPPED and self.window.pending == 0)

    @property
    def sending(self) -> bool:
        return self.state == EngineState.STREAMING

    # -- control -------------------------------------------------------------------------
    def pause(self) -> None:
        if self.state == EngineState.STREAMING:
            self.state = EngineState.PAUSED

    def resume(self) -> None:
        if self.state == EngineState.PAUSED:
            self.state = EngineState.STREAMING

    def stop(self) -> None:
        """Send nothing more (cancel). Lines already in flight are still answered and counted."""
        if self.state in (EngineState.STREAMING, EngineState.PAUSED):
            self.state = EngineState.STOPPED

    def expect_reset(self) -> None:
        """The runner is about to soft-reset the controller: the banner that follows is no failure."""
        self._reset_expected = True

    # -- bytes out -----------------------------------------------------------------------
    def data_to_send(self, max_bytes: int | None = None) -> bytes:
        """The lines that may go out now (possibly none), registered as sent."""
        if self.state != EngineState.STREAMING:
            return b""
        out = bytearray()
        window, lines = self.window, self.lines
        while self.next_index < len(lines):
            text = lines[self.next_index].text
            if not window.can_send(text):
                break
            if max_bytes is not None and out and len(out) + len(text) + 1 > max_bytes:
                break
            out += window.sent(text, self.next_index)
            self.next_index += 1
            if gp.writes_eeprom(text):
                break  # goes alone; nothing more until its ok
        self.bytes_sent += len(out)
        return bytes(out)

    # -- events in -----------------------------------------------------------------------
    def receive(self, event: object) -> list[Outcome]:
        """What a controller event means for the job. Events other than ok/error/alarm/banner are ignored."""
        if isinstance(event, gp.Ok):
            return self._ok(event)
        if isinstance(event, gp.Error):
            return self._error(event)
        if isinstance(event, gp.Alarm):
            return self._alarm(event)
        if isinstance(event, gp.Banner):
            return self._banner()
        return []

    def _ok(self, event: gp.Ok) -> list[Outcome]:
        tag = self.window.acknowledge()
        if tag is None:
            return [Stray(event)]
        if self._reset_expected:
            # Our reset went out while GRBL was suspended (Hold:0): the block it interrupted returns on sys.abort
            # and still answers ok (protocol.c), though it never ran to its end. It is not an acknowledged line.
            return []
        index = int(tag)  # type: ignore[call-overload]
        line = self.lines[index]
        self.acked += 1
        self.last_acked = line
        out: list[Outcome] = [Acked(line, index)]
        if self.acked == len(self.lines) and self.state in (EngineState.STREAMING, EngineState.PAUSED):
            self.state = EngineState.COMPLETED
            out.append(Completed(self.acked))
        return out

    def _error(self, event: gp.Error) -> list[Outcome]:
        tag = self.window.acknowledge()
        if tag is None:
            return [Stray(event)]
        index = int(tag)  # type: ignore[call-overload]
        rejected = Rejected(self.lines[index], index, event.code, event.message)
        if self.state in (EngineState.STREAMING, EngineState.PAUSED, EngineState.STOPPED) and self.failure is None:
            self.state = EngineState.FAILED
            self.failure = rejected
        return [rejected]

    def _alarm(self, event: gp.Alarm) -> list[Outcome]:
        alarmed = Alarmed(event.code, event.message, self.last_acked)
        if self.failure is None and self.state != EngineState.COMPLETED:
            self.state = EngineState.FAILED
            self.failure = alarmed
        return [alarmed]

    def _banner(self) -> list[Outcome]:
        lost = self.window.pending
        self.window.reset()
        expected = self._reset_expected
        self._reset_expected = False
        outcome = ControllerReset(lost, expected)
        if not expected and self.failure is None and self.state != EngineState.COMPLETED:
            self.state = EngineState.FAILED
            self.failure = outcome
        elif expected and self.state == EngineState.STOPPED:
            pass  # cancel: the window is empty now, so the engine is finished
        return [outcome]
