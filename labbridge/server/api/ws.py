"""The ``/ws`` endpoint: authenticate, subscribe to machines, receive snapshots then changes.

Protocol (JSON text frames):
  client → ``{"type": "auth", "token": "..."}`` first, within 10 s
  server → ``{"type": "hello", "username", "role", "permissions", "machines"}``
  client → ``{"type": "subscribe", "machines": ["mill-1"]}`` / ``unsubscribe``
  server → ``snapshot`` (full state) then ``state`` (changed top-level fields), ``alarm``,
           ``queue``, ``job``, ``ping`` events
  client → ``{"type": "pong"}`` (any frame counts as a heartbeat reply)
  client → ``{"type": <command>, "machine": "mill-1", "args": {...}, "id": 1}`` → ``result``/``error``:
           any command of :mod:`labbridge.server.commands` (``hold``, ``cancel``, ``jog``, ``settings.write``,
           ``job.start`` with ``args: {"entry_id": 3}``...), with the same permission, checks and audit as its
           REST route
Every client message is checked against the token's current validity and role. Browsers
must connect from the dashboard's own origin (or one passed with ``--ws-origin``).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from labbridge.server.api.deps import Context
from labbridge.server.auth import Action, AuthError, Principal
from labbridge.server.commands import COMMANDS, WEBSOCKET, Command, CommandFailed, execute
from labbridge.server.hub import _dumps

router = APIRouter()

AUTH_TIMEOUT = 10.0


def origin_allowed(origin: str, host: str | None, extra: list[str]) -> bool:
    if origin in extra or "*" in extra:
        return True
    parts = urlsplit(origin)
    return bool(host) and parts.netloc.lower() == (host or "").lower()


async def _refuse(websocket: WebSocket, code: int, message: str) -> None:
    try:
        await websocket.send_text(_dumps({"type": "error", "message": message}))
        await websocket.close(code=code, reason=message[:120])
    except Exception:
        pass


@router.websocket("/ws")
async def ws_endpoint(websocket: WebSocket) -> None:
    ctx: Context = websocket.app.state.ctx
    origin = websocket.headers.get("origin")
    if origin and not origin_allowed(origin, websocket.headers.get("host"), ctx.settings.ws_origins):
        ctx.audit(None, None, "ws.connect", "denied", f"origin {origin}")
        await websocket.close(code=1008)
        return
    await websocket.accept()
    try:
        raw = await asyncio.wait_for(websocket.receive_text(), AUTH_TIMEOUT)
        first = json.loads(raw)
        if not isinstance(first, dict) or first.get("type") != "auth":
            raise AuthError("send {\"type\": \"auth\", \"token\": ...} first")
        token = str(first.get("token") or "")
        principal = ctx.auth.authenticate(token)
    except asyncio.TimeoutError:
        await _refuse(websocket, 4001, "no auth message within 10 s")
        return
    except (AuthError, ValueError) as exc:
        await _refuse(websocket, 4001, f"not signed in: {exc}")
        return
    except WebSocketDisconnect:
        return
    await websocket.send_text(_dumps({
        "type": "hello", "username": principal.username, "role": principal.role,
        "permissions": principal.permissions(), "machines": list(ctx.lab.machines),
    }))

    async def close(code: int, reason: str) -> None:
        await websocket.close(code=code, reason=reason)

    client = ctx.hub.connect(websocket.send_text, close, principal.username, principal.role, principal.token_id)
    try:
        while True:
            raw = await websocket.receive_text()
            client.last_seen = time.monotonic()
            if raw == '{"type":"pong"}' or raw == '{"type": "pong"}':
                continue  # heartbeat replies carry no request: no need to look the token up again
            try:
                principal = ctx.auth.authenticate(token)
            except AuthError as exc:
                client.offer_event(_dumps({"type": "error", "message": str(exc)}))
                await asyncio.sleep(0.05)
                await ctx.hub.drop(client, 4001, "token no longer valid")
                return
            reply = await _handle(ctx, client, principal, raw)
            if reply is not None:
                client.offer_event(_dumps(reply))
    except WebSocketDisconnect:
        pass
    except RuntimeError:
        pass  # the hub closed the socket (revoked token, too slow) while we were reading
    finally:
        await ctx.hub.drop(client, 1000, "bye")


async def _handle(ctx: Context, client: Any, principal: Principal, raw: str) -> dict[str, Any] | None:
    try:
        msg = json.loads(raw)
        kind = msg.get("type")
    except (ValueError, AttributeError):
        return {"type": "error", "message": "messages are JSON objects with a 'type'"}
    request_id = msg.get("id")
    if kind in ("pong", "ping"):
        return {"type": "pong", "t": time.time()} if kind == "ping" else None
    if kind in ("subscribe", "unsubscribe"):
        if not principal.can(Action.VIEW):
            return {"type": "error", "id": request_id, "message": "your role may not view machines"}
        machines = msg.get("machines")
        if machines == "*" or machines is None:
            machines = list(ctx.lab.machines)
        if not isinstance(machines, list):
            return {"type": "error", "id": request_id, "message": "machines must be a list of machine ids"}
        if kind == "unsubscribe":
            ctx.hub.unsubscribe(client, [str(m) for m in machines])
            return {"type": "unsubscribed", "id": request_id, "machines": machines}
        unknown = ctx.hub.subscribe(client, [str(m) for m in machines])
        return {"type": "subscribed", "id": request_id, "machines": sorted(client.subscriptions), "unknown": unknown}
    command = COMMANDS.get(str(kind))
    if command is not None and command.websocket:
        return await _command(ctx, principal, command, msg, request_id)
    return {"type": "error", "id": request_id, "message": f"unknown message type {kind!r}"}


async def _command(ctx: Context, principal: Principal, command: Command, msg: dict[str, Any],
                   request_id: Any) -> dict[str, Any]:
    """Run a registry command exactly as its REST route does; the reply is ``result`` or ``error``."""
    machine = msg.get("machine")
    machine = None if machine is None else str(machine)
    args = msg.get("args") or {}
    if not isinstance(args, dict):
        return {"type": "error", "id": request_id, "message": "args must be a JSON object"}
    try:
        parsed = command.parse(args)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return {"type": "error", "id": request_id, "machine": machine, "message": f"{command.name}: {problems}"}
    try:
        reply = await execute(ctx, principal, command, machine, parsed, WEBSOCKET)
    except CommandFailed as exc:
        return {"type": "error", "id": request_id, "machine": exc.machine, "message": exc.message,
                "status": exc.status}
    return {"type": "result", "id": request_id, **reply}
