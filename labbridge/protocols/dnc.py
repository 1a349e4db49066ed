"""Sans-IO core of the RS-232 tape-reader (DNC) protocol of Fanuc-style controls.

Bytes in, events out; nothing here touches a port or a clock. The transport
passes ``now`` (any monotonic seconds) so timeouts are decided here and tested
without waiting. Three roles share the same control codes:

* :class:`DncSender` — labbridge drip-feeding a program: wait for DC1, pause on
  DC3, abort on NAK/SYN.
* :class:`DncReceiver` — labbridge saving a program the control punches out
  (DC2 … DC4 around a ``%``-framed program).
* :class:`TapeReader` — the control's side of a drip-feed, used by the simulators:
  skips the leader, checks TV parity, yields complete blocks.

See firmware-notes/fanuc-dialect.md for the wire details.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from labbridge.protocols.dnc_pacing import Pacing

NUL = 0x00
LF = 0x0A
CR = 0x0D
DC1 = 0x11  # "reader on": the control wants data
DC2 = 0x12  # "punch on": the control starts sending
DC3 = 0x13  # "reader off": pause
DC4 = 0x14  # "punch off": the control finished sending
NAK = 0x15  # the control refuses (alarm)
SYN = 0x16  # the control was reset
PERCENT = 0x25
CONTROL_NAMES = {DC1: "DC1", DC2: "DC2", DC3: "DC3", DC4: "DC4", NAK: "NAK", SYN: "SYN"}


class FramingError(ValueError):
    """A program cannot be put on tape (non-ASCII character, empty program)."""


# ---------------------------------------------------------------- framing


def _clean_block(raw: str, line_no: int) -> str:
    """Uppercase outside comments; tabs become spaces; reject what ISO tape code cannot carry."""
    out: list[str] = []
    depth = 0
    for ch in raw:
        if ord(ch) > 0x7E or (ord(ch) < 0x20 and ch != "\t"):
            raise FramingError(f"line {line_no}: character {ch!r} cannot be sent in ISO tape code")
        if ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif ch == "%":
            raise FramingError(f"line {line_no}: '%' inside a block would end the tape early")
        out.append(" " if ch == "\t" else (ch if depth else ch.upper()))
    return "".join(out).strip()


def _is_program_end(block: str) -> bool:
    words = block.split("(")[0].replace(" ", "")
    return any(code in words for code in ("M30", "M02", "M2", "M99")) and not words.startswith("(")


@dataclass(frozen=True)
class FramedProgram:
    """A program as it goes on the wire, with the block text for progress reports."""

    data: bytes
    blocks: tuple[str, ...]  # blocks between the % lines, in order
    block_ends: tuple[int, ...]  # byte offset just after each block's end-of-block code
    appended_end: bool  # M30 was added because the program had no end
    source_lines: tuple[int | None, ...] = ()  # program line of each block (None: added by framing)


def frame_program(
    lines: Iterable[str],
    *,
    end_of_block: str = "LF",
    nul_leader: int = 0,
    tv_check: bool = False,
    o_number: int | None = None,
) -> FramedProgram:
    """Put a program on tape: ``[NUL…] % EOB [Onnnn EOB] blocks… M30 EOB % EOB``.

    Existing ``%`` lines and blank lines are dropped, so a file that is already
    framed is framed once. With ``tv_check`` every block (end-of-block included,
    CR not counted) gets an even number of characters by padding with a space.
    """
    eob = "\r\n" if end_of_block == "CRLF" else "\n"
    blocks: list[str] = []
    sources: list[int | None] = []
    for line_no, raw in enumerate(lines, start=1):
        text = raw.rstrip("\r\n")
        if text.strip() == "%" or text.strip() == "":
            continue
        blocks.append(_clean_block(text, line_no))
        sources.append(line_no)
    if not blocks:
        raise FramingError("the program has no blocks")
    if o_number is not None and not blocks[0].startswith("O"):
        blocks.insert(0, f"O{o_number:04d}")
        sources.insert(0, None)
    appended = not any(_is_program_end(b) for b in blocks)
    if appended:
        blocks.append("M30")
        sources.append(None)
    if tv_check:
        blocks = [b + " " if (len(b) + 1) % 2 else b for b in blocks]
    data = bytearray(b"\x00" * nul_leader)
    data += ("%" + eob).encode("ascii")
    ends: list[int] = []
    for block in blocks:
        data += (block + eob).encode("ascii")
        ends.append(len(data))
    data += ("%" + eob).encode("ascii")
    return FramedProgram(bytes(data), tuple(blocks), tuple(ends), appended, tuple(sources))


# ---------------------------------------------------------------- sender


class SendState(enum.Enum):
    WAIT_DC1 = "waiting for DC1"
    SENDING = "sending"
    PAUSED = "paused by DC3"
    DONE = "done"
    ABORTED = "aborted"


@dataclass(frozen=True)
class Started:
    """The control sent its first DC1."""


@dataclass(frozen=True)
class Paused:
    """DC3: the control's buffer is full."""


