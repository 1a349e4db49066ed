"""What ``labbridge stream`` says and offers about a machine whose last job was cut off.

On start the records are swept (jobs left running by a dead process become
``interrupted``); before confirming, the machine's interrupted job is shown with
the line to resume from; once connected, the machine's state is reported and the
operator is offered to stop the spindle and coolant (``--yes`` stops them: an
unattended run never starts on a machine left turning).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from hashlib import sha256
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.panel import Panel

from labbridge.cli.common import EXIT_USAGE, fail
from labbridge.config import WORK_OFFSET_CODES, Machine
from labbridge.errors import LabbridgeError
from labbridge.model import Status
from labbridge.streaming.execution import locate
from labbridge.streaming.job import Job
from labbridge.streaming.records import JobStore
from labbridge.streaming.recovery import (
    acknowledge, interrupt_orphans, last_interruption, machine_report, may_be_running, stop_spindle_and_coolant,
    suggested_line,
)
from labbridge.streaming.resume import ResumeError, build_resume
from labbridge.streaming.texts import localize
from labbridge.i18n import _

REPORT_WAIT = 3.0  # seconds to wait for a status report that names spindle and coolant


def shout(console: Console, title: str, text: str) -> None:
    """Prominent on a terminal (a red panel), plain lines otherwise (logs, tests, pipes)."""
    if console.is_terminal:
        console.print(Panel(text, title=title, border_style="bold red"))
    else:
        sys.stderr.write(f"labbridge: {title}: {text}\n")


def sweep_and_announce(machine_id: str, sha256: str, from_line: int | None, console: Console) -> Job | None:
    """Mark orphaned jobs interrupted; show this machine's unacknowledged interruption. Returns it."""
    try:
        store = JobStore()
    except LabbridgeError:
        return None  # the run itself will report the data dir
    with store:
        for job in interrupt_orphans(store):
            sys.stderr.write(f"labbridge: job {job.id} on {job.machine} ({job.program_name}) was left running by a "
                             f"process that is gone; recorded as interrupted\n")
        job = last_interruption(store, machine_id)
    if job is None:
        return None
    line = suggested_line(job)
    text = f"{job.program_name} (job {job.id}): {localize(job.message)}"
    if line and job.program_sha256 == sha256 and from_line is None:
        text += "\n" + _("This is the same program: to go on where the machine stopped, run it with --from-line "
                          "{line}; started from line 1 it cuts again what was cut.").format(line=line)
    shout(console, _("{machine}: the last job was interrupted").format(machine=machine_id), text)
    return job


def check_from_line(program: Path, data: bytes, machine_id: str, machine: Machine, from_line: int) -> list[str]:
    """Refuse a resume line the program cannot resume from, before anything is opened (exit 2)."""
    try:
        plan = build_resume(data.decode("utf-8", "replace").splitlines(), machine, from_line, machine_id=machine_id)
    except ResumeError as exc:
        fail(f"{program}: {localize(str(exc))}", EXIT_USAGE)
    return plan.preamble


async def report_and_offer(driver: Any, machine_id: str, job: Job, yes: bool, console: Console,
                           user: str | None = None, run_data: bytes | None = None,
                           from_line: int | None = None) -> None:
    """Connected again after an interruption: say how the machine is, offer to stop spindle and coolant."""
    state = driver.state
    deadline = asyncio.get_running_loop().time() + REPORT_WAIT
    while (state.spindle_direction is None or state.coolant is None) and \
            asyncio.get_running_loop().time() < deadline:
        with contextlib.suppress(LabbridgeError):  # GRBL names spindle and coolant every 10th report: ask often
            driver.send_realtime(b"?")
        await asyncio.sleep(0.1)
    shout(console, f"{machine_id} now", machine_report(state))
    if run_data is not None and job.program_sha256 == sha256(run_data).hexdigest():
        _where_it_stands(driver, machine_id, job, run_data, from_line)
    stop = False
    if may_be_running(state):
        if yes:
            stop = True
        elif sys.stdin.isatty():
            stop = typer.confirm(f"Stop the spindle and coolant of {machine_id} now?", default=True)
    action = "seen in labbridge stream"
    if stop:
        try:
            done = await stop_spindle_and_coolant(driver, machine_id)
        except LabbridgeError as exc:
            sys.stderr.write(f"labbridge: {machine_id}: could not stop the spindle and coolant: {localize(str(exc))}\n")
        else:
            sys.stderr.write(f"labbridge: {machine_id}: {localize(done)}\n")
            action = f"labbridge stream: {done}"
    with JobStore() as store:
        acknowledge(store, job, user, action)


def _where_it_stands(driver: Any, machine_id: str, job: Job, data: bytes, from_line: int | None) -> None:
    """The controller ran on after the bridge stopped: find the line it stands on from its position."""
    state = driver.state
    pos = state.position_machine
    if not pos or state.homed is False or job.last_sent_line is None:
        return  # no position, or one the controller itself no longer trusts
    offsets = {k: tuple(v)[:3] for k, v in (getattr(driver, "parameters", {}) or {}).items()
               if k in WORK_OFFSET_CODES}
    lines = data.decode("utf-8", "replace").splitlines()
    first = job.executed_line or job.last_acked_line or 1
    line = locate(lines, driver.config, machine_id, (pos.get("X", 0.0), pos.get("Y", 0.0), pos.get("Z", 0.0)),
                  first, job.last_sent_line, work_offsets=offsets or None, idle=state.state == Status.IDLE)
    if line is None:
        return
    if line > len(lines):
        sys.stderr.write(f"labbridge: {machine_id}: from its position, the machine ran the program to its end\n")
        return
    where = f"it stands at the end of line {line - 1}" if state.state == Status.IDLE else f"it is on line {line}"
    sys.stderr.write(f"labbridge: {machine_id}: from its position, the machine ran on after the bridge stopped: "
                     f"{where}: resume with --from-line {line}\n")
    if from_line is not None and from_line > line:
        sys.stderr.write(f"labbridge: WARNING: --from-line {from_line} skips lines {line} to {from_line - 1}, "
                         "which never ran\n")
