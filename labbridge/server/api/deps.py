"""What every route shares: the server context, the signed-in caller, role checks and auditing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, HTTPException, Request

from labbridge.config import LabConfig
from labbridge.i18n import N_, _
from labbridge.log import get_logger
from labbridge.server.audit import AuditTrail
from labbridge.server.auth import Action, Auth, AuthError, Principal, Scope
from labbridge.server.hub import Hub
from labbridge.server.lab import Lab, SimulatorFactory
from labbridge.server.previews import PreviewService
from labbridge.server.store import Store
from labbridge.server.throttle import DeviceCookies

DEFAULT_MAX_UPLOAD = 10 * 1024 * 1024


@dataclass
class ServerSettings:
    """How ``labbridge serve`` was started."""

    config: LabConfig
    data_dir: Path
    simulators: SimulatorFactory | None = None  # given by `labbridge demo` / `serve --demo`: every machine simulated
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    cors_origins: list[str] = field(default_factory=list)
    ws_origins: list[str] = field(default_factory=list)
    sim_options: dict[str, Any] = field(default_factory=dict)
    ws_max_rate: float = 10.0
    ws_heartbeat: float = 15.0
    reset_admin: bool = False
    poll_hz: float | None = None
    freeze_gc: bool = False
    trusted_proxies: list[str] = field(default_factory=list)  # addresses whose X-Forwarded-For is believed
    token_idle_timeout: float | None = None  # seconds (Auth.IDLE_TIMEOUT if unset)
    ws_recheck: float = 5.0  # seconds between an open websocket's token checks
    tls: bool = False  # served over https (share links and cookies say so)
    twins: SimulatorFactory | None = None  # given by the CLI in every mode: digital twins for dry runs
    class_retention_days: float = 30.0  # a class's submissions (minors' data) are deleted this long after it ends

    @property
    def demo(self) -> bool:
        return self.simulators is not None


@dataclass
class Context:
    settings: ServerSettings
    store: Store
    auth: Auth
    lab: Lab
    hub: Hub
    admin_password: str | None = None
    services: list[Any] = field(default_factory=list)
    """Optional parts started after the lab and stopped before it (``start()``/``stop()``, maybe a ``router``)."""
    audit_trail: AuditTrail = field(init=False)
    devices: DeviceCookies = field(init=False)

    def __post_init__(self) -> None:
        self.audit_trail = AuditTrail(self.store)
        self.devices = DeviceCookies(self.settings.data_dir / "device-cookie.key")
    previews: PreviewService = field(default_factory=PreviewService)
    dry_runs: Any = None  # labbridge.server.twins.DryRuns

    def audit(self, who: Principal | str | None, machine: str | None, action: str, outcome: str,
              detail: str = "") -> None:
        """One audit row; never waits for the disk (kept in memory while it is full)."""
        username = who.username if isinstance(who, Principal) else who
        self.store.audit(username, machine, action, outcome, detail)
        get_logger(machine=machine, user=username).info("audit", action=action, outcome=outcome, detail=detail)

    def announce_queue(self, machine: str) -> None:
        """Tell every dashboard that a machine's queue changed."""
        self.hub.broadcast({"type": "queue", "machine": machine, "time": time.time()})


def get_ctx(request: Request) -> Context:
    return request.app.state.ctx  # type: ignore[no-any-return]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def client_address(request: Request, ctx: Context) -> str:
    """The caller's address: the socket's peer, or X-Forwarded-For's last hop when the peer is a trusted proxy."""
    peer = request.client.host if request.client else "unknown"
    if peer in getattr(ctx.settings, "trusted_proxies", ()):  # the fleet HQ's settings have none
        forwarded = request.headers.get("x-forwarded-for", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1][:64]
    return peer


PASSWORD_ROUTE = "/api/auth/password"


async def current_principal(request: Request, ctx: Context = Depends(get_ctx)) -> Principal:
    """The caller (async and served from memory: a hold never waits for a thread or the disk)."""
    try:
        principal = ctx.auth.authenticate(bearer_token(request))
    except AuthError as exc:
        raise HTTPException(exc.status, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
    if principal.scope == Scope.PASSWORD.value and not (request.method == "POST"
                                                         and request.url.path == PASSWORD_ROUTE):
        ctx.audit(principal, None, f"{request.method} {request.url.path}"[:80], "denied",
                  "one-time password not changed yet")
        raise HTTPException(403, _("choose a new password first: this sign-in used a one-time password, which "
                                   "only allows POST {route}").format(route=PASSWORD_ROUTE))
    request.state.principal = principal
    return principal


def require(action: Action) -> Any:
    """A dependency that lets the call through only if the caller's role allows ``action``."""

    async def check(request: Request, principal: Principal = Depends(current_principal),
                    ctx: Context = Depends(get_ctx)) -> Principal:
        if not principal.can(action):
            machine = request.path_params.get("machine")
            entry_id = request.path_params.get("entry_id")
            if machine is None and entry_id is not None and str(entry_id).isdigit():
                entry = ctx.store.queue_entry(int(entry_id))
                machine = entry["machine"] if entry else None
            ctx.audit(principal, machine, action.value, "denied", f"role {principal.role}")
            raise HTTPException(403, _("your role ({role}) may not {action}; ask someone with the right role")
                                .format(role=principal.role, action=describe(action)))
        return principal

    return Depends(check)


_DESCRIPTIONS = {
    Action.VIEW: N_("view the lab"),
    Action.PROGRAM_UPLOAD: N_("upload programs"),
    Action.PROGRAM_CHECK: N_("check programs"),
    Action.QUEUE_SUBMIT: N_("submit programs to the queue"),
    Action.QUEUE_REMOVE: N_("remove queued programs"),
    Action.JOB_START: N_("start jobs (starting motion needs an operator)"),
    Action.JOB_RESUME: N_("resume motion (needs an operator)"),
    Action.HOLD: N_("hold"),
    Action.CANCEL: N_("cancel"),
    Action.HOME: N_("home machines"),
    Action.UNLOCK: N_("unlock machines"),
    Action.JOG: N_("jog machines"),
    Action.OVERRIDE: N_("change overrides"),
    Action.RESET: N_("reset controllers"),
    Action.DIAGNOSTICS: N_("read diagnostics"),
    Action.SETTINGS_READ: N_("read controller settings"),
    Action.SETTINGS_WRITE: N_("change controller settings"),
    Action.USERS: N_("manage users"),
    Action.AUDIT: N_("read the audit log"),
    Action.CLASS_MANAGE: N_("run classes"),
    Action.STORAGE: N_("see the storage status"),
    Action.SHARE: N_("make share links"),
    Action.RECORDS: N_("read programs, notes and job records (viewers see live state only)"),
    Action.DRY_RUN: N_("start dry runs"),
}


def describe(action: Action) -> str:
    return _(_DESCRIPTIONS[action]) if action in _DESCRIPTIONS else action.value


def known_machine(ctx: Context, machine: str) -> None:
    if machine not in ctx.lab.machines:
        raise HTTPException(404, _("no machine {machine}; the lab has: {machines}").format(
            machine=repr(machine), machines=", ".join(ctx.lab.machines)))
