"""After a crash: jobs left ``running`` by a dead process become ``interrupted``, and the machine is reported.

Every job record names the process running it (``owner``: pid, the process's
start time in clock ticks, host) and is rewritten at least once a second while it
runs (``updated_at``). When ``labbridge stream`` or ``labbridge serve`` starts, any
job still ``checking``/``running``/``holding`` whose owner is no longer alive on
this host was cut off (SIGKILL, power loss, a crash): it becomes ``interrupted``
with "the bridge stopped at <its last heartbeat>" and the lines last sent,
acknowledged and really executed. A pid reused by another program does not
fool this: the start time must match too.

When labbridge then reconnects to that machine, :func:`last_interruption` hands
the CLI and the dashboard the job to report (until an operator acknowledges it),
with the line to resume from.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from labbridge.errors import LabbridgeError
from labbridge.model import MachineState, Status
from labbridge.protocols.grbl import Error as GrblError
from labbridge.streaming.job import ACTIVE_STATES, Job, JobState
from labbridge.streaming.records import JobStore
from labbridge.streaming import texts as T

ACKNOWLEDGED = "interruption_acknowledged"


def _start_ticks(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/<pid>/stat), or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def process_owner(pid: int | None = None) -> str:
    """``pid:start-ticks@host`` of this (or another) process: names it uniquely on this host."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{_start_ticks(pid) or '?'}@{socket.gethostname()}"


def owner_alive(owner: str | None) -> bool | None:
    """True/False for an owner on this host; None when it cannot be told (another host, no owner)."""
    if not owner or "@" not in owner:
        return None
    ident, _, host = owner.rpartition("@")
    if host != socket.gethostname():
        return None
    pid_text, _, ticks = ident.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return None
    now = _start_ticks(pid)
    if now is None:
        return False
    return ticks in ("?", now)


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else T.AN_UNKNOWN_TIME


def interruption_message(job: Job) -> str:
    """What a person needs to know about a job cut off mid-run, and where to look."""
    sent, acked = T.line_or(job.last_sent_line, T.NONE), T.line_or(job.last_acked_line, T.NONE)
    ran = T.line_or(job.executed_line, T.UNKNOWN)
    resume = suggested_line(job)
    if resume:
        return T.BRIDGE_STOPPED.format(when=_when(job.updated_at), sent=sent, acked=acked, ran=ran, resume=resume)
    return T.BRIDGE_STOPPED_NO_RESUME.format(when=_when(job.updated_at), sent=sent, acked=acked, ran=ran)


def suggested_line(job: Job) -> int | None:
    """Where to resume: the line the machine was executing (re-run from its start), else the last acknowledged."""
    return job.executed_line or job.last_acked_line


def interrupt_orphans(store: JobStore, machines: Iterable[str] | None = None) -> list[Job]:
    """Mark every active job whose process is gone as interrupted; returns those jobs."""
    wanted = set(machines) if machines is not None else None
    cut: list[Job] = []
    for job in store.list_jobs(states=tuple(ACTIVE_STATES), limit=10_000):
        if wanted is not None and job.machine not in wanted:
            continue
        if owner_alive(job.owner) is not False:
            continue  # alive, or not ours to judge (another host, a record without an owner)
        job.state = JobState.INTERRUPTED
        job.error_code = job.error_code or "bridge-stopped"
        job.message = interruption_message(job)
        job.error_message = job.error_message or job.message
        job.ended_at = job.updated_at or job.started_at or job.created_at
        job.eta_seconds = None
        stopped_at = job.updated_at
        store.save(job)
        store.add_event(job.id, "job_interrupted", level="warning", message=job.message, reason="bridge stopped",
                        stopped_at=stopped_at, owner=job.owner, last_sent_line=job.last_sent_line,
                        last_acked_line=job.last_acked_line, executed_line=job.executed_line)
        cut.append(job)
    return cut


def last_interruption(store: JobStore, machine: str) -> Job | None:
    """The machine's newest job, if it was interrupted and no operator has acknowledged it yet."""
    jobs = store.list_jobs(machine, limit=1)
    if not jobs or jobs[0].state != JobState.INTERRUPTED:
        return None
    job = jobs[0]
    if any(e["event"] == ACKNOWLEDGED for e in store.events(job.id)):
        return None
    return job


def acknowledge(store: JobStore, job: Job, user: str | None, action: str) -> None:
    """An operator has seen the interruption (and stopped the spindle, resumed, or dismissed it)."""
    store.add_event(job.id, ACKNOWLEDGED, user=user, action=action)


# ---------------------------------------------------------------------------- the machine after an interruption


def machine_report(state: MachineState) -> str:
    """The machine as it is now, in words: state, spindle, coolant, whether it knows its position."""
    parts = [state.state.value if state.state is not None else "unknown state"]
    direction, rpm = state.spindle_direction, state.spindle_rpm
    if direction in ("cw", "ccw"):
        parts.append(f"spindle ON ({direction.upper()}{f', {rpm:g} rpm' if rpm else ''})")
    elif direction == "off":
        parts.append("spindle off")
    else:
        parts.append("spindle: not reported yet")
    coolant = state.coolant
    parts.append(f"coolant {coolant.upper()}" if coolant not in (None, "off") else
                 "coolant off" if coolant == "off" else "coolant: not reported yet")
    if state.homed is False:
        parts.append("position lost (not homed)")
    return ", ".join(parts)


def may_be_running(state: MachineState) -> bool:
    """Spindle or coolant on, or not reported: worth offering to stop them."""
    return state.spindle_direction not in ("off",) or state.coolant not in ("off",)


@runtime_checkable
class SendsLines(Protocol):
    async def mdi(self, line: str) -> list[Any]: ...

    async def soft_reset(self, wait: bool = True) -> None: ...


async def stop_spindle_and_coolant(driver: Any, machine_id: str) -> str:
    """Stop the spindle and the coolant the safe way for the machine's state; says what was done.

    Idle: ``M5 M9``. Hold (stopped) or Door: a soft reset — GRBL stops spindle and coolant and, at rest,
    keeps its position. Alarm: GRBL has already stopped them; a soft reset makes sure. Moving: refused
    (hold it first: stopping the spindle under a moving tool breaks it).
    """
    if not isinstance(driver, SendsLines):
        raise LabbridgeError(T.STOP_AT_PANEL.format(machine=machine_id))
    state: MachineState = driver.state  # type: ignore[attr-defined]
    if state.state in (Status.RUN, Status.JOG, Status.HOME) or (state.state == Status.HOLD and state.substate):
        raise LabbridgeError(T.STOP_MOVING.format(machine=machine_id, state=state.state.value))
    if state.state == Status.IDLE:
        events = await driver.mdi("M5 M9")
        if events and isinstance(events[-1], GrblError):
            raise LabbridgeError(T.STOP_REFUSED.format(machine=machine_id, reason=events[-1].message))
        return T.STOPPED_M5_M9
    await driver.soft_reset()
    return T.STOPPED_BY_RESET
