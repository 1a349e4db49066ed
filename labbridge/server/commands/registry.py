"""The command registry: each machine command defined once, run the same way whatever carried it.

A :class:`Command` names its permission, its argument model, how the audit log words it, what it does, and
what kind of command it is (``moves_machine``, ``changes_settings``). Transports — REST routes
(:mod:`labbridge.server.api.commands`), websocket messages (:mod:`labbridge.server.api.ws`), a fleet link —
only turn their request into ``(command, machine, args)`` and call :func:`execute`, which checks the role,
finds the machine, runs the handler and audits the outcome. So a permission or a refusal is never written
twice, and a transport that must refuse motion (a remote link) reads the flags instead of a list of names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from labbridge.durable import StorageFull
from labbridge.errors import InterlockError, LabbridgeError
from labbridge.i18n import _, localize
from labbridge.server.auth import Action, Principal
from labbridge.server.lab import CommandError, _jsonable

if TYPE_CHECKING:
    from labbridge.server.api.deps import Context

REST = "rest"
WEBSOCKET = "websocket"


class NotFound(LabbridgeError):
    """What the command names does not exist (a machine, a queue entry): HTTP 404."""


class CommandFailed(Exception):
    """The command was refused or failed; ``status`` is the HTTP status a REST caller gets."""

    def __init__(self, status: int, message: str, machine: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.machine = machine


@dataclass(frozen=True)
class Rest:
    """Where the command lives in the REST API; ``{machine}`` and other ``{name}``s fill argument fields."""

    method: str
    path: str
    tags: tuple[str, ...] = ("machines",)


@dataclass(frozen=True)
class Call:
    """One run of a command: who asked, on which machine, with which arguments, over which transport."""

    ctx: Context
    principal: Principal
    machine: str
    args: Any
    via: str


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class Command:
    """A machine command, defined once and served by every transport that lists it."""

    name: str
    permission: Action
    summary: str
    handler: Handler
    args: type[BaseModel] | None = None
    audit: Callable[[Call], str] | None = None
    rest: Rest | None = None
    websocket: bool = True
    moves_machine: bool = False
    changes_settings: bool = False
    locate: Callable[[Context, Any], str] | None = None
    reply: Callable[[Call], dict[str, Any]] | None = None
    reply_model: type[BaseModel] | None = None  # documents the reply when ``reply`` adds fields

    def parse(self, data: dict[str, Any] | None) -> Any:
        """The arguments as the command's model (raises pydantic's ValidationError); None without a model."""
        if self.args is None:
            return None
        return self.args.model_validate(data or {})


@dataclass
class Registry:
    """Every command by name, in the order they were defined."""

    commands: dict[str, Command] = field(default_factory=dict)

    def add(self, command: Command) -> Command:
        if command.name in self.commands:
            raise ValueError(f"command {command.name!r} is defined twice")
        self.commands[command.name] = command
        return command

    def define(self, name: str, permission: Action, summary: str, **options: Any) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add` for a handler."""

        def register(handler: Handler) -> Handler:
            self.add(Command(name, permission, summary, handler, **options))
            return handler

        return register

    def get(self, name: str) -> Command | None:
        return self.commands.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.commands

    def __iter__(self) -> Iterator[Command]:
        return iter(self.commands.values())

    def over(self, transport: str) -> list[Command]:
        """The commands a transport serves."""
        if transport == REST:
            return [c for c in self if c.rest is not None]
        if transport == WEBSOCKET:
            return [c for c in self if c.websocket]
        return list(self)


def _detail(via: str, text: str) -> str:
    return text if via == REST else f"{via}: {text}".strip()


def _machine_for(ctx: Context, command: Command, machine: str | None, args: Any) -> str:
    if command.locate is not None:
        return command.locate(ctx, args)
    if not machine or machine not in ctx.lab.machines:
        raise NotFound(_("no machine {machine}; the lab has: {machines}").format(
            machine=repr(machine), machines=", ".join(ctx.lab.machines)))
    return machine


def _denied(ctx: Context, principal: Principal, command: Command, machine: str | None, args: Any, via: str) -> None:
    from labbridge.server.api.deps import describe

    if machine is None and command.locate is not None:
        try:
            machine = command.locate(ctx, args)
        except LabbridgeError:
            machine = None
    ctx.audit(principal, machine, command.permission.value, "denied", _detail(via, f"role {principal.role}"))
    raise CommandFailed(403, _("your role ({role}) may not {action}; ask someone with the right role").format(
        role=principal.role, action=describe(command.permission)), machine)


async def execute(ctx: Context, principal: Principal, command: Command, machine: str | None, args: Any,
                  via: str = REST) -> dict[str, Any]:
    """Check, run and audit a command; the reply ``{"machine", "action", "result", ...}`` or CommandFailed."""
    if not principal.can(command.permission):
        _denied(ctx, principal, command, machine, args, via)
    try:
        machine = _machine_for(ctx, command, machine, args)
    except NotFound as exc:
        raise CommandFailed(404, str(exc), machine) from None
    call = Call(ctx, principal, machine, args, via)
    detail = ""
    try:
        detail = command.audit(call) if command.audit is not None else ""
        result = await command.handler(call)
    except InterlockError as exc:
        ctx.audit(principal, machine, command.name, "refused", _detail(via, f"{exc.interlock}: {exc} {detail}".strip()))
        raise CommandFailed(409, localize(str(exc)), machine) from None
    except NotFound as exc:
        raise CommandFailed(404, str(exc), machine) from None
    except StorageFull as exc:  # its record could not be kept, so it was not carried out
        ctx.audit(principal, machine, command.name, "storage-full", _detail(via, f"{exc} {detail}".strip()))
        raise CommandFailed(507, str(exc), machine) from None
    except (CommandError, LabbridgeError) as exc:
        ctx.audit(principal, machine, command.name, "failed", _detail(via, f"{exc} {detail}".strip()))
        # A CommandError is already in the caller's language; lower layers' texts are English.
        raise CommandFailed(409, str(exc) if isinstance(exc, CommandError) else localize(str(exc)), machine) from None
    except Exception as exc:
        ctx.audit(principal, machine, command.name, "error", _detail(via, f"{type(exc).__name__}: {exc} {detail}".strip()))
        raise CommandFailed(500, _("{machine}: {command} failed unexpectedly: {error}").format(
            machine=machine, command=command.name, error=exc), machine) from None
    said = result if isinstance(result, str) else ""
    ctx.audit(principal, machine, command.name, "ok", _detail(via, f"{detail} {said}".strip()))
    reply = {"machine": machine, "action": command.name, "result": localize(result) if said else _jsonable(result)}
    if command.reply is not None:
        reply.update(command.reply(call))
    return reply