@dataclass(frozen=True)
class Resumed:
    """DC1 after a DC3."""


@dataclass(frozen=True)
class Aborted:
    """The transfer cannot go on; ``reason`` is a sentence for a person."""

    reason: str
    code: str  # "NAK", "SYN", "timeout-dc1", "timeout-dc3"


@dataclass(frozen=True)
class Completed:
    """Every byte of the tape, closing % included, went out."""


@dataclass(frozen=True)
class Garbage:
    """Bytes from the control that mean nothing in this protocol (noise, echo)."""

    data: bytes


SendEvent = Started | Paused | Resumed | Aborted | Completed | Garbage


class DncSender:
    """Decides what to write next; the transport writes it and feeds back what it reads."""

    def __init__(
        self,
        program: FramedProgram,
        *,
        chunk_size: int = 16,
        dc1_timeout: float = 30.0,
        stall_timeout: float = 60.0,
        now: float = 0.0,
        pacing: Pacing | None = None,
    ) -> None:
        self.program = program
        self.pacing = pacing  # when given, its chunk and gap keep a DC3 obeyed within the control's slack
        self.chunk_size = pacing.chunk if pacing is not None else chunk_size
        self._ready_at = now
        self.dc1_timeout = dc1_timeout
        self.stall_timeout = stall_timeout
        self.state = SendState.WAIT_DC1
        self.offset = 0
        self._since = now
        self.abort_reason: Aborted | None = None

    # -- progress
    @property
    def blocks_sent(self) -> int:
        """Blocks whose end-of-block code has gone out."""
        return sum(1 for end in self.program.block_ends if end <= self.offset)

    @property
    def last_block(self) -> str | None:
        n = self.blocks_sent
        return self.program.blocks[n - 1] if n else None

    def where(self) -> str:
        """Where the transfer stands, for error messages."""
        last = self.last_block
        if last is None:
            return f"no block sent yet ({self.offset} of {len(self.program.data)} bytes)"
        return f"last block sent: #{self.blocks_sent} {last!r} ({self.offset} of {len(self.program.data)} bytes)"

    # -- input
    def receive_data(self, data: bytes, now: float) -> list[SendEvent]:
        """Feed bytes read from the control; returns what they mean."""
        events: list[SendEvent] = []
        noise = bytearray()
        for byte in data:
            if self.state == SendState.ABORTED:
                break
            if self.state == SendState.DONE and byte not in (NAK, SYN):
                continue  # after the tape: only an alarm still matters
            if byte == DC1:
                if self.state == SendState.WAIT_DC1:
                    self.state = SendState.SENDING
                    events.append(Started())
                elif self.state == SendState.PAUSED:
                    self.state = SendState.SENDING
                    events.append(Resumed())
                self._since = now
            elif byte == DC3:
                if self.state == SendState.SENDING:
                    self.state = SendState.PAUSED
                    self._since = now
                    events.append(Paused())
            elif byte in (NAK, SYN):
                name = CONTROL_NAMES[byte]
                why = "reset" if byte == SYN else "an alarm or refusal"
                events.append(self._abort(f"the control sent {name} ({why}); {self.where()}", name))
            elif byte in (DC2, DC4, NUL, LF, CR, 0x7F):
                continue
            else:
                noise.append(byte)
        if noise:
            events.append(Garbage(bytes(noise)))
        return events

    def _abort(self, reason: str, code: str) -> Aborted:
        self.state = SendState.ABORTED
        self.abort_reason = Aborted(reason, code)
        return self.abort_reason

    def abort(self, reason: str, code: str = "local") -> Aborted:
        """The transport lost the link or was cancelled."""
        return self._abort(f"{reason}; {self.where()}", code)

    # -- output
    def next_chunk(self, now: float) -> bytes:
        """Bytes to write now (empty while waiting or paused)."""
        if self.state != SendState.SENDING or now < self._ready_at:
            return b""
        chunk = self.program.data[self.offset : self.offset + self.chunk_size]
        self.offset += len(chunk)
        self._since = now
        if self.pacing is not None:
            self._ready_at = now + self.pacing.wait_after(len(chunk))
        if self.offset >= len(self.program.data):
            self.state = SendState.DONE
        return chunk

    def check_timeout(self, now: float) -> Aborted | None:
        """An Aborted event if the control kept us waiting too long."""
        if self.state == SendState.WAIT_DC1 and now - self._since > self.dc1_timeout:
            return self._abort(
                f"no DC1 from the control within {self.dc1_timeout:g} s: put the control in EDIT/MEM "
                "or DNC mode and start the tape read, then check the cable and baud rate; " + self.where(),
                "timeout-dc1",
            )
        if self.state == SendState.PAUSED and now - self._since > self.stall_timeout:
            return self._abort(
                f"the control paused the transfer (DC3) and did not resume within {self.stall_timeout:g} s; "
                + self.where(),
                "timeout-dc3",
            )
        return None

    def time_until_write(self, now: float) -> float:
        """Seconds until the pacing lets the next chunk go (0 when it may go now)."""
        return max(0.0, self._ready_at - now)

    def time_left(self, now: float) -> float | None:
        """Seconds until the current wait times out, or None when not waiting."""
        if self.state == SendState.WAIT_DC1:
            return max(0.0, self.dc1_timeout - (now - self._since))
        if self.state == SendState.PAUSED:
            return max(0.0, self.stall_timeout - (now - self._since))
        return None


