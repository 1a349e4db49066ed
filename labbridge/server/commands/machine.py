"""The lab's machine commands: stop (hold, cancel), motion (resume, home, jog, start a job), controller
(unlock, reset, overrides) and settings. Each is defined here once; REST and the websocket serve it from here.

Stop always wins: hold, cancel and stopping a jog need only the stop permissions every role but viewer holds.
Anything that can start motion or change how the machine moves (resume, home, jog, a job, unlock, overrides) is
``moves_machine``; anything that writes the controller's configuration is ``changes_settings`` — a remote link
refuses both.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from labbridge.i18n import N_, _, phrase
from labbridge.server.auth import Action
from labbridge.server.commands.registry import Call, Command, Handler, NotFound, Registry, Rest
from labbridge.server.lab import CommandError
from labbridge.server.schemas import JobStartReply
from labbridge.server.store import sha256

COMMANDS = Registry()
"""Every machine command of the lab."""

MACHINE = "/api/machines/{machine}"


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


class SettingWrite(BaseModel):
    key: str = Field(max_length=20, description="the setting, e.g. $110 on GRBL")
    value: str = Field(max_length=80)


class JobStart(BaseModel):
    entry_id: int = Field(description="the queue entry to start")


OVERRIDE_LIMITS = {"feed": (10, 200), "spindle": (10, 200), "rapid": (25, 100)}


def _on_machine(name: str, permission: Action, summary: str, method: str, path: str, run: Handler,
                **flags: Any) -> None:
    """A command without arguments that the lab runs on one machine."""
    COMMANDS.add(Command(name, permission, summary, run, rest=Rest(method, f"{MACHINE}/{path}"), **flags))


# stop: always allowed to every role but viewer ------------------------------------------------------
_on_machine("hold", Action.HOLD, "Feed hold (any signed-in role but viewer; stop always wins)", "POST", "hold",
            lambda call: call.ctx.lab.hold(call.machine))
_on_machine("cancel", Action.CANCEL, "Cancel the running job (any signed-in role but viewer)", "POST", "cancel",
            lambda call: call.ctx.lab.cancel(call.machine))
_on_machine("jog.cancel", Action.HOLD, "Stop a jog (any signed-in role but viewer)", "POST", "jog/cancel",
            lambda call: call.ctx.lab.jog_cancel(call.machine))

# motion: an operator at the machine ----------------------------------------------------------------
_on_machine("resume", Action.JOB_RESUME, "Resume after a hold (operator: this starts motion)", "POST", "resume",
            lambda call: call.ctx.lab.resume(call.machine), moves_machine=True)
_on_machine("home", Action.HOME, "Run the homing cycle (operator)", "POST", "home",
            lambda call: call.ctx.lab.home(call.machine), moves_machine=True)

# controller and settings ------------------------------------------------------------------------------
_on_machine("unlock", Action.UNLOCK, "Clear an alarm lock ($X) (operator)", "POST", "unlock",
            lambda call: call.ctx.lab.unlock(call.machine), moves_machine=True)
_on_machine("reset", Action.RESET, "Soft-reset the controller (operator)", "POST", "reset",
            lambda call: call.ctx.lab.reset(call.machine))
_on_machine("settings.read", Action.SETTINGS_READ, "Read the controller's settings (technician)", "GET", "settings",
            lambda call: call.ctx.lab.read_settings(call.machine))


# commands with arguments ------------------------------------------------------------------------------
def _jog_words(args: JogRequest) -> dict[str, float]:
    return {a: v for a, v in (("X", args.x), ("Y", args.y), ("Z", args.z)) if v is not None}


def _check_jog(call: Call, args: JogRequest) -> None:
    """Refuse a jog that is too fast or would leave the envelope, before it reaches the controller."""
    machine = call.machine
    runtime = call.ctx.lab.runtime(machine)
    cfg = runtime.config
    if args.feed > cfg.max_feed:
        raise CommandError(_("{machine}: jog feed {feed} mm/min is above the machine's {max_feed}").format(
            machine=machine, feed=f"{args.feed:g}", max_feed=f"{cfg.max_feed:g}"))
    moves = _jog_words(args)
    if not moves:
        raise CommandError(_("{machine}: a jog needs at least one of x, y, z").format(machine=machine))
    position = runtime.state.position_machine or {}
    work = runtime.state.position_work or {}
    for axis, value in moves.items():
        if axis not in cfg.envelope:
            raise CommandError(_("{machine} has no {axis} axis").format(machine=machine, axis=axis))
        low, high = cfg.envelope[axis]  # type: ignore[index]
        if args.relative:
            if axis not in position:
                continue  # position unknown: the controller's soft limits decide
            target = position[axis] + value
        else:  # absolute jogs are in work coordinates, as the readout shows them
            if axis not in position or axis not in work:
                raise CommandError(_("{machine}: position unknown; jog relative instead").format(machine=machine))
            target = value + (position[axis] - work[axis])
        if not low - 1e-6 <= target <= high + 1e-6:
            raise CommandError(_("{machine}: jog would take {axis} to {target} (machine), outside the envelope "
                                 "{low}..{high}; jog a shorter distance").format(
                machine=machine, axis=axis, target=f"{target:.3f}", low=f"{low:g}", high=f"{high:g}"))


def _jog_audit(call: Call) -> str:
    args: JogRequest = call.args
    words = " ".join(f"{a}{v:g}" for a, v in _jog_words(args).items())
    return f"{words} F{args.feed:g}{'' if args.relative else ' absolute'}"


@COMMANDS.define("jog", Action.JOG, "Jog (operator); refused if it would leave the envelope",
                 rest=Rest("POST", f"{MACHINE}/jog"), args=JogRequest, audit=_jog_audit, moves_machine=True)
async def jog(call: Call) -> str:
    args: JogRequest = call.args
    _check_jog(call, args)
    return await call.ctx.lab.jog(call.machine, _jog_words(args), args.feed, args.relative)


JOB_STARTED = phrase(N_("job {job} started"))


def _entry(ctx: Any, entry_id: int) -> dict[str, Any]:
    entry = ctx.store.queue_entry(entry_id)
    if entry is None:
        raise NotFound(_("no queue entry {entry}").format(entry=entry_id))
    return entry  # type: ignore[no-any-return]


def _start_audit(call: Call) -> str:
    return f"#{call.args.entry_id} {_entry(call.ctx, call.args.entry_id)['name']}"


def _start_reply(call: Call) -> dict[str, Any]:
    return {"entry": call.ctx.store.queue_entry(call.args.entry_id)}


@COMMANDS.define("job.start", Action.JOB_START, "Start a queued program (operator)",
                 rest=Rest("POST", "/api/queue/{entry_id}/start", tags=("queue",)), args=JobStart,
                 audit=_start_audit, moves_machine=True, reply=_start_reply, reply_model=JobStartReply,
                 locate=lambda ctx, args: str(_entry(ctx, args.entry_id)["machine"]))
async def start_job(call: Call) -> str:
    """Hand the runner the exact bytes that were checked (verified again by hash)."""
    ctx, entry_id = call.ctx, call.args.entry_id
    entry = _entry(ctx, entry_id)
    if entry["state"] != "queued":
        raise CommandError(_("queue entry {entry} is {state}, not queued").format(entry=entry_id, state=entry["state"]))
    path = ctx.store.program_file(entry["hash"])
    if sha256(path.read_bytes()) != entry["hash"]:
        raise CommandError(_("program file for entry {entry} does not match its checked bytes; re-upload it").format(
            entry=entry_id))
    job_id = await ctx.lab.start_job(call.machine, path, entry["name"], call.principal.username, entry_id)
    ctx.store.update_queue(entry_id, state="running", started_by=call.principal.username, started_at=time.time(),
                           job_id=job_id)
    ctx.announce_queue(call.machine)
    return JOB_STARTED.format(job=job_id)


@COMMANDS.define("override", Action.OVERRIDE, "Set the feed, rapid or spindle override (operator)",
                 rest=Rest("POST", f"{MACHINE}/override"), args=OverrideRequest,
                 audit=lambda call: f"{call.args.target} {call.args.value}%", moves_machine=True)
async def override(call: Call) -> str:
    args: OverrideRequest = call.args
    low, high = OVERRIDE_LIMITS[args.target]
    if not low <= args.value <= high:
        raise CommandError(_("{target} override {value}%: outside {low}..{high}%").format(
            target=args.target, value=args.value, low=low, high=high))
    if args.target == "rapid" and args.value not in (25, 50, 100):
        raise CommandError(_("the rapid override is 25, 50 or 100%"))
    return await call.ctx.lab.set_override(call.machine, args.target, args.value)


@COMMANDS.define("settings.write", Action.SETTINGS_WRITE, "Write one controller setting (technician)",
                 rest=Rest("PUT", f"{MACHINE}/settings/{{key}}"), args=SettingWrite,
                 audit=lambda call: f"{call.args.key!r} = {call.args.value!r}",  # exactly as sent
                 changes_settings=True)
async def write_setting(call: Call) -> str:
    lab, machine = call.ctx.lab, call.machine
    if lab.runtime(machine).state.is_moving or lab.job_running(machine):
        raise CommandError(_("{machine} is moving or running a job; change settings when it is idle").format(
            machine=machine))
    return await lab.write_setting(machine, call.args.key, call.args.value)
