"""The student-program queue: a trainer submits a checked program, an operator starts it.

A queue entry names the program by the hash of the exact bytes that were checked
and the check that passed; starting it (the ``job.start`` command in
:mod:`labbridge.server.commands.machine`) hands the job runner a file with those
bytes (verified again by hash), so nothing can change between check and cut.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from labbridge.i18n import _, ngettext
from labbridge.server.api.deps import Context, get_ctx, known_machine, require
from labbridge.server.api.programs import check_and_store
from labbridge.server.auth import Action, Principal, Role
from labbridge.server.schemas import JobEvent, JobRecord, QueueEntry, Removed, documented
from labbridge.streaming.texts import localize_record

router = APIRouter(prefix="/api/queue", tags=["queue"])


class Submission(BaseModel):
    program: str = Field(description="the program's sha256, as returned by the upload")
    machine: str
    note: str = Field("", max_length=500)


def _entry(ctx: Context, entry_id: int) -> dict[str, Any]:
    entry = ctx.store.queue_entry(entry_id)
    if entry is None:
        raise HTTPException(404, _("no queue entry {entry}").format(entry=entry_id))
    return localize_record(entry)


@router.get("", response_model=list[QueueEntry], summary="Queued and running programs (add all=true for finished ones too; not for viewers)")
def list_queue(machine: str | None = None, all: bool = False, _: Principal = require(Action.RECORDS),
               ctx: Context = Depends(get_ctx)) -> list[dict[str, Any]]:
    entries = ctx.store.list_queue(machine, include_done=all)
    rehearsed = ctx.dry_runs.records.latest([e["id"] for e in entries]) if ctx.dry_runs else {}
    return [localize_record({**e, "rehearsal": rehearsed.get(e["id"])}) for e in entries]


@router.post("", status_code=201, response_model=QueueEntry, summary="Submit a checked program for a machine")
async def submit(body: Submission, principal: Principal = require(Action.QUEUE_SUBMIT),
                 ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    known_machine(ctx, body.machine)
    check = ctx.store.latest_check(body.program, body.machine)
    if check is None:
        await run_in_threadpool(check_and_store, ctx, principal, body.program, body.machine, False)
        check = ctx.store.latest_check(body.program, body.machine)
    assert check is not None
    if not check["ok"]:
        errors = [d for d in check["report"].get("diagnostics", []) if d.get("severity") == "error"]
        first = errors[0] if errors else {"line": "?", "message": _("see the check report")}
        ctx.audit(principal, body.machine, "queue.submit", "refused", f"{len(errors)} errors")
        raise HTTPException(409, ngettext(
            "the program has {n} error on {machine} (first: line {line}: {message}); fix it and check again",
            "the program has {n} errors on {machine} (first: line {line}: {message}); fix them and check again",
            len(errors)).format(n=len(errors), machine=body.machine, line=first["line"], message=first["message"]))
    info = ctx.store.program_info(body.program)
    assert info is not None
    entry = ctx.store.enqueue(body.machine, body.program, info["name"], check["id"], principal.username, body.note)
    ctx.audit(principal, body.machine, "queue.submit", "ok", f"#{entry['id']} {info['name']}")
    ctx.announce_queue(body.machine)
    return entry


@router.delete("/{entry_id}", response_model=Removed, summary="Remove a queued (not running) entry")
async def remove(entry_id: int, principal: Principal = require(Action.QUEUE_REMOVE),
                 ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    entry = _entry(ctx, entry_id)
    if principal.role == Role.TRAINER.value and entry["submitted_by"] != principal.username:
        ctx.audit(principal, entry["machine"], "queue.remove", "denied", f"#{entry_id} of {entry['submitted_by']}")
        raise HTTPException(403, _("trainers may only remove their own submissions"))
    if entry["state"] != "queued":
        raise HTTPException(409, _("entry {entry} is {state}; cancel the running job instead").format(
            entry=entry_id, state=entry["state"]))
    ctx.store.update_queue(entry_id, state="removed", finished_at=time.time(), message=f"removed by {principal.username}")
    ctx.audit(principal, entry["machine"], "queue.remove", "ok", f"#{entry_id} {entry['name']}")
    ctx.announce_queue(entry["machine"])
    return {"removed": entry_id}


jobs_router = APIRouter(prefix="/api/jobs", tags=["queue"])


@jobs_router.get("", summary="Recorded jobs, GRBL and DNC alike, newest first (state, lines, errors with their line; not for viewers)",
                 **documented(list[JobRecord]))
def list_jobs(machine: str | None = None, limit: int = 50, _: Principal = require(Action.RECORDS),
              ctx: Context = Depends(get_ctx)) -> list[dict[str, Any]]:
    store = ctx.lab.job_store()
    if store is None:
        return []
    return [localize_record(job.to_dict()) for job in store.list_jobs(machine, limit=min(max(limit, 1), 500))]


@jobs_router.get("/{job_id}/events", summary="A job's event log (technician)", **documented(list[JobEvent]))
def job_events(job_id: str, _principal: Principal = require(Action.DIAGNOSTICS),
               ctx: Context = Depends(get_ctx)) -> list[dict[str, Any]]:
    store = ctx.lab.job_store()
    if store is None or store.get(job_id) is None:
        raise HTTPException(404, _("no job {job}").format(job=repr(job_id)))
    return [localize_record(e) for e in store.events(job_id)]
