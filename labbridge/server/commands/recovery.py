"""Commands for a machine whose job was cut off (a crash, a lost cable): stop its spindle and coolant, resume
the program from a line, or dismiss the notice. Operators only; defined once here, served by REST and websocket.

Resuming hands the runner the job's own program file, verified by its SHA-256 against the record, and the
line to resume from (default: the line the machine really reached). The runner rebuilds the modal state,
approaches from above and checks preamble and remainder with the safety gate again; a controller that lost
its position is homed first.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from labbridge.drivers.base import Driver
from labbridge.i18n import N_, _, localize, phrase
from labbridge.server.auth import Action
from labbridge.server.commands.machine import COMMANDS, MACHINE
from labbridge.server.commands.registry import Call, NotFound, Rest
from labbridge.server.lab import CommandError
from labbridge.server.recovery import clear_interruption
from labbridge.server.store import sha256
from labbridge.streaming.job import Job, JobState
from labbridge.streaming.recovery import acknowledge, stop_spindle_and_coolant, suggested_line

RESUMABLE = (JobState.INTERRUPTED, JobState.FAILED, JobState.CANCELLED)


class JobRef(BaseModel):
    job_id: str = Field(max_length=40)


class ResumeRequest(JobRef):
    from_line: int | None = Field(None, ge=1, description="program line to resume at; default: the line the "
                                  "machine really reached")


def _job(ctx: Any, job_id: str) -> Job:
    store = ctx.lab.job_store()
    job = store.get(job_id) if store is not None else None
    if job is None:
        raise NotFound(_("no job {job}").format(job=repr(job_id)))
    return job  # type: ignore[no-any-return]


def _job_machine(ctx: Any, args: JobRef) -> str:
    return _job(ctx, args.job_id).machine


JOB_RESUMES = phrase(N_("job {job} resumes {program} at line {line}"))
INTERRUPTION_NOTED = phrase(N_("job {job}: interruption noted"))


@COMMANDS.define("spindle_coolant.off", Action.RESET, "Stop the spindle and coolant (operator), e.g. after an "
                 "interrupted job", rest=Rest("POST", f"{MACHINE}/spindle-coolant-off"))
async def spindle_coolant_off(call: Call) -> str:
    lab, machine = call.ctx.lab, call.machine
    if lab.job_running(machine):
        raise CommandError(_("{machine} is running a job: hold or cancel it instead").format(machine=machine))
    driver = lab.capable(machine, Driver, N_("spindle stop"))
    try:
        done: str = await asyncio.wait_for(stop_spindle_and_coolant(driver, machine), 30.0)
    except asyncio.TimeoutError:
        raise CommandError(_("{machine}: stopping the spindle and coolant got no answer within 30 s").format(
            machine=machine)) from None
    state = lab.runtime(machine).state
    if state.job is not None and state.job.state == "interrupted":
        lab.job_store().add_event(state.job.job_id, "spindle_coolant_stopped", user=call.principal.username,
                                  result=done)
    return localize(done)


@COMMANDS.define("job.resume_from", Action.JOB_START, "Resume a job's program from a line (operator): modal "
                 "state rebuilt, checked again, re-homed first if the controller lost its position",
                 rest=Rest("POST", "/api/jobs/{job_id}/resume", tags=("queue",)), args=ResumeRequest,
                 audit=lambda call: f"job {call.args.job_id} from line {call.args.from_line or 'as suggested'}",
                 moves_machine=True, locate=_job_machine)
async def resume_from(call: Call) -> str:
    ctx, machine, user = call.ctx, call.machine, call.principal.username
    job = _job(ctx, call.args.job_id)
    if job.state not in RESUMABLE:
        raise CommandError(_("job {job} is {state}; only an interrupted, failed or cancelled job resumes").format(
            job=job.id, state=job.state.value))
    if job.protocol != "grbl":
        raise CommandError(_("{machine}: a DNC tape does not resume from a line; search for the block at the "
                             "control").format(machine=machine))
    line = call.args.from_line or suggested_line(job)
    if not line:
        raise CommandError(_("job {job} never reached a line: start the program again from the queue").format(
            job=job.id))
    path = Path(job.program_path)
    try:
        data = path.read_bytes()
    except OSError:
        raise CommandError(_("the program file of job {job} ({path}) is gone: upload and queue it again").format(
            job=job.id, path=path)) from None
    if sha256(data) != job.program_sha256:
        raise CommandError(_("{path} changed since job {job} ran: upload and queue the program again").format(
            path=path, job=job.id))
    lab = ctx.lab
    if lab.runtime(machine).state.homed is False:
        await lab.home(machine)  # the controller lost its position: the preamble's machine moves need it
    new_id = await lab.start_job(machine, path, job.program_name, user, None, from_line=line)
    acknowledge(lab.job_store(), job, user, f"resumed from line {line} as job {new_id}")
    return JOB_RESUMES.format(job=new_id, program=job.program_name, line=line)


@COMMANDS.define("job.dismiss_interruption", Action.JOB_RESUME, "Mark an interrupted job as seen (operator): "
                 "the machine's notice goes", rest=Rest("POST", "/api/jobs/{job_id}/dismiss", tags=("queue",)),
                 args=JobRef, audit=lambda call: f"job {call.args.job_id}", locate=_job_machine)
async def dismiss_interruption(call: Call) -> str:
    lab = call.ctx.lab
    job = _job(call.ctx, call.args.job_id)
    acknowledge(lab.job_store(), job, call.principal.username, "dismissed")
    clear_interruption(lab.runtime(job.machine).state, job.id)
    return INTERRUPTION_NOTED.format(job=job.id)
