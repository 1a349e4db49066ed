"""Machines: their state, commands (hold always allowed to non-viewers) and diagnostics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from labbridge.durable import StorageFull
from labbridge.errors import InterlockError, LabbridgeError
from labbridge.server.api.deps import Context, get_ctx, known_machine, require
from labbridge.server.auth import Action, Principal
from labbridge.server.lab import CommandError, _jsonable

router = APIRouter(prefix="/api/machines", tags=["machines"])

CAPABILITIES = ("feed_hold", "cycle_start", "home", "unlock", "soft_reset", "jog", "jog_cancel", "override",
                "read_settings", "write_setting", "stream")
"""Driver methods the dashboard offers buttons for; what a controller cannot do is not shown."""


class JogRequest(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)  # NaN and Infinity are refused (422), never sent
    x: float | None = None
    y: float | None = None
    z: float | None = None
    feed: float = Field(gt=0, description="mm/min")
    relative: bool = True


class OverrideRequest(BaseModel):
    target: Literal["feed", "rapid", "spindle"]
    value: int = Field(description="percent: feed 10-200, rapid 25/50/100, spindle 10-200")


class SettingValue(BaseModel):
    value: str = Field(max_length=80)


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
        "capabilities": [name for name in CAPABILITIES if callable(getattr(runtime.driver, name, None))],
        "job_running": ctx.lab.job_running(machine_id),
        "queue_entry": runtime.queue_entry,
        "state": runtime.state.to_dict(),
    }


async def run_command(ctx: Context, principal: Principal, machine: str, action: str,
                      call: Callable[[], Awaitable[Any]], detail: str = "") -> dict[str, Any]:
    """Run a machine command, audit it with its outcome, and turn refusals into HTTP 409."""
    known_machine(ctx, machine)
    try:
        result = await call()
    except InterlockError as exc:
        ctx.audit(principal, machine, action, "refused", f"{exc.interlock}: {exc} {detail}".strip())
        raise HTTPException(409, str(exc)) from None
    except StorageFull:
        raise  # answered 507 (the command was not carried out: its record could not be kept)
    except (CommandError, LabbridgeError) as exc:
        ctx.audit(principal, machine, action, "failed", f"{exc} {detail}".strip())
        raise HTTPException(409, str(exc)) from None
    except Exception as exc:
        ctx.audit(principal, machine, action, "error", f"{type(exc).__name__}: {exc} {detail}".strip())
        raise HTTPException(500, f"{machine}: {action} failed unexpectedly: {exc}") from None
    ctx.audit(principal, machine, action, "ok", (detail + " " + (result if isinstance(result, str) else "")).strip())
    return {"machine": machine, "action": action, "result": _jsonable(result)}


@router.get("", summary="All machines with their live state")
def list_machines(_: Principal = require(Action.VIEW), ctx: Context = Depends(get_ctx)) -> list[dict[str, Any]]:
    return [describe_machine(ctx, m) for m in ctx.lab.machines]


@router.get("/{machine}", summary="One machine with its live state")
def get_machine(machine: str, _: Principal = require(Action.VIEW), ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    known_machine(ctx, machine)
    return describe_machine(ctx, machine)


@router.post("/{machine}/hold", summary="Feed hold (any signed-in role but viewer; stop always wins)")
async def hold(machine: str, p: Principal = require(Action.HOLD), ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    return await run_command(ctx, p, machine, "hold", lambda: ctx.lab.hold(machine))


@router.post("/{machine}/cancel", summary="Cancel the running job (any signed-in role but viewer)")
async def cancel(machine: str, p: Principal = require(Action.CANCEL), ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    return await run_command(ctx, p, machine, "cancel", lambda: ctx.lab.cancel(machine))


@router.post("/{machine}/resume", summary="Resume after a hold (operator: this starts motion)")
async def resume(machine: str, p: Principal = require(Action.JOB_RESUME),
                 ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    return await run_command(ctx, p, machine, "resume", lambda: ctx.lab.resume(machine))


@router.post("/{machine}/home", summary="Run the homing cycle (operator)")
async def home(machine: str, p: Principal = require(Action.HOME), ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    return await run_command(ctx, p, machine, "home", lambda: ctx.lab.command(machine, "home"))


@router.post("/{machine}/unlock", summary="Clear an alarm lock ($X) (operator)")
async def unlock(machine: str, p: Principal = require(Action.UNLOCK), ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    return await run_command(ctx, p, machine, "unlock", lambda: ctx.lab.command(machine, "unlock"))


@router.post("/{machine}/reset", summary="Soft-reset the controller (operator)")
async def reset(machine: str, p: Principal = require(Action.RESET), ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    return await run_command(ctx, p, machine, "reset", lambda: ctx.lab.command(machine, "soft_reset"))


def _check_jog(ctx: Context, machine: str, body: JogRequest) -> None:
    runtime = ctx.lab.runtime(machine)
    cfg = runtime.config
    if body.feed > cfg.max_feed:
        raise CommandError(f"{machine}: jog feed {body.feed:g} mm/min is above the machine's {cfg.max_feed:g}")
    moves = {"X": body.x, "Y": body.y, "Z": body.z}
    if all(v is None for v in moves.values()):
        raise CommandError(f"{machine}: a jog needs at least one of x, y, z")
    position = runtime.state.position_machine or {}
    work = runtime.state.position_work or {}
    for axis, value in moves.items():
        if value is None:
            continue
        if axis not in cfg.envelope:
            raise CommandError(f"{machine} has no {axis} axis")
        low, high = cfg.envelope[axis]  # type: ignore[index]
        if body.relative:
            if axis not in position:
                continue  # position unknown: the controller's soft limits decide
            target = position[axis] + value
        else:  # absolute jogs are in work coordinates, as the readout shows them
            if axis not in position or axis not in work:
                raise CommandError(f"{machine}: position unknown; jog relative instead")
            target = value + (position[axis] - work[axis])
        if not low - 1e-6 <= target <= high + 1e-6:
            raise CommandError(
                f"{machine}: jog would take {axis} to {target:.3f} (machine), outside the envelope "
                f"{low:g}..{high:g}; jog a shorter distance"
            )


@router.post("/{machine}/jog", summary="Jog (operator); refused if it would leave the envelope")
async def jog(machine: str, body: JogRequest, p: Principal = require(Action.JOG),
              ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    async def call() -> Any:
        _check_jog(ctx, machine, body)
        moves = {a: v for a, v in (("X", body.x), ("Y", body.y), ("Z", body.z)) if v is not None}
        return await ctx.lab.jog(machine, moves, body.feed, body.relative)

    detail = " ".join(f"{a}{v:g}" for a, v in (("X", body.x), ("Y", body.y), ("Z", body.z)) if v is not None)
    return await run_command(ctx, p, machine, "jog", call, f"{detail} F{body.feed:g}"
                             f"{'' if body.relative else ' absolute'}")


@router.post("/{machine}/jog/cancel", summary="Stop a jog (any signed-in role but viewer)")
async def jog_cancel(machine: str, p: Principal = require(Action.HOLD),
                     ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    return await run_command(ctx, p, machine, "jog.cancel", lambda: ctx.lab.command(machine, "jog_cancel"))


@router.post("/{machine}/override", summary="Set the feed, rapid or spindle override (operator)")
async def override(machine: str, body: OverrideRequest, p: Principal = require(Action.OVERRIDE),
                   ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    limits = {"feed": (10, 200), "spindle": (10, 200), "rapid": (25, 100)}
    low, high = limits[body.target]

    async def call() -> Any:
        if not low <= body.value <= high:
            raise CommandError(f"{body.target} override {body.value}% is outside {low}..{high}%")
        if body.target == "rapid" and body.value not in (25, 50, 100):
            raise CommandError("the rapid override is 25, 50 or 100%")
        return await ctx.lab.set_override(machine, body.target, body.value)

    return await run_command(ctx, p, machine, "override", call, f"{body.target} {body.value}%")


@router.get("/{machine}/diagnostics", summary="Firmware, settings vs config, alarms, connection, recent log")
def diagnostics(machine: str, _: Principal = require(Action.DIAGNOSTICS),
                ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    known_machine(ctx, machine)
    return ctx.lab.diagnostics(machine)


@router.get("/{machine}/settings", summary="Read the controller's settings (technician)")
async def read_settings(machine: str, p: Principal = require(Action.SETTINGS_READ),
                        ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    return await run_command(ctx, p, machine, "settings.read", lambda: ctx.lab.read_settings(machine))


@router.put("/{machine}/settings/{key}", summary="Write one controller setting (technician)")
async def write_setting(machine: str, key: str, body: SettingValue, p: Principal = require(Action.SETTINGS_WRITE),
                        ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    async def call() -> Any:
        if ctx.lab.runtime(machine).state.is_moving or ctx.lab.job_running(machine):
            raise CommandError(f"{machine} is moving or running a job; change settings when it is idle")
        return await ctx.lab.write_setting(machine, key, body.value)

    return await run_command(ctx, p, machine, "settings.write", call, f"{key!r} = {body.value!r}")  # exactly as sent
