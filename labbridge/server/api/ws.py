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
Every client message is checked against the token's current validity and role, and the
token is also re-checked on a timer (a revoked or expired token closes a silent socket
too). Browsers must connect from the dashboard's own origin (or one passed with
``--ws-origin``). A client is read at most ``WS_RATE`` messages a second (bursts of
``WS_BURST``); over that it is not read until it is back under, and after
``WS_FLOOD_CLOSE`` seconds over it, closed (1008). Messages are at most 64 KB (the
first, before sign-in, 4 KB); anything unreadable is refused without a traceback.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from labbridge.i18n import _, language, normalize
from labbridge.server.api.deps import Context
from labbridge.server.auth import Action, AuthError, Principal, Scope
from labbridge.server.commands import COMMANDS, WEBSOCKET, Command, CommandFailed, execute
from labbridge.server.hub import _dumps
from labbridge.server.limits import WS_FIRST_MESSAGE_MAX, WS_MESSAGE_MAX, TokenBucket

router = APIRouter()

AUTH_TIMEOUT = 10.0
WS_RATE = 20.0
WS_BURST = 60.0
WS_FLOOD_CLOSE = 30.0


class _Unreadable(Exception):
    """A frame that is not a JSON object of sensible size and depth."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


async def _next_text(websocket: WebSocket, limit: int) -> str:
    """The next text frame (binary frames must be UTF-8); raises WebSocketDisconnect or _Unreadable."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if text is None:
        try:
            text = (message.get("bytes") or b"").decode("utf-8")
        except UnicodeDecodeError:
            raise _Unreadable(1003, "send JSON text frames") from None
    if len(text) > limit:
        raise _Unreadable(1009, f"message too big (over {limit // 1024} KB)")
    return text


def _parse(raw: str) -> Any:
    """JSON, or _Unreadable for malformed or absurdly nested input (json recurses: deep nesting is refused)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise _Unreadable(1003, _("messages are JSON objects with a 'type'")) from None


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


def _peer(websocket: WebSocket) -> str:
    return websocket.client.host if websocket.client else "unknown"


@router.websocket("/ws")
async def ws_endpoint(websocket: WebSocket) -> None:
    ctx: Context = websocket.app.state.ctx
    origin = websocket.headers.get("origin")
    if origin and not origin_allowed(origin, websocket.headers.get("host"), ctx.settings.ws_origins):
        peer = _peer(websocket)
        ctx.audit_trail.repeated("ws.connect", "denied", f"{peer} {origin[:100]}", None,
                                 f"origin {origin[:200]} from {peer}")
        await websocket.close(code=1008)
        return
    await websocket.accept()
    try:
        first = _parse(await asyncio.wait_for(_next_text(websocket, WS_FIRST_MESSAGE_MAX), AUTH_TIMEOUT))
        if not isinstance(first, dict) or first.get("type") != "auth":
            raise AuthError("send {\"type\": \"auth\", \"token\": ...} first")
        token = str(first.get("token") or "")
        principal = ctx.auth.authenticate(token)
        if principal.scope == Scope.PASSWORD.value:
            raise AuthError("choose a new password first (this sign-in used a one-time password)")
    except asyncio.TimeoutError:
        await _refuse(websocket, 4001, "no auth message within 10 s")
        return
    except _Unreadable as exc:
        await _refuse(websocket, exc.code, f"not signed in: {exc}")
        return
    except AuthError as exc:
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
    client.language = normalize(str(first.get("language") or "")) or client.language  # the dashboard's choice
    watcher = asyncio.get_running_loop().create_task(_watch_token(ctx, client, token), name="ws-token-check")
    try:
        with language(client.language):  # command refusals over the socket in the dashboard's language
            await _serve(ctx, websocket, client, token)
    except WebSocketDisconnect:
        pass
    except _Unreadable as exc:
        client.offer_event(_dumps({"type": "error", "message": str(exc)}))
        await asyncio.sleep(0.05)
        await ctx.hub.drop(client, exc.code, str(exc))
    except RuntimeError:
        pass  # the hub closed the socket (revoked token, too slow) while we were reading
    finally:
        watcher.cancel()
        await ctx.hub.drop(client, 1000, "bye")


async def _serve(ctx: Context, websocket: WebSocket, client: Any, token: str) -> None:
    """Read, pace and answer one signed-in client's messages until it leaves."""
    bucket = TokenBucket(WS_RATE, WS_BURST)
    over_since: float | None = None
    while True:
        wait = bucket.take()
        if wait > 0:  # over the rate: leave its messages in its own socket buffers for a while
            now = time.monotonic()
            over_since = over_since or now
            if now - over_since > WS_FLOOD_CLOSE:
                ctx.audit_trail.repeated("ws.flood", "closed", _peer(websocket), client.username,
                                         f"over {WS_RATE:.0f} messages/s for {WS_FLOOD_CLOSE:.0f} s")
                raise _Unreadable(1008, f"too many messages (over {WS_RATE:.0f} a second for a long time)")
            await asyncio.sleep(wait)
        else:
            over_since = None
        raw = await _next_text(websocket, WS_MESSAGE_MAX)
        client.last_seen = time.monotonic()
        if raw == '{"type":"pong"}' or raw == '{"type": "pong"}':
            continue  # heartbeat replies carry no request: no need to look the token up again
        try:
            principal = ctx.auth.authenticate(token)
        except AuthError as exc:
            await _token_gone(ctx, client, str(exc))
            return
        reply = await _handle(ctx, client, principal, raw)
        if reply is not None:
            client.offer_event(_dumps(reply))


