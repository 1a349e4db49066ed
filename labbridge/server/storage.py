"""Whether the data directory takes writes, told to the people who can act on it.

When the disk fills, records wait in memory (see :mod:`labbridge.durable`); admins,
operators and technicians see "storage full" on the dashboard (a ``storage``
websocket event and ``GET /api/server/storage``), and an action whose record cannot
wait (an upload, a new user) is answered 507 with a message saying what to do.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from labbridge.durable import StorageFull, StorageStatus
from labbridge.server.api.deps import Context, get_ctx, require
from labbridge.server.auth import PERMISSIONS, Action, Principal
from labbridge.server.schemas import StorageState

STORAGE_ROLES = frozenset(role.value for role, actions in PERMISSIONS.items() if Action.STORAGE in actions)


def status(ctx: Context) -> dict[str, Any]:
    """Both record stores (web tables and job records) as one answer."""
    parts: list[StorageStatus] = [ctx.store.storage()]
    job_store = ctx.lab.job_store()
    if job_store is not None:
        parts.append(job_store.db.status())
    bad = [p for p in parts if not p.ok]
    return {
        "ok": not bad,
        "full": any(p.problem == "the disk is full" for p in bad),
        "problem": bad[0].problem if bad else None,
        "since": min((p.since for p in bad if p.since), default=None),
        "pending": sum(p.pending for p in parts),
        "dropped": sum(p.dropped for p in parts),
        "data_dir": str(ctx.settings.data_dir),
        "message": (f"storage full: {bad[0].problem} in {ctx.settings.data_dir}; {sum(p.pending for p in parts)} "
                    "records are kept in memory and will be written when space returns. Free space there; "
                    "uploads are refused until then, stop commands work as always.") if bad else None,
    }


def watch(ctx: Context) -> None:
    """Tell admins, operators and technicians on the websocket whenever storage fails or recovers."""
    loop = asyncio.get_running_loop()

    def changed(_status: StorageStatus) -> None:
        def announce() -> None:
            ctx.hub.broadcast({"type": "storage", **status(ctx)}, roles=STORAGE_ROLES)

        loop.call_soon_threadsafe(announce)

    ctx.store.db.listeners.append(changed)
    job_store = ctx.lab.job_store()
    if job_store is not None:
        job_store.db.listeners.append(changed)


def install(app: FastAPI, ctx: Context) -> None:
    """The status route and the 507 answer for records that cannot wait."""

    @app.get("/api/server/storage", tags=["server"], response_model=StorageState,
             summary="Can the data directory take writes? (storage full)")
    def storage_status(_: Principal = require(Action.STORAGE), context: Context = Depends(get_ctx)) -> dict[str, Any]:
        return status(context)

    async def storage_full(request: Request, exc: Exception) -> JSONResponse:
        principal = getattr(request.state, "principal", None)
        ctx.audit(principal, request.path_params.get("machine"), f"{request.method} {request.url.path}"[:80],
                  "storage-full", str(exc))
        return JSONResponse({"detail": str(exc), "storage": status(ctx)}, status_code=507)

    app.add_exception_handler(StorageFull, storage_full)
