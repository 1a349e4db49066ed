"""The lab dashboard's view of the fleet link: its state, and the settings changes waiting for an operator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException

from labbridge.fleet.approvals import APPROVE, ApprovalError, ApprovalNotFound
from labbridge.server.api.deps import require
from labbridge.server.auth import Action, Principal

if TYPE_CHECKING:
    from labbridge.fleet.service import FleetService


def build_router(service: FleetService) -> APIRouter:
    router = APIRouter(prefix="/api/fleet", tags=["fleet link"])

    @router.get("/link", summary="The link to headquarters: connected or not, why, events waiting")
    def link(_: Principal = require(Action.VIEW)) -> dict[str, Any]:
        return service.link_state()

    @router.get("/approvals", summary="Settings changes asked for by headquarters (pending first)")
    def approvals(_: Principal = require(Action.VIEW)) -> list[dict[str, Any]]:
        rows = service.approvals.list(limit=50)
        return sorted(rows, key=lambda r: (r["state"] != "pending", -r["id"]))

    async def decide(approval_id: int, accept: bool, principal: Principal) -> dict[str, Any]:
        try:
            return await service.decide(approval_id, accept, principal.username)
        except ApprovalError as exc:
            status = 404 if isinstance(exc, ApprovalNotFound) else 409
            raise HTTPException(status, str(exc)) from None

    @router.post("/approvals/{approval_id}/accept", summary="Accept a settings change (operator at the machine)")
    async def accept(approval_id: int, principal: Principal = require(APPROVE)) -> dict[str, Any]:
        return await decide(approval_id, True, principal)

    @router.post("/approvals/{approval_id}/refuse", summary="Refuse a settings change (operator at the machine)")
    async def refuse(approval_id: int, principal: Principal = require(APPROVE)) -> dict[str, Any]:
        return await decide(approval_id, False, principal)

    return router