async def _token_gone(ctx: Context, client: Any, reason: str) -> None:
    client.offer_event(_dumps({"type": "error", "message": reason}))
    await asyncio.sleep(0.05)
    await ctx.hub.drop(client, 4001, "token no longer valid")


async def _watch_token(ctx: Context, client: Any, token: str) -> None:
    """Re-check the token on a timer: a silent socket is closed when its token expires or is revoked.

    While the socket answers heartbeats its token counts as in use (a dashboard left open on the
    machine must still be able to hold it)."""
    while not client.closed:
        recheck = getattr(ctx.settings, "ws_recheck", 5.0)
        await asyncio.sleep(recheck)
        alive = time.monotonic() - client.last_seen < 2 * ctx.hub.heartbeat + recheck
        try:
            ctx.auth.authenticate(token, touch=alive)
        except AuthError as exc:
            await _token_gone(ctx, client, str(exc))
            return


async def _handle(ctx: Context, client: Any, principal: Principal, raw: str) -> dict[str, Any] | None:
    try:
        msg = _parse(raw)
        kind = msg.get("type")
    except (_Unreadable, AttributeError):
        return {"type": "error", "message": _("messages are JSON objects with a 'type'")}
    request_id = msg.get("id")
    if kind in ("pong", "ping"):
        return {"type": "pong", "t": time.time()} if kind == "ping" else None
    if kind in ("subscribe", "unsubscribe"):
        if not principal.can(Action.VIEW):
            return {"type": "error", "id": request_id, "message": _("your role may not view machines")}
        machines = msg.get("machines")
        if machines == "*" or machines is None:
            machines = list(ctx.lab.machines)
        if not isinstance(machines, list):
            return {"type": "error", "id": request_id, "message": _("machines must be a list of machine ids")}
        if kind == "unsubscribe":
            ctx.hub.unsubscribe(client, [str(m) for m in machines])
            return {"type": "unsubscribed", "id": request_id, "machines": machines}
        unknown = ctx.hub.subscribe(client, [str(m) for m in machines])
        return {"type": "subscribed", "id": request_id, "machines": sorted(client.subscriptions), "unknown": unknown}
    command = COMMANDS.get(str(kind))
    if command is not None and command.websocket:
        return await _command(ctx, principal, command, msg, request_id)
    return {"type": "error", "id": request_id, "message": _("unknown message type {kind}").format(kind=repr(kind))}


async def _command(ctx: Context, principal: Principal, command: Command, msg: dict[str, Any],
                   request_id: Any) -> dict[str, Any]:
    """Run a registry command exactly as its REST route does; the reply is ``result`` or ``error``."""
    machine = msg.get("machine")
    machine = None if machine is None else str(machine)
    args = msg.get("args") or {}
    if not isinstance(args, dict):
        return {"type": "error", "id": request_id, "message": _("args must be a JSON object")}
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
