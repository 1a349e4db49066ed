"""The fleet link as a part of ``labbridge serve``: built from the config, started after the lab.

``attach(ctx)`` does nothing when the config has no ``fleet:``. Otherwise it adds one service to
the server context: at start it hooks the event sources into the audit writer, the machines'
states and the job listeners, and starts the link; at stop it says goodbye to the broker.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from labbridge.config import FleetLink, LabIdentity
from labbridge.errors import ConfigError
from labbridge.i18n import _
from labbridge.fleet.api import build_router
from labbridge.fleet.approvals import ApprovalError, Approvals
from labbridge.fleet.events import EventSource
from labbridge.fleet.link import LabLink
from labbridge.fleet.outbox import Outbox
from labbridge.fleet.requests import RequestHandler
from labbridge.fleet.topics import Request, topic_safe
from labbridge.server.api.deps import Context
from labbridge.server.lab import CommandError


class FleetService:
    """Outbox, event sources, request handler, approvals and link for one lab server."""

    def __init__(self, ctx: Context, cfg: FleetLink, identity: LabIdentity, base_dir: Path | None = None) -> None:
        for machine in ctx.settings.config.machines:
            if not topic_safe(machine):
                raise ConfigError(f"machines.{machine}: with a fleet link, machine ids are MQTT topic levels; "
                                  "use letters, digits, '-', '_' or '.'")
        self.ctx = ctx
        self.cfg = cfg
        self.identity = identity
        self.base_dir = base_dir
        self.outbox = Outbox(ctx.store.path, max_events=cfg.max_stored_events)
        self.approvals = Approvals(ctx.store.path)
        self.events = EventSource(self.outbox)
        self.requests = RequestHandler(ctx, self.approvals, self.outbox)
        self.link: LabLink | None = None
        self.router = build_router(self)

    async def start(self) -> None:
        lab = self.ctx.lab
        self.ctx.store.audit_listeners.append(self.events.on_audit)
        lab.job_listeners.append(self.events.on_job_finished)
        states = lab.states()
        self.events.watch(states)
        self.link = LabLink(self.cfg, self.identity, states, self.outbox, self._handle, self.base_dir)
        await self.link.start()

    async def stop(self) -> None:
        if self.link is not None:
            await self.link.stop()
        self.events.stop()
        if self.events.on_audit in self.ctx.store.audit_listeners:
            self.ctx.store.audit_listeners.remove(self.events.on_audit)
        if self.events.on_job_finished in self.ctx.lab.job_listeners:
            self.ctx.lab.job_listeners.remove(self.events.on_job_finished)
        self.outbox.close()
        self.approvals.close()

    async def _handle(self, machine: str, request: Request) -> Any:
        answer = await self.requests.handle(machine, request)
        if answer.ok and request.kind == "settings-change":
            self.ctx.hub.broadcast({"type": "fleet.approval", "machine": machine, "time": time.time()}, machine)
        return answer

    def link_state(self) -> dict[str, Any]:
        if self.link is None:
            return {"configured": True, "lab": self.identity.id, "broker": self.cfg.broker, "state": "starting"}
        return self.link.snapshot()

    async def decide(self, approval_id: int, accept: bool, user: str) -> dict[str, Any]:
        """An operator at the lab accepts (the setting is written now) or refuses a settings change."""
        row = self.approvals.claim(approval_id, user)
        machine, lab = row["machine"], self.ctx.lab
        action = "fleet.settings-change"
        if not accept:
            row = self.approvals.finish(approval_id, "refused", user, "refused at the lab")
        else:
            try:
                if machine not in lab.machines:
                    raise CommandError(_("this lab no longer has machine {machine}").format(machine=repr(machine)))
                if lab.runtime(machine).state.is_moving or lab.job_running(machine):
                    raise CommandError(_("{machine} is moving or running a job; accept it when the machine is idle")
                                       .format(machine=machine))
                result = await lab.write_setting(machine, row["key"], row["value"])
                row = self.approvals.finish(approval_id, "accepted", user, str(result))
            except (CommandError, ApprovalError, ValueError) as exc:
                self.approvals.finish(approval_id, "pending", "", f"not applied: {exc}")  # may be tried again
                self.ctx.audit(user, machine, action, "failed", f"#{approval_id} {row['key']}={row['value']}: {exc}")
                raise ApprovalError(str(exc)) from None
        self.ctx.audit(user, machine, action, row["state"], f"#{approval_id} {row['key']}={row['value']} "
                       f"asked by {row['requested_by']}")
        self.outbox.append("approval.decided", machine, approval=approval_id, key=row["key"], value=row["value"],
                           state=row["state"], decided_by=user, request_id=row["request_id"], result=row["result"])
        return row


def attach(ctx: Context, base_dir: Path | None = None) -> FleetService | None:
    """Add the fleet link to a lab server if its config has ``fleet:`` (and ``lab:``)."""
    config = ctx.settings.config
    fleet, identity = getattr(config, "fleet", None), getattr(config, "lab", None)
    if fleet is None or identity is None:
        return None
    service = FleetService(ctx, fleet, identity, base_dir)
    ctx.services.append(service)
    return service
