"""Sign-in, tokens, users and the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from labbridge.server.api.deps import Context, current_principal, get_ctx, require
from labbridge.server.auth import Action, AuthError, Principal, Role
from labbridge.server.schemas import AuditEntry, Deleted, LoggedOut, Me, StatusMessage, TokenInfo, TokenRevoked, UserInfo

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
    new_password: str = Field(min_length=8, max_length=256)


@router.post("/auth/login", response_model=LoginResponse, summary="Sign in and get a bearer token")
async def login(body: LoginRequest, request: Request, ctx: Context = Depends(get_ctx)) -> LoginResponse:
    client = request.client.host if request.client else "unknown"
    try:
        token, info, user = await run_in_threadpool(ctx.auth.login, body.username, body.password, client)
    except AuthError as exc:
        outcome = "rate-limited" if exc.status == 429 else "failed"
        ctx.audit(body.username, None, "login", outcome, f"from {client}")
        headers = {"Retry-After": str(int(exc.retry_after or 1) + 1)} if exc.retry_after else None
        raise HTTPException(exc.status, str(exc), headers=headers) from None
    ctx.audit(user.username, None, "login", "ok", f"from {client}")
    principal = Principal(user.username, user.role, str(info["id"]))
    return LoginResponse(token=token, token_id=str(info["id"]), username=user.username, role=user.role,
                         permissions=principal.permissions(), expires_at=float(info["expires_at"]))  # type: ignore[arg-type]


@router.post("/auth/logout", response_model=LoggedOut, summary="Revoke the token used for this call")
async def logout(principal: Principal = Depends(current_principal), ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    ctx.store.revoke_token(principal.token_id)
    await ctx.hub.drop_token(principal.token_id, "signed out")
    ctx.audit(principal, None, "logout", "ok")
    return {"revoked": principal.token_id}


@router.get("/auth/me", response_model=Me, summary="Who am I and what may I do")
def me(principal: Principal = Depends(current_principal)) -> dict[str, Any]:
    return {"username": principal.username, "role": principal.role, "token_id": principal.token_id,
            "permissions": principal.permissions()}


@router.post("/auth/password", response_model=StatusMessage, summary="Change my own password")
async def change_password(body: PasswordChange, request: Request, principal: Principal = Depends(current_principal),
                          ctx: Context = Depends(get_ctx)) -> dict[str, str]:
    client = request.client.host if request.client else "unknown"
    try:
        await run_in_threadpool(ctx.auth.login, principal.username, body.old_password, client)
    except AuthError as exc:
        ctx.audit(principal, None, "password.change", "failed", "wrong old password")
        raise HTTPException(403 if exc.status == 401 else exc.status, "the old password is wrong") from None
    await run_in_threadpool(ctx.auth.set_password, principal.username, body.new_password)
    revoked = ctx.store.revoke_user_tokens(principal.username)
    for token_id in revoked:
        await ctx.hub.drop_token(token_id, "password changed")
    ctx.audit(principal, None, "password.change", "ok", f"{len(revoked)} tokens revoked")
    return {"status": "password changed; sign in again"}


@router.get("/tokens", response_model=list[TokenInfo], summary="List tokens (admins see all, others their own)")
def list_tokens(principal: Principal = Depends(current_principal), ctx: Context = Depends(get_ctx)) -> list[dict[str, Any]]:
    return ctx.store.list_tokens(None if principal.can(Action.USERS) else principal.username)


@router.delete("/tokens/{token_id}", response_model=TokenRevoked, summary="Revoke a token (admins any, others their own)")
async def revoke_token(token_id: str, principal: Principal = Depends(current_principal),
                       ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    row = ctx.store.token(token_id)
    if row is None:
        raise HTTPException(404, f"no token {token_id!r}")
    if row["username"] != principal.username and not principal.can(Action.USERS):
        ctx.audit(principal, None, "token.revoke", "denied", token_id)
        raise HTTPException(403, "you may only revoke your own tokens")
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
        ctx.audit(principal, None, "user.create", "failed", str(exc))
        raise HTTPException(409 if "exists" in str(exc) else 422, str(exc)) from None
    ctx.audit(principal, None, "user.create", "ok", f"{user.username} as {user.role}")
    return user.public()


@router.patch("/users/{username}", response_model=UserInfo, summary="Change a user's role, password or disabled flag")
async def change_user(username: str, body: UserChange, principal: Principal = require(Action.USERS),
                      ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    if ctx.store.get_user(username) is None:
        raise HTTPException(404, f"no user {username!r}")
    if username == principal.username and (body.disabled or (body.role and body.role != Role.ADMIN)):
        raise HTTPException(409, "you cannot demote or disable yourself; ask another admin")
    if body.password is not None:
        await run_in_threadpool(ctx.auth.set_password, username, body.password)
    ctx.store.update_user(username, role=body.role.value if body.role else None, disabled=body.disabled)
    if body.password is not None or body.disabled or body.role is not None:
        for token_id in ctx.store.revoke_user_tokens(username):
            await ctx.hub.drop_token(token_id, "account changed")
    changed = ", ".join(k for k, v in body.model_dump().items() if v is not None and k != "password")
    ctx.audit(principal, None, "user.change", "ok", f"{username}: {changed or 'password'}")
    found = ctx.store.get_user(username)
    assert found is not None
    return found[0].public()


@router.delete("/users/{username}", response_model=Deleted, summary="Delete a user and revoke their tokens")
async def delete_user(username: str, principal: Principal = require(Action.USERS),
                      ctx: Context = Depends(get_ctx)) -> dict[str, str]:
    if username == principal.username:
        raise HTTPException(409, "you cannot delete yourself")
    if ctx.store.get_user(username) is None:
        raise HTTPException(404, f"no user {username!r}")
    for token_id in ctx.store.revoke_user_tokens(username):
        await ctx.hub.drop_token(token_id, "account deleted")
    ctx.store.delete_user(username)
    ctx.audit(principal, None, "user.delete", "ok", username)
    return {"deleted": username}


@router.get("/audit", response_model=list[AuditEntry], summary="The audit log, newest first")
def audit_log(limit: int = 200, machine: str | None = None, username: str | None = None, action: str | None = None,
              _: Principal = require(Action.AUDIT), ctx: Context = Depends(get_ctx)) -> list[dict[str, Any]]:
    return ctx.store.audit_log(min(max(limit, 1), 2000), machine=machine, username=username, action=action)
