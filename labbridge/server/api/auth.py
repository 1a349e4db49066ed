"""Sign-in, tokens, users and the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from labbridge.i18n import _
from labbridge.server.api.deps import Context, client_address, current_principal, get_ctx, require
from labbridge.server.auth import Action, AuthError, Principal, Role, Scope, UserExists
from labbridge.server.schemas import AuditEntry, Deleted, LoggedOut, Me, StatusMessage, TokenInfo, TokenRevoked, UserInfo
from labbridge.server.throttle import DEVICE_COOKIE

router = APIRouter(prefix="/api", tags=["auth & users"])


class LoginRequest(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=256)


class LoginResponse(BaseModel):
    token: str
    token_id: str
    username: str
    role: str
    permissions: list[str]
    expires_at: float
    must_change_password: bool = Field(False, description="this token may only POST /api/auth/password")


class NewUser(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=256)
    role: Role


class UserChange(BaseModel):
    role: Role | None = None
    password: str | None = Field(None, min_length=8, max_length=256)
    disabled: bool | None = None


class PasswordChange(BaseModel):
    old_password: str = Field(max_length=256)
    new_password: str = Field(max_length=256)


def login_failed(ctx: Context, username: str, client: str, outcome: str) -> None:
    """Failed sign-ins are one audit row per client and minute, with a count and the names tried."""
    ctx.audit_trail.repeated("login", outcome, client, username, f"from {client}")


@router.post("/auth/login", response_model=LoginResponse, summary="Sign in and get a bearer token")
async def login(body: LoginRequest, request: Request, response: Response,
                ctx: Context = Depends(get_ctx)) -> LoginResponse:
    address = client_address(request, ctx)
    device = ctx.devices.client_id(request.cookies.get(DEVICE_COOKIE), body.username)
    try:
        token, info, user = await run_in_threadpool(ctx.auth.login, body.username, body.password,
                                                    device or address)
    except AuthError as exc:
        login_failed(ctx, body.username, address, "rate-limited" if exc.status == 429 else "failed")
        headers = {"Retry-After": str(int(exc.retry_after or 1) + 1)} if exc.retry_after else None
        raise HTTPException(exc.status, str(exc), headers=headers) from None
    must_change = info.get("scope") == Scope.PASSWORD.value
    ctx.audit(user.username, None, "login", "ok",
              f"from {address}{' (one-time password: must choose a new one)' if must_change else ''}")
    if device is None:
        response.set_cookie(DEVICE_COOKIE, ctx.devices.issue(user.username), max_age=180 * 24 * 3600,
                            httponly=True, samesite="strict", secure=getattr(ctx.settings, "tls", False), path="/api/auth")
    principal = Principal(user.username, user.role, str(info["id"]), str(info.get("scope", "full")))
    return LoginResponse(token=token, token_id=str(info["id"]), username=user.username, role=user.role,
                         permissions=principal.permissions(), expires_at=float(info["expires_at"]),  # type: ignore[arg-type]
                         must_change_password=must_change)


@router.post("/auth/logout", response_model=LoggedOut, summary="Revoke the token used for this call")
async def logout(principal: Principal = Depends(current_principal), ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    ctx.store.revoke_token(principal.token_id)
    await ctx.hub.drop_token(principal.token_id, "signed out")
    ctx.audit(principal, None, "logout", "ok")
    return {"revoked": principal.token_id}


@router.get("/auth/me", response_model=Me, summary="Who am I and what may I do")
def me(principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    return {"username": principal.username, "role": principal.role, "token_id": principal.token_id,
            "permissions": principal.permissions(), "scope": principal.scope}


@router.post("/auth/password", response_model=StatusMessage,
             summary="Change my own password (the only call a one-time password allows)")
async def change_password(body: PasswordChange, request: Request, principal: Principal = Depends(current_principal),
                          ctx: Context = Depends(get_ctx)) -> dict[str, str]:
    if principal.scope == Scope.SHARE.value:
        raise HTTPException(403, _("a share link has no password"))
    address = client_address(request, ctx)
    try:
        await run_in_threadpool(ctx.auth.verify, principal.username, body.old_password, address)
    except AuthError as exc:
        ctx.audit(principal, None, "password.change", "failed", "wrong old password")
        raise HTTPException(403 if exc.status == 401 else exc.status, _("the old password is wrong")) from None
    try:
        await run_in_threadpool(ctx.auth.set_password, principal.username, body.new_password)
    except ValueError as exc:
        ctx.audit(principal, None, "password.change", "refused", str(exc))
        raise HTTPException(422, str(exc)) from None
    revoked = ctx.store.revoke_user_tokens(principal.username)
    for token_id in revoked:
        await ctx.hub.drop_token(token_id, "password changed")
    ctx.audit(principal, None, "password.change", "ok", f"{len(revoked)} tokens revoked")
    return {"status": _("password changed; sign in again")}


@router.get("/tokens", response_model=list[TokenInfo], summary="List tokens (admins see all, others their own)")
def list_tokens(principal: Principal = Depends(current_principal), ctx: Context = Depends(get_ctx)) -> list[dict[str, Any]]:
    return ctx.store.list_tokens(None if principal.can(Action.USERS) else principal.username)


@router.delete("/tokens/{token_id}", response_model=TokenRevoked, summary="Revoke a token (admins any, others their own)")
async def revoke_token(token_id: str, principal: Principal = Depends(current_principal),
                       ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    row = ctx.store.token(token_id)
    if row is None:
        raise HTTPException(404, _("no token {token}").format(token=repr(token_id)))
    if row["username"] != principal.username and not principal.can(Action.USERS):
        ctx.audit(principal, None, "token.revoke", "denied", token_id)
        raise HTTPException(403, _("you may only revoke your own tokens"))
    ctx.store.revoke_token(token_id)
    dropped = await ctx.hub.drop_token(token_id)
    ctx.audit(principal, None, "token.revoke", "ok", f"{token_id} of {row['username']}")
    return {"revoked": token_id, "websockets_closed": dropped}


@router.get("/users", response_model=list[UserInfo], summary="List users")
def list_users(_: Principal = require(Action.USERS), ctx: Context = Depends(get_ctx)) -> list[dict[str, Any]]:
    return [u.public() for u in ctx.store.list_users()]


@router.post("/users", status_code=201, response_model=UserInfo, summary="Create a user")
async def create_user(body: NewUser, principal: Principal = require(Action.USERS),
                      ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    try:
        user = await run_in_threadpool(ctx.auth.create_user, body.username, body.password, body.role.value)
    except ValueError as exc:
        ctx.audit(principal, None, "user.create", "refused", f"{body.username}: {exc}")
        raise HTTPException(409 if isinstance(exc, UserExists) else 422, str(exc)) from None
    ctx.audit(principal, None, "user.create", "ok", f"{user.username} as {user.role}")
    return user.public()


@router.patch("/users/{username}", response_model=UserInfo, summary="Change a user's role, password or disabled flag")
async def change_user(username: str, body: UserChange, principal: Principal = require(Action.USERS),
                      ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    found = ctx.store.get_user(username)
    if found is None:
        raise HTTPException(404, _("no user {name}").format(name=repr(username)))
    if username == principal.username and (body.disabled or (body.role and body.role != Role.ADMIN)):
        ctx.audit(principal, None, "user.change", "refused", f"{username}: may not demote or disable oneself")
        raise HTTPException(409, _("you cannot demote or disable yourself; ask another admin"))
    if body.password is not None:
        try:
            await run_in_threadpool(ctx.auth.set_password, username, body.password)
        except ValueError as exc:
            ctx.audit(principal, None, "user.change", "refused", f"{username}: {exc}")
            raise HTTPException(422, str(exc)) from None
    ctx.store.update_user(username, role=body.role.value if body.role else None, disabled=body.disabled)
    if body.password is not None or body.disabled or body.role is not None:
        for token_id in ctx.store.revoke_user_tokens(username):
            await ctx.hub.drop_token(token_id, "account changed")
    changes = []
    if body.role is not None:
        changes.append(f"role {found[0].role} -> {body.role.value}")
    if body.disabled is not None:
        changes.append("disabled" if body.disabled else "enabled")
    if body.password is not None:
        changes.append("password set")
    ctx.audit(principal, None, "user.change", "ok", f"{username}: {', '.join(changes) or 'nothing'}")
    found = ctx.store.get_user(username)
    assert found is not None
    return found[0].public()


@router.delete("/users/{username}", response_model=Deleted, summary="Delete a user and revoke their tokens")
async def delete_user(username: str, principal: Principal = require(Action.USERS),
                      ctx: Context = Depends(get_ctx)) -> dict[str, str]:
    if username == principal.username:
        ctx.audit(principal, None, "user.delete", "refused", f"{username}: may not delete oneself")
        raise HTTPException(409, _("you cannot delete yourself"))
    if ctx.store.get_user(username) is None:
        raise HTTPException(404, _("no user {name}").format(name=repr(username)))
    for token_id in ctx.store.revoke_user_tokens(username):
        await ctx.hub.drop_token(token_id, "account deleted")
    ctx.store.delete_user(username)
    ctx.audit(principal, None, "user.delete", "ok", username)
    return {"deleted": username}


@router.get("/audit", response_model=list[AuditEntry], summary="The audit log, newest first")
def audit_log(limit: int = 200, machine: str | None = None, username: str | None = None, action: str | None = None,
              _: Principal = require(Action.AUDIT), ctx: Context = Depends(get_ctx)) -> list[dict[str, Any]]:
    return ctx.store.audit_log(min(max(limit, 1), 2000), machine=machine, username=username, action=action)
