"""Drip-feed a checked program to a Fanuc-style control, or save one it punches out.

A tape goes out in two steps: :func:`prepare_tape` reads the program once, runs
the safety gate on those bytes and frames them for the control (a :class:`Tape`
is only made that way, so no caller can send an unchecked tape); :func:`send_tape`
drip-feeds it and keeps a :class:`~labbridge.streaming.job.Job` current (blocks
read by the control, the program line of the last one). :func:`stream_dnc` does
both. The DNC job runner and ``labbridge stream`` use these; ``labbridge
dnc-receive`` calls :func:`receive_dnc`. Below them, :func:`drip_feed` and
:func:`punch_in` run the sans-IO tape cores (:mod:`labbridge.protocols.dnc`)
over the one threaded serial link of :mod:`labbridge.transports.serial_link`.
Errors are the ``Dnc*`` classes here, whose message says what happened and which
block was last sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labbridge.config import DncConnection, Machine
from labbridge.errors import ConfigError, ConnectionLost, GateRejected, LabbridgeError, ProgramReadError
from labbridge.log import get_logger
from labbridge.protocols import dnc as dp
from labbridge.protocols.dnc_pacing import Pacing, char_time, plan_pacing
from labbridge.safety import Report, check_program
from labbridge.streaming.base import read_program
from labbridge.streaming.job import Job, JobState, new_job_id
from labbridge.streaming import texts as T
from labbridge.transports.serial_link import SerialLink
from labbridge.safety.lexer import split_lines

#: What the job says while the tape goes out (the sender's state in words for the dashboard).
TAPE_MESSAGES = {
    dp.SendState.WAIT_DC1: "waiting for the control to read the tape (press cycle start in tape mode)",
    dp.SendState.SENDING: "sending the tape",
    dp.SendState.PAUSED: "the control paused the tape (DC3): its buffer is full",
    dp.SendState.DONE: "tape sent; the control runs the last blocks",
    dp.SendState.ABORTED: "the tape was stopped",
}

TapeProgress = Callable[[Job], Awaitable[None] | None]


class DncError(LabbridgeError):
    """A drip-feed or punch-out did not complete; the message names the last block."""


class DncAborted(DncError):
    """The control sent NAK or SYN (alarm or reset)."""


class DncTimeout(DncError):
    """The control did not send DC1 in time, or stayed paused (DC3) too long."""


class DncLinkLost(ConnectionLost):
    """The serial port went away mid-transfer (cable pulled, USB adapter reset)."""


@dataclass(frozen=True)
class Tape:
    """A program the safety gate passed for one machine, framed as the control reads it."""

    machine_id: str
    settings: DncConnection
    path: Path
    data: bytes  # the file's bytes, as checked
    program: dp.FramedProgram
    report: Report

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class DncResult:
    machine: str
    port: str
    blocks_sent: int
    bytes_sent: int
    seconds: float
    pauses: int
    appended_end: bool


def tape_pacing(settings: DncConnection) -> Pacing:
    """Chunk and gap for this line so that at most ``dc3_slack`` characters follow a DC3."""
    c = char_time(settings.baudrate, settings.bytesize, settings.parity, settings.stopbits)
    return plan_pacing(c, settings.dc3_slack, settings.dc3_reaction, max_chunk=settings.chunk_size)


def dnc_settings(machine_id: str, machine: Machine) -> DncConnection:
    dnc = machine.connection.dnc
    if dnc is None:
        raise ConfigError(
            f"machine {machine_id} has no connection.dnc section; add one (port, baudrate, parity, stopbits) "
            "to config/machines.yaml to send programs by DNC"
        )
    return dnc


def _ascii_lines(path: Path, data: bytes) -> list[str]:
    try:
        return split_lines(data.decode("ascii"))
    except UnicodeDecodeError as exc:
        raise ProgramReadError(
            f"{path}: byte {exc.start} is not ASCII; a DNC tape carries ISO code only (remove accents/symbols)"
        ) from None


async def prepare_tape(machine_id: str, machine: Machine, program_path: str | Path, *, data: bytes | None = None,
                       program_name: str | None = None, log: Any = None) -> Tape:
    """Read (unless ``data`` is given), check and frame a program for ``machine``'s DNC link.

    Raises ConfigError (no dnc section), ProgramReadError, GateRejected (nothing is sent).
    """
    settings = dnc_settings(machine_id, machine)
    log = log or get_logger(machine=machine_id)
    path = Path(program_path)
    data = read_program(path) if data is None else data
    report = await asyncio.to_thread(check_program, data, machine, machine_id=machine_id,
                                     program_name=program_name or str(path))
    if not report.ok:
        first = report.errors[0].format(report.program) if report.errors else T.SEE_CHECK
        raise GateRejected(T.GATE_TAPE.format(program=path, machine=machine_id, count=report.error_count,
                                              error=first), report)
    try:
        program = dp.frame_program(_ascii_lines(path, data), end_of_block=settings.end_of_block,
                                   nul_leader=settings.nul_leader, tv_check=settings.tv_check)
    except dp.FramingError as exc:
        raise ProgramReadError(f"{path}: {exc}") from None
    if program.appended_end:
        log.warning("dnc_m30_appended", program=str(path))
    return Tape(machine_id, settings, path, data, program, report)


async def send_tape(tape: Tape, *, port: str | None = None, job: Job | None = None,
                    on_progress: TapeProgress | None = None, log: Any = None) -> DncResult:
    """Drip-feed ``tape``; return when the closing % has gone out.

    ``job`` (a fresh one when None) is kept current: ``lines_sent``/``lines_acked`` count
    the blocks the control has read, ``last_acked_line`` is the program line of the last
    one, ``message`` says what the tape is doing; ``on_progress(job)`` follows each block.
    Raises DncAborted (NAK/SYN), DncTimeout (no DC1, DC3 too long), DncLinkLost (port failed).
    """
    log = log or get_logger(machine=tape.machine_id)
    program, settings = tape.program, tape.settings
    if job is None:
        job = Job(new_job_id(), tape.machine_id, str(tape.path), tape.path.name, tape.sha256,
                  state=JobState.RUNNING, protocol="dnc")
    job.lines_total = len(program.blocks)
    sender = dp.DncSender(program, dc1_timeout=settings.dc1_timeout, stall_timeout=settings.stall_timeout,
                          now=time.monotonic(), pacing=tape_pacing(settings))
    device = port or settings.port
    pauses = 0
    started = time.monotonic()

    def on_event(event: dp.SendEvent) -> None:
        nonlocal pauses
        if isinstance(event, dp.Paused):
            pauses += 1
            log.debug("dnc_paused", where=sender.where())
        elif isinstance(event, dp.Started):
            log.info("dnc_started", port=device, bytes=len(program.data), blocks=len(program.blocks))
        elif isinstance(event, dp.Garbage):
            log.warning("dnc_garbage", data=event.data.hex(), where=sender.where())
        elif isinstance(event, dp.Aborted):
            log.error("dnc_aborted", reason=event.reason, code=event.code)

    async def progress(s: dp.DncSender) -> None:
        n = s.blocks_sent
        job.lines_sent = job.lines_acked = n
        job.last_acked_line = program.source_lines[n - 1] if n else None
        job.message = TAPE_MESSAGES.get(s.state, s.state.value)
        if on_progress is not None:
            result = on_progress(job)
            if asyncio.iscoroutine(result):
                await result

    link = await open_link(device, settings)
    try:
        await drip_feed(link, sender, on_event=on_event, on_progress=progress)
    except asyncio.CancelledError:
        sender.abort("the transfer was cancelled")
        log.warning("dnc_cancelled", where=sender.where())
        raise
    finally:
        await link.aclose()
    result = DncResult(tape.machine_id, device, sender.blocks_sent, sender.offset, time.monotonic() - started,
                       pauses, program.appended_end)
    log.info("dnc_sent", blocks=result.blocks_sent, bytes=result.bytes_sent, pauses=pauses)
    return result


async def stream_dnc(machine_id: str, machine: Machine, program_path: str | Path, *, port: str | None = None,
                     job: Job | None = None, on_progress: TapeProgress | None = None, log: Any = None) -> DncResult:
    """Check, frame and send ``program_path`` (:func:`prepare_tape`, then :func:`send_tape`)."""
    tape = await prepare_tape(machine_id, machine, program_path, log=log)
    return await send_tape(tape, port=port, job=job, on_progress=on_progress, log=log)


async def receive_dnc(
    machine_id: str,
    machine: Machine,
    out_path: str | Path,
    *,
    port: str | None = None,
    start_timeout: float = 120.0,
    idle_timeout: float = 10.0,
    on_started: Callable[[], None] | None = None,
    on_ready: Callable[[], None] | None = None,
    log: Any = None,
) -> dp.ProgramReceived:
    """Save one program punched out by the control to ``out_path`` (written only when complete)."""
    settings = dnc_settings(machine_id, machine)
    log = log or get_logger(machine=machine_id)
    device = port or settings.port
    link = await open_link(device, settings)
    if on_ready is not None:
        on_ready()
    try:
        received = await punch_in(link, start_timeout=start_timeout, idle_timeout=idle_timeout, on_started=on_started)
    except ConnectionLost as exc:
        raise DncLinkLost(str(exc)) from None
    finally:
        await link.aclose()
    out = Path(out_path)
    tmp = out.with_name(out.name + ".part")
    try:
        tmp.write_text(received.text, encoding="ascii")
        tmp.replace(out)
    except OSError as exc:
        raise DncError(f"received {received.blocks} blocks but cannot write {out}: {exc.strerror}") from None
    log.info("dnc_received", path=str(out), blocks=received.blocks)
    return received


# ---------------------------------------------------------------------------- the tape over the link

SenderProgress = Callable[[dp.DncSender], Awaitable[None] | None]


async def open_link(device: str, settings: DncConnection) -> SerialLink:
    """The DNC line, opened as the config describes it; raises DncLinkLost naming the port."""
    link = SerialLink(device, baudrate=settings.baudrate, bytesize=settings.bytesize, parity=settings.parity,
                      stopbits=settings.stopbits, write_timeout=max(settings.stall_timeout, 1.0), label="DNC port")
    try:
        await link.open()
    except ConnectionLost as exc:
        raise DncLinkLost(str(exc)) from None
    return link


async def drip_feed(
    link: SerialLink,
    sender: dp.DncSender,
    *,
    on_event: Callable[[dp.SendEvent], None] | None = None,
    on_progress: SenderProgress | None = None,
    grace: float = 0.3,
) -> None:
    """Run ``sender`` over ``link`` until the tape is out; raise a DncError on abort or timeout.

    The sender's pacing (:mod:`labbridge.protocols.dnc_pacing`) decides when each chunk
    may go; the input is read before every write, so at most ``dc3_slack`` characters
    follow a DC3. ``grace`` seconds after the last byte a NAK is still
    reported (the control may alarm on the final blocks).
    """
    try:
        await _drip_feed(link, sender, on_event, on_progress, grace)
    except ConnectionLost as exc:
        raise DncLinkLost(f"{exc}; {sender.where()}") from None


async def _drip_feed(
    link: SerialLink,
    sender: dp.DncSender,
    on_event: Callable[[dp.SendEvent], None] | None,
    on_progress: SenderProgress | None,
    grace: float,
) -> None:
    last_blocks = -1

    def handle(events: list[dp.SendEvent]) -> None:
        for event in events:
            if on_event is not None:
                on_event(event)
            if isinstance(event, dp.Aborted):
                raise (DncAborted if event.code in ("NAK", "SYN") else DncTimeout)(event.reason)

    while sender.state not in (dp.SendState.DONE, dp.SendState.ABORTED):
        now = time.monotonic()
        chunk = sender.next_chunk(now)
        if chunk and sender.pacing is not None:
            # A paced sender writes only once the line has drained: the port takes a few bytes at once, and a
            # thread hop per chunk would cost more than the chunk's line time. It says when the next may go;
            # the input is always read before that.
            link.write(chunk)
            wait = sender.time_until_write(time.monotonic())
        elif chunk:
            await link.send(chunk)
            wait = link.char_seconds(len(chunk))
        else:
            left = sender.time_left(now)
            wait = 0.2 if left is None else min(0.2, left + 0.01)
            if sender.state == dp.SendState.SENDING:
                wait = min(wait, sender.time_until_write(now))
        data = await link.read(wait)
        handle(sender.receive_data(data, time.monotonic()))
        timed_out = sender.check_timeout(time.monotonic())
        if timed_out is not None:
            handle([timed_out])
        if on_progress is not None and sender.blocks_sent != last_blocks:
            last_blocks = sender.blocks_sent
            result = on_progress(sender)
            if asyncio.iscoroutine(result):
                await result
    if sender.state == dp.SendState.DONE:
        if on_event is not None:
            on_event(dp.Completed())
        deadline = time.monotonic() + grace
        while (left := deadline - time.monotonic()) > 0:
            data = await link.read(left)
            for event in sender.receive_data(data, time.monotonic()):
                if isinstance(event, dp.Aborted):
                    raise DncAborted(event.reason)


async def punch_in(
    link: SerialLink,
    *,
    start_timeout: float,
    idle_timeout: float,
    on_started: Callable[[], None] | None = None,
) -> dp.ProgramReceived:
    """Receive one program the control punches out; raise DncTimeout if it never comes or stalls."""
    receiver = dp.DncReceiver()
    started = False
    deadline = time.monotonic() + start_timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            if not started:
                raise DncTimeout(
                    f"nothing received on {link.port} within {start_timeout:g} s: start the punch-out "
                    "on the control (EDIT mode, PUNCH) after this command is waiting"
                )
            raise DncTimeout(
                f"the control stopped sending for {idle_timeout:g} s after {receiver.bytes_received} bytes "
                "without the closing %; the program was not saved"
            )
        data = await link.read(min(left, 0.2))
        if data:
            deadline = time.monotonic() + idle_timeout
        for event in receiver.receive_data(data):
            if isinstance(event, dp.ReceiveStarted) and not started:
                started = True
                if on_started is not None:
                    on_started()
            elif isinstance(event, dp.ProgramReceived):
                return event
