"""Headquarters' requests to a lab: read-only answers, and a refusal for anything that moves or changes.

Served kinds: ``diagnostics``, ``settings`` (read), ``alarm-history``, ``jobs``, ``logs``, ``check``
(the safety gate on a program text against that machine) and ``settings-change``, which changes
nothing itself: it becomes a pending approval for the lab's operator. Every other kind is answered
``ok: false`` with the reason — the fleet link never moves a machine, starts or stops a job, or
writes a setting; that needs someone at the machine. Every request, answered or refused, is audited.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from labbridge.errors import LabbridgeError
from labbridge.fleet.approvals import ApprovalError, Approvals, validate_change
from labbridge.fleet.outbox import Outbox
from labbridge.fleet.topics import MAX_PAYLOAD, Request
from labbridge.log import RECENT_EVENTS
from labbridge.server.api.deps import Context
from labbridge.server.lab import _jsonable

READ_KINDS = ("diagnostics", "settings", "alarm-history", "jobs", "logs", "check")
CHANGE_KIND = "settings-change"
MOVES = frozenset({"hold", "resume", "cancel", "home", "unlock", "reset", "soft-reset", "jog", "jog-cancel",
                   "override", "start", "job-start", "stream", "run", "cycle-start", "feed-hold"})
CHANGES = frozenset({"settings-write", "write-setting", "set-setting", "setting", "parameter-write"})
MAX_LIST = 500


@dataclass(frozen=True)
class Answer:
    ok: bool
    result: Any = None
    error: str | None = None
    outcome: str = "ok"  # ok | failed | refused, as audited

    def reply(self, request_id: str) -> dict[str, Any]:
        if self.ok:
            return {"id": request_id, "ok": True, "result": self.result}
        return {"id": request_id, "ok": False, "error": self.error}


def refusal(kind: str) -> str | None:
    """Why the fleet link will not do ``kind``, or None if it is a kind it serves."""
    name = kind.strip().lower().replace("_", "-").replace(".", "-")
    if kind in READ_KINDS or kind == CHANGE_KIND:
        return None
    if name in MOVES:
        return (f"{kind!r} acts on the machine (it may move it, start it or stop it); the fleet link never does "
                "that: ask the lab's operator at the machine")
    if name in CHANGES or ("setting" in name and name != CHANGE_KIND):
        return (f"{kind!r} changes a setting; the fleet link never writes settings itself: send a "
                "'settings-change' request and the lab's operator accepts or refuses it at the machine")
    return f"unknown request kind {kind[:64]!r}; the fleet link answers: {', '.join(READ_KINDS + (CHANGE_KIND,))}"


def _limit(args: dict[str, Any], default: int = 100) -> int:
    value = args.get("limit", default)
    return max(1, min(MAX_LIST, value)) if isinstance(value, int) and not isinstance(value, bool) else default


class RequestHandler:
    """Answers one request for one machine of this lab."""

    def __init__(self, ctx: Context, approvals: Approvals, outbox: Outbox) -> None:
        self.ctx = ctx
        self.approvals = approvals
        self.outbox = outbox

    async def handle(self, machine: str, request: Request) -> Answer:
        who = f"hq:{request.user}" if request.user else "hq"
        answer = await self._answer(machine, request, who)
        detail = f"request {request.id}" + ("" if answer.ok else f": {answer.error}")
        self.ctx.audit(who, machine, f"fleet.{request.kind[:64]}", answer.outcome, detail)
        return answer

    async def _answer(self, machine: str, request: Request, who: str) -> Answer:
        reason = refusal(request.kind)
        if reason is not None:
            return Answer(False, error=reason, outcome="refused")
        if machine not in self.ctx.lab.machines:
            return Answer(False, error=f"this lab has no machine {machine!r}; it has: {', '.join(self.ctx.lab.machines)}",
                          outcome="failed")
        try:
            return Answer(True, result=await self._serve(machine, request, who))
        except (LabbridgeError, ApprovalError, ValueError) as exc:
            return Answer(False, error=str(exc), outcome="failed")

    async def _serve(self, machine: str, request: Request, who: str) -> Any:
        kind, args = request.kind, request.args
        lab, store = self.ctx.lab, self.ctx.store
        if kind == "diagnostics":
            return lab.diagnostics(machine)
        if kind == "settings":
            return await lab.read_settings(machine)
        if kind == "alarm-history":
            return store.alarms(machine, limit=_limit(args))
        if kind == "jobs":
            jobs = lab.job_store()
            return [] if jobs is None else [j.to_dict() for j in jobs.list_jobs(machine, limit=_limit(args, 50))]
        if kind == "logs":
            events = [e for e in list(RECENT_EVENTS) if e.get("machine") == machine]
            return _jsonable(events[-_limit(args, 200):])
        if kind == "check":
            return await self._check(machine, args)
        return self._settings_change(machine, request, who)

    async def _check(self, machine: str, args: dict[str, Any]) -> Any:
        from labbridge.safety import check_text

        text = args.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("a check needs args.text: the program's text")
        if len(text.encode("utf-8")) > MAX_PAYLOAD:
            raise ValueError(f"the program is larger than {MAX_PAYLOAD // 1024} KB; check it at the lab")
        name = str(args.get("name") or "fleet-check.nc")[:200]
        config = self.ctx.lab.runtime(machine).config
        report = await asyncio.to_thread(check_text, text, config, machine_id=machine, program_name=name)
        return report.to_json()

    def _settings_change(self, machine: str, request: Request, who: str) -> Any:
        key, value = validate_change(request.args.get("key"), request.args.get("value"))
        reason = str(request.args.get("reason") or "")[:500]
        row = self.approvals.add(machine, key, value, reason, who, request.id)
        self.outbox.append("approval.requested", machine, approval=row["id"], key=key, value=value,
                           reason=reason, requested_by=who, request_id=request.id)
        return {"approval": row["id"], "state": "pending",
                "message": f"waiting for the lab's operator to accept {key}={value} at {machine}"}
