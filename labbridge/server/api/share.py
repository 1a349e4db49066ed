"""View-only share links: a class watches the machines from their phones without passwords.

An operator or admin makes a link for a lesson; it carries a viewer token that
expires (default 4 hours, at most 7 days) and can be revoked at any time. The
dashboard shows it as a QR code, drawn here (segno) so it works without internet.
A share token sees live machine state only, like any viewer. The token is in the
URL's fragment (``/#share=...``), which browsers never send to a server or in a
Referer.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import segno
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from labbridge.i18n import _
from labbridge.server.api.deps import Context, get_ctx, require
from labbridge.server.auth import Action, Principal, Scope
from labbridge.server.schemas import ShareInfo, ShareLink, TokenRevoked

router = APIRouter(prefix="/api/share", tags=["share links"])

SHARE_PREFIX = "share:"
MAX_HOURS = 7 * 24.0


class NewShare(BaseModel):
    label: str = Field("class", min_length=1, max_length=40, pattern=r"^[\w .-]+$")
    hours: float = Field(4.0, gt=0, le=MAX_HOURS)
    base_url: str | None = Field(None, max_length=200, pattern=r"^https?://[^\s/#?]+/?$",
                                 description="the address students' phones reach (default: this server's LAN address)")


def lan_address() -> str | None:
    """A non-loopback IPv4 address of this computer (what phones on the lab's Wi-Fi reach), if one is known."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return None
    for info in infos:
        address = str(info[4][0])
        if not address.startswith("127."):
            return address
    return None


def base_url(request: Request, ctx: Context, given: str | None) -> str:
    if given:
        return given.rstrip("/")
    scheme = "https" if getattr(ctx.settings, "tls", False) else request.url.scheme
    host = request.url.hostname or "127.0.0.1"
    port = request.url.port
    if host in ("127.0.0.1", "localhost", "::1"):
        host = lan_address() or host
    return f"{scheme}://{host}{f':{port}' if port else ''}"


@router.post("", status_code=201, response_model=ShareLink, summary="Make a view-only share link (QR code included)")
def create_share(body: NewShare, request: Request, principal: Principal = require(Action.SHARE),
                 ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    token, info = ctx.auth.issue(SHARE_PREFIX + body.label, body.hours * 3600, Scope.SHARE, label=body.label)
    url = f"{base_url(request, ctx, body.base_url)}/#share={token}"
    ctx.audit(principal, None, "share.create", "ok", f"{body.label!r} for {body.hours:g} h (token {info['id']})")
    qr = segno.make(url, error="m")
    return {"id": info["id"], "label": body.label, "url": url, "expires_at": info["expires_at"],
            "qr_svg": qr.svg_data_uri(scale=5, border=2),
            "note": "anyone with this link sees the machines' live state until it expires or is revoked"}


@router.get("", response_model=list[ShareInfo], summary="Share links that still work")
def list_shares(_: Principal = require(Action.SHARE), ctx: Context = Depends(get_ctx)) -> list[dict[str, Any]]:
    now = time.time()
    return [{k: t[k] for k in ("id", "label", "created_at", "expires_at", "last_used")}
            for t in ctx.store.list_tokens() if t.get("scope") == Scope.SHARE.value
            and t["revoked_at"] is None and t["expires_at"] > now]


@router.delete("/{token_id}", response_model=TokenRevoked, summary="Revoke a share link (its viewers are disconnected)")
async def revoke_share(token_id: str, principal: Principal = require(Action.SHARE),
                       ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    row = ctx.store.token(token_id)
    if row is None or row.get("scope") != Scope.SHARE.value:
        raise HTTPException(404, _("no share link {token}").format(token=repr(token_id)))
    ctx.store.revoke_token(token_id)
    dropped = await ctx.hub.drop_token(token_id, "share link revoked")
    ctx.audit(principal, None, "share.revoke", "ok", f"{row['label']!r} ({token_id}); {dropped} viewers disconnected")
    return {"revoked": token_id, "websockets_closed": dropped}
