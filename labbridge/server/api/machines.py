"""Machines: their description with live state, and diagnostics. Their commands (hold, jog, settings, ...)
are defined once in :mod:`labbridge.server.commands` and routed by :mod:`labbridge.server.api.commands`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from labbridge.drivers.base import capabilities
from labbridge.server.api.deps import Context, get_ctx, known_machine, require
from labbridge.server.auth import Action, Principal
from labbridge.server.schemas import Diagnostics, MachineDescription, documented
from labbridge.streaming.texts import localize_state

router = APIRouter(prefix="/api/machines", tags=["machines"])


def describe_machine(ctx: Context, machine_id: str) -> dict[str, Any]:
    runtime = ctx.lab.runtime(machine_id)
    m = runtime.config
    return {
        "id": machine_id,
        "name": m.name,
        "controller": m.controller,
        "axes": list(m.axes),
        "envelope": {a: list(v) for a, v in m.envelope.items()},
        "keep_out": [k.model_dump() for k in m.keep_out],
        "max_feed": m.max_feed,
        "max_rpm": m.spindle.max_rpm,
        "simulated": runtime.sim is not None,
        "capabilities": capabilities(runtime.driver),  # what the controller cannot do gets no button
        "job_running": ctx.lab.job_running(machine_id),
        "queue_entry": runtime.queue_entry,
        "state": localize_state(runtime.state.to_dict()),
    }


@router.get("", summary="All machines with their live state", **documented(list[MachineDescription]))
def list_machines(_: Principal = require(Action.VIEW), ctx: Context = Depends(get_ctx)) -> list[dict[str, Any]]:
    return [describe_machine(ctx, m) for m in ctx.lab.machines]


@router.get("/{machine}", summary="One machine with its live state", **documented(MachineDescription))
def get_machine(machine: str, _: Principal = require(Action.VIEW), ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    known_machine(ctx, machine)
    return describe_machine(ctx, machine)


@router.get("/{machine}/diagnostics", summary="Firmware, settings vs config, alarms, connection, recent log",
            **documented(Diagnostics))
def diagnostics(machine: str, _: Principal = require(Action.DIAGNOSTICS),
                ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    known_machine(ctx, machine)
    return ctx.lab.diagnostics(machine)
