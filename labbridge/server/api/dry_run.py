"""Dry runs over REST: rehearse a queued program on the machine's digital twin (trainer or operator).

Live progress (the twin's tool position, line, result) goes out on the websocket as
``{"type": "dryrun", ...}`` messages for the machine; the result is kept with the
queue entry (``rehearsal`` in ``GET /api/queue``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from labbridge.errors import LabbridgeError
from labbridge.i18n import _, localize
from labbridge.server.api.deps import Context, get_ctx, known_machine, require
from labbridge.server.auth import Action, Principal
from labbridge.server.schemas import DryRunCancelled, DryRunStatus, documented
from labbridge.server.store import sha256
from labbridge.server.twins import LABEL, DryRunError

router = APIRouter(tags=["dry run"])


class DryRunRequest(BaseModel):
    speed: int = Field(1, description="1, 4 or 16 times real time")


def _entry(ctx: Context, entry_id: int) -> dict[str, Any]:
    entry = ctx.store.queue_entry(entry_id)
    if entry is None:
        raise HTTPException(404, _("no queue entry {entry}").format(entry=entry_id))
    return entry


@router.post("/api/queue/{entry_id}/dry-run", summary=f"Rehearse a queued program on the twin ({LABEL})",
             **documented(DryRunStatus))
async def start_dry_run(entry_id: int, body: DryRunRequest, principal: Principal = require(Action.DRY_RUN),
                        ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    entry = _entry(ctx, entry_id)
    machine = entry["machine"]
    try:
        if entry["state"] != "queued":
            raise DryRunError(_("queue entry {entry} on {machine} is {state}; only queued programs are rehearsed")
                              .format(entry=entry_id, machine=machine, state=entry["state"]))
        path = ctx.store.program_file(entry["hash"])
        if sha256(path.read_bytes()) != entry["hash"]:
            raise DryRunError(_("program file for entry {entry} does not match its checked bytes; re-upload it")
                              .format(entry=entry_id))
        status = await ctx.dry_runs.start(entry, path, body.speed, principal.username)
    except DryRunError as exc:
        ctx.audit(principal, machine, "dry_run", "refused", f"#{entry_id}: {exc}")
        raise HTTPException(409, localize(str(exc))) from None
    ctx.audit(principal, machine, "dry_run", "ok", f"#{entry_id} {entry['name']} at {body.speed}x")
    return status


@router.delete("/api/machines/{machine}/dry-run", summary="Stop the dry run on a machine's twin",
               **documented(DryRunCancelled))
async def cancel_dry_run(machine: str, principal: Principal = require(Action.DRY_RUN),
                         ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    known_machine(ctx, machine)
    try:
        result = await ctx.dry_runs.cancel(machine)
    except DryRunError as exc:
        raise HTTPException(409, localize(str(exc))) from None
    ctx.audit(principal, machine, "dry_run.cancel", "ok", result)
    return {"result": result}


@router.get("/api/machines/{machine}/dry-run", summary="The machine's current or last dry run (null if none)",
            **documented(DryRunStatus, "the dry run, or null if the machine's twin never ran one"))
def dry_run_status(machine: str, _: Principal = require(Action.VIEW),
                   ctx: Context = Depends(get_ctx)) -> dict[str, Any] | None:
    known_machine(ctx, machine)
    return ctx.dry_runs.status(machine)


@router.post("/api/machines/{machine}/dry-run/{action}", summary="Hold or resume the dry run on a machine's twin "
             "(action: hold or resume; the real machine is not touched)", **documented(DryRunCancelled))
async def hold_or_resume_dry_run(machine: str, action: str, principal: Principal = require(Action.DRY_RUN),
                                 ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    known_machine(ctx, machine)
    if action not in ("hold", "resume"):
        raise HTTPException(404, _("no dry-run action {action}; use hold or resume").format(action=repr(action)))
    try:
        result = await (ctx.dry_runs.hold(machine) if action == "hold" else ctx.dry_runs.resume(machine))
    except LabbridgeError as exc:  # DryRunError, or the twin's own refusal
        raise HTTPException(409, localize(str(exc))) from None
    ctx.audit(principal, machine, f"dry_run.{action}", "ok", result)
    return {"result": result}
