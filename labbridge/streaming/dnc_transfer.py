"""Drip-feed a checked program to a Fanuc-style control, or save one it punches out.

``labbridge stream`` calls :func:`stream_dnc` for ``fanuc-*`` machines once the
safety gate has passed; ``labbridge dnc-receive`` calls :func:`receive_dnc`.
Both raise :class:`~labbridge.errors.LabbridgeError` subclasses whose message says
what happened and which block was last sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labbridge.config import DncConnection, Machine
from labbridge.protocols import dnc as dp
from labbridge.transports.serial_link import DncError, SerialLink, drip_feed, punch_in
from labbridge.errors import ConfigError, GateRejected, ProgramReadError
from labbridge.log import get_logger
from labbridge.safety import check_program
from labbridge.safety.lexer import split_lines


@dataclass(frozen=True)
class DncProgress:
    """Passed to ``on_progress`` each time a block has gone out (GRBL jobs use the same names)."""

    lines_acked: int  # blocks the control has read
    lines_total: int
    line_number: int | None  # program line of the last block sent (None before the first)
    last_block: str | None
    bytes_sent: int
    bytes_total: int
    state: str  # "waiting for DC1", "sending", "paused by DC3", "done"


@dataclass(frozen=True)
class DncResult:
    machine: str
    port: str
    blocks_sent: int
    bytes_sent: int
    seconds: float
    pauses: int
    appended_end: bool


def dnc_settings(machine_id: str, machine: Machine) -> DncConnection:
    dnc = machine.connection.dnc
    if dnc is None:
        raise ConfigError(
            f"machine {machine_id} has no connection.dnc section; add one (port, baudrate, parity, stopbits) "
            "to config/machines.yaml to send programs by DNC"
        )
    return dnc


def _read_lines(program_path: str | Path) -> list[str]:
    path = Path(program_path)
    try:
        return split_lines(path.read_text(encoding="ascii"))
    except FileNotFoundError:
        raise ProgramReadError(f"{path}: program file not found") from None
    except UnicodeDecodeError as exc:
        raise ProgramReadError(
            f"{path}: byte {exc.start} is not ASCII; a DNC tape carries ISO code only (remove accents/symbols)"
        ) from None
    except OSError as exc:
        raise ProgramReadError(f"{path}: cannot read: {exc.strerror}") from None


async def stream_dnc(
    machine_id: str,
    machine: Machine,
    program_path: str | Path,
    *,
    port: str | None = None,
    on_progress: Callable[[DncProgress], Awaitable[None] | None] | None = None,
    log: Any = None,
) -> DncResult:
    """Send ``program_path`` to the control as a tape; return when the closing % has gone out.

    Raises GateRejected (the safety gate found errors: nothing is sent), DncAborted
    (NAK/SYN), DncTimeout (no DC1, DC3 too long), DncLinkLost (port failed),
    ConfigError (no dnc section) or ProgramReadError.
    """
    settings = dnc_settings(machine_id, machine)
    log = log or get_logger(machine=machine_id)
    # The gate runs here too, where the bytes leave, so that no caller can send an unchecked tape.
    report = await asyncio.to_thread(check_program, program_path, machine, machine_id=machine_id)
    if not report.ok:
        first = report.errors[0].format(report.program) if report.errors else "see labbridge check"
        raise GateRejected(f"{program_path} is rejected by the safety gate for {machine_id} "
                           f"({report.error_count} error(s); first: {first}); nothing was sent", report)
    try:
        program = dp.frame_program(
            _read_lines(program_path),
            end_of_block=settings.end_of_block,
            nul_leader=settings.nul_leader,
            tv_check=settings.tv_check,
        )
    except dp.FramingError as exc:
        raise ProgramReadError(f"{program_path}: {exc}") from None
    if program.appended_end:
        log.warning("dnc_m30_appended", program=str(program_path))
    sender = dp.DncSender(
        program,
        chunk_size=settings.chunk_size,
        dc1_timeout=settings.dc1_timeout,
        stall_timeout=settings.stall_timeout,
        now=time.monotonic(),
    )
    device = port or settings.port
    link = SerialLink(device, settings)
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
        if on_progress is None:
            return
        n = s.blocks_sent
        result = on_progress(
            DncProgress(
                lines_acked=n,
                lines_total=len(program.blocks),
                line_number=program.source_lines[n - 1] if n else None,
                last_block=s.last_block,
                bytes_sent=s.offset,
                bytes_total=len(program.data),
                state=s.state.value,
            )
        )
        if asyncio.iscoroutine(result):
            await result

    await link.open()
    try:
        await drip_feed(link, sender, on_event=on_event, on_progress=progress)
    except DncError:
        raise
    except asyncio.CancelledError:
        sender.abort("the transfer was cancelled")
        log.warning("dnc_cancelled", where=sender.where())
        raise
    finally:
        await link.close()
    result = DncResult(machine_id, device, sender.blocks_sent, sender.offset, time.monotonic() - started, pauses,
                       program.appended_end)
    log.info("dnc_done", blocks=result.blocks_sent, bytes=result.bytes_sent, pauses=pauses)
    return result


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
    link = SerialLink(device, settings)
    await link.open()
    if on_ready is not None:
        on_ready()
    try:
        received = await punch_in(link, start_timeout=start_timeout, idle_timeout=idle_timeout, on_started=on_started)
    finally:
        await link.close()
    out = Path(out_path)
    tmp = out.with_name(out.name + ".part")
    try:
        tmp.write_text(received.text, encoding="ascii")
        tmp.replace(out)
    except OSError as exc:
        raise DncError(f"received {received.blocks} blocks but cannot write {out}: {exc.strerror}") from None
    log.info("dnc_received", path=str(out), blocks=received.blocks)
    return received
