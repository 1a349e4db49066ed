"""REST routes for the command registry: one route per command that names a REST path, built from its definition.

The route takes the command's path parameters and, for the other argument fields, a JSON body; it
authenticates the caller and hands everything to :func:`labbridge.server.commands.execute`, which decides
(role, machine, outcome, audit) exactly as it does for the websocket.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError, create_model

from labbridge.server.api.deps import Context, current_principal, get_ctx
from labbridge.server.auth import Principal
from labbridge.server.commands import COMMANDS, REST, Command, CommandFailed, Registry, execute
from labbridge.server.schemas import CommandReply, documented

_PATH_PARAM = re.compile(r"\{(\w+)\}")


def _body_model(command: Command, path_params: list[str]) -> type[BaseModel] | None:
    """The argument fields that are not in the path, as the request body (None when nothing is left)."""
    if command.args is None:
        return None
    fields = {n: (f.annotation, f) for n, f in command.args.model_fields.items() if n not in path_params}
    if not fields:
        return None
    if len(fields) == len(command.args.model_fields):
        return command.args
    return create_model(f"{command.args.__name__}Body", **fields)  # type: ignore[call-overload, no-any-return]


def _path_type(command: Command, name: str) -> Any:
    if command.args is not None and name in command.args.model_fields:
        return command.args.model_fields[name].annotation
    return str


def _endpoint(command: Command) -> Any:
    assert command.rest is not None
    path_params = _PATH_PARAM.findall(command.rest.path)
    body_model = _body_model(command, path_params)

    async def endpoint(principal: Principal, ctx: Context, body: BaseModel | None = None,
                       **path: Any) -> dict[str, Any]:
        machine = path.pop("machine", None)
        data = {**(body.model_dump() if body is not None else {}), **path}
        try:
            args = command.parse(data)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None
        try:
            return await execute(ctx, principal, command, machine, args, REST)
        except CommandFailed as exc:
            raise HTTPException(exc.status, exc.message) from None

    params = [
        inspect.Parameter("principal", inspect.Parameter.KEYWORD_ONLY, annotation=Principal,
                          default=Depends(current_principal)),
        inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context, default=Depends(get_ctx)),
    ]
    params += [inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY, annotation=_path_type(command, p))
               for p in path_params]
    if body_model is not None:
        params.append(inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=body_model))
    endpoint.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    endpoint.__name__ = command.name.replace(".", "_")
    endpoint.__doc__ = command.summary
    return endpoint


def build_router(registry: Registry) -> APIRouter:
    """One route per command with a REST path."""
    router = APIRouter()
    for command in registry.over(REST):
        assert command.rest is not None
        router.add_api_route(command.rest.path, _endpoint(command), methods=[command.rest.method],
                             summary=command.summary, tags=list(command.rest.tags), name=command.name,
                             **documented(command.reply_model or CommandReply))
    return router


router = build_router(COMMANDS)

