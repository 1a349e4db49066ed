"""The API answers in the caller's language: ``Accept-Language`` picks it for each request.

Only human text changes (error ``detail``s, the gate's diagnostic ``message``s);
JSON keys, codes and status codes never do. The chosen language is named in the
response's ``Content-Language`` header. Users' own choice in the dashboard is
kept per user (``/api/preferences``) and sent by the dashboard as its
``Accept-Language``.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labbridge.i18n import DEFAULT, LANGUAGES, _, from_accept_language, language
from labbridge.server.api.class_schemas import Preferences as PreferencesReply
from labbridge.server.api.deps import Context, current_principal, get_ctx
from labbridge.server.auth import Principal

PREFERENCES_SCHEMA = """
CREATE TABLE IF NOT EXISTS web_user_preferences (
    username TEXT PRIMARY KEY,
    language TEXT,
    updated_at REAL NOT NULL
);
"""


class LanguageMiddleware:
    """Set the request's language from ``Accept-Language`` (English when none is supported)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"accept-language", b"").decode("latin-1")
        lang = from_accept_language(header) or DEFAULT

        async def with_language(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                msg["headers"] = [*msg.get("headers", []), (b"content-language", lang.encode())]
            await send(msg)

        with language(lang):
            await self.app(scope, receive, with_language if scope["type"] == "http" else send)


router = APIRouter(prefix="/api/preferences", tags=["auth & users"])


class Preferences(BaseModel):
    language: str | None = None


def install(app: FastAPI, ctx: Context) -> None:
    """Serve ``/api/preferences`` (its table lives in the server's database)."""
    ctx.store.ensure_tables(PREFERENCES_SCHEMA)
    app.include_router(router)


@router.get("", response_model=PreferencesReply,
            summary="My preferences (the dashboard's language; null: follow the browser)")
def get_preferences(principal: Principal = Depends(current_principal),
                    ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    row = ctx.store.row("SELECT language FROM web_user_preferences WHERE username=?", (principal.username,))
    return {"language": row["language"] if row else None, "languages": list(LANGUAGES)}


@router.put("", response_model=PreferencesReply,
            summary="Remember my language for the dashboard (null: follow the browser)")
def put_preferences(body: Preferences, principal: Principal = Depends(current_principal),
                    ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    if body.language is not None and body.language not in LANGUAGES:
        raise HTTPException(422, _("unknown language {value}; choose one of {choices}").format(
            value=body.language[:20], choices=", ".join(LANGUAGES)))
    ctx.store.execute(
        "INSERT INTO web_user_preferences(username, language, updated_at) VALUES (?,?,?) "
        "ON CONFLICT(username) DO UPDATE SET language=excluded.language, updated_at=excluded.updated_at",
        (principal.username, body.language, time.time()))
    return {"language": body.language, "languages": list(LANGUAGES)}