# ---------------------------------------------------------------- receiver (punch-out)


class ReceiveState(enum.Enum):
    IDLE = "waiting for the control"
    LEADER = "in leader"
    BODY = "receiving"
    DONE = "done"


@dataclass(frozen=True)
class ReceiveStarted:
    """The control switched its punch on (DC2) or the leading % arrived."""


@dataclass(frozen=True)
class ProgramReceived:
    """A whole ``%``-framed program; ``text`` uses LF line ends and keeps both % lines."""

    text: str
    blocks: int


class DncReceiver:
    """Collects a punched-out program; tolerant of NUL leaders, CR LF and missing DC codes."""

    def __init__(self) -> None:
        self.state = ReceiveState.IDLE
        self._body = bytearray()
        self.bytes_received = 0

    def receive_data(self, data: bytes) -> list[ReceiveStarted | ProgramReceived | Garbage]:
        events: list[ReceiveStarted | ProgramReceived | Garbage] = []
        for raw in data:
            byte = raw & 0x7F  # a parity bit that leaked through (8N1 port on a 7E2 line)
            self.bytes_received += 1
            if self.state == ReceiveState.DONE:
                break
            if byte == DC2 and self.state == ReceiveState.IDLE:
                self.state = ReceiveState.LEADER
                events.append(ReceiveStarted())
            elif byte == PERCENT:
                if self.state in (ReceiveState.IDLE, ReceiveState.LEADER):
                    if self.state == ReceiveState.IDLE:
                        events.append(ReceiveStarted())
                    self.state = ReceiveState.BODY
                elif self.state == ReceiveState.BODY:
                    self.state = ReceiveState.DONE
                    events.append(self._finish())
            elif byte == DC4 and self.state == ReceiveState.BODY:
                self.state = ReceiveState.DONE
                events.append(self._finish())
            elif self.state == ReceiveState.BODY and byte not in (NUL, CR, DC1, DC2, DC3, DC4, 0x7F):
                self._body.append(byte)
        return events

    def _finish(self) -> ProgramReceived:
        lines = [line.strip() for line in self._body.decode("ascii", "replace").split("\n")]
        blocks = [line for line in lines if line]
        return ProgramReceived("%\n" + "".join(b + "\n" for b in blocks) + "%\n", len(blocks))


# ---------------------------------------------------------------- the control's tape reader


@dataclass(frozen=True)
class Block:
    text: str
    number: int  # 1-based block count after the leading %


@dataclass(frozen=True)
class TapeEnd:
    """The closing % arrived."""


@dataclass(frozen=True)
class TapeAlarm:
    code: str
    message: str


class TapeReader:
    """What a control does with incoming tape bytes: skip to %, split blocks, check TV parity."""

    def __init__(self, *, tv_check: bool = False) -> None:
        self.tv_check = tv_check
        self.in_program = False
        self.ended = False
        self._block = bytearray()
        self._count = 0
        self.blocks = 0

    def receive_data(self, data: bytes) -> list[Block | TapeEnd | TapeAlarm]:
        events: list[Block | TapeEnd | TapeAlarm] = []
        for byte in data:
            if self.ended:
                break
            if not self.in_program:
                if byte == PERCENT:
                    self.in_program = True
                continue
            if byte == PERCENT:
                self.ended = True
                events.append(TapeEnd())
            elif byte == LF:
                self._count += 1
                text = self._block.decode("ascii", "replace").strip()
                if self.tv_check and text and self._count % 2:
                    events.append(TapeAlarm("002", f"TV ERROR: block {text!r} has an odd character count"))
                    self.ended = True
                    break
                self._block.clear()
                self._count = 0
                if text:
                    self.blocks += 1
                    events.append(Block(text, self.blocks))
            elif byte in (CR, NUL, DC1, DC2, DC3, DC4):
                continue
            else:
                self._count += 1
                self._block.append(byte)
        return events
