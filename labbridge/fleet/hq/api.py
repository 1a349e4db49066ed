"""Headquarters' REST API: every lab, each machine's live state, events, jobs, and requests to a lab.

Requests are checked against the caller's role like the lab's own routes (a technician reads
diagnostics and settings and may ask for a settings change; a trainer may run a check), audited at
headquarters, and only read-only kinds exist: the lab refuses anything else anyway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from labbridge.fleet.hq.link import RequestFailed
from labbridge.i18n import _
from labbridge.fleet.topics import topic_safe
from labbridge.server.api.deps import current_principal, describe
from labbridge.server.auth import Action, Principal

if TYPE_CHECKING:
    from labbridge.fleet.hq.app import HqContext

RequestKind = Literal["diagnostics", "settings", "alarm-history", "jobs", "logs", "check", "settings-change"]
PERMISSION: dict[str, Action] = {
    "diagnostics": Action.DIAGNOSTICS, "alarm-history": Action.DIAGNOSTICS, "jobs": Action.DIAGNOSTICS,
    "logs": Action.DIAGNOSTICS, "settings": Action.SETTINGS_READ, "settings-change": Action.SETTINGS_WRITE,
    "check": Action.PROGRAM_CHECK,
}


class LabRequest(BaseModel):
    kind: RequestKind
    args: dict[str, Any] = Field(default_factory=dict)


def build_router(ctx: HqContext) -> APIRouter:
    router = APIRouter(prefix="/api/fleet", tags=["fleet"])

    def viewer(principal: Principal = Depends(current_principal)) -> Principal:
        if not principal.can(Action.VIEW):
            raise HTTPException(403, _("your role ({role}) may not {action}; ask someone with the right role")
                                .format(role=principal.role, action=describe(Action.VIEW)))
        return principal

    def known_lab(lab: str) -> None:
        if lab not in ctx.fleet.labs:
            raise HTTPException(404, _("no lab {lab} has reported yet; known: {labs}").format(
                lab=repr(lab), labs=", ".join(sorted(ctx.fleet.labs))))

    @router.get("/labs", summary="Every lab: online or not, last seen, each machine's MachineState")
    def labs(_: Principal = Depends(viewer)) -> list[dict[str, Any]]:
        return ctx.fleet.public()

    @router.get("/status", summary="Every lab's status: online or offline since when, version")
    def status(_: Principal = Depends(viewer)) -> list[dict[str, Any]]:
        return [{"id": v.id, "name": v.name, "online": v.online, "since": v.since, "last_seen": v.last_seen,
                 "version": v.version} for v in sorted(ctx.fleet.labs.values(), key=lambda v: v.id)]

    @router.get("/labs/{lab}", summary="One lab with its active alarms, recent events and jobs")
    def lab_detail(lab: str, _: Principal = Depends(viewer)) -> dict[str, Any]:
        known_lab(lab)
        found = ctx.fleet.detail(lab)
        assert found is not None
        return found

    @router.get("/events", summary="Events from every lab, newest first (filter by lab, machine, kind)")
    def events(lab: str | None = None, machine: str | None = None, kind: str | None = None, limit: int = 100,
               _: Principal = Depends(viewer)) -> list[dict[str, Any]]:
        return ctx.fleet_store.events(lab, machine, kind, limit=min(max(limit, 1), 2000))

    @router.get("/jobs", summary="Job history across labs, newest first")
    def jobs(lab: str | None = None, machine: str | None = None, limit: int = 100,
             _: Principal = Depends(viewer)) -> list[dict[str, Any]]:
        return ctx.fleet_store.jobs(lab, machine, limit=min(max(limit, 1), 1000))

    @router.get("/link", summary="Headquarters' own connection to the broker, and message counts")
    def link(_: Principal = Depends(viewer)) -> dict[str, Any]:
        return ctx.link.snapshot()

    @router.post("/labs/{lab}/machines/{machine}/requests", summary="Ask a lab about a machine (read-only kinds)")
    async def request(lab: str, machine: str, body: LabRequest,
                      principal: Principal = Depends(current_principal)) -> dict[str, Any]:
        action = PERMISSION[body.kind]
        target = f"{lab}/{machine}"
        if not principal.can(action):
            ctx.audit(principal, target, f"fleet.{body.kind}", "denied", f"role {principal.role}")
            raise HTTPException(403, _("your role ({role}) may not {action}; ask someone with the right role")
                                .format(role=principal.role, action=describe(action)))
        known_lab(lab)
        if not topic_safe(machine):
            raise HTTPException(422, _("{machine} is not a machine id").format(machine=repr(machine)))
        try:
            reply = await ctx.link.request(lab, machine, body.kind, body.args, principal.username)
        except RequestFailed as exc:
            ctx.audit(principal, target, f"fleet.{body.kind}", "failed", str(exc))
            raise HTTPException(exc.status, str(exc)) from None
        ctx.audit(principal, target, f"fleet.{body.kind}", "ok" if reply["ok"] else "refused",
                  "" if reply["ok"] else str(reply.get("error")))
        return reply

    return router
