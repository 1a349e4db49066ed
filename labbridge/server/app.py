"""The web server: REST API, ``/ws`` hub and the offline dashboard in one FastAPI app.

Safe by default: every API route except sign-in needs a token, CORS is closed
unless origins are named, websocket origins are checked, and responses carry a
strict Content-Security-Policy (every dashboard asset is served from here; the
lab is often without internet). ``/docs`` uses a Swagger UI installed from npm by
``make frontend``; without it a plain page lists the endpoints.
"""

from __future__ import annotations

import gc
import html
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labbridge.server import storage as server_storage, validation
from labbridge.server.api import share as api_share
from labbridge.server.limits import BodyLimit

from labbridge.log import get_logger
from labbridge.server.api import auth as api_auth, machines as api_machines, programs as api_programs, queue as api_queue, ws as api_ws
from labbridge.server.api import commands as api_commands
from labbridge.server.api import dry_run as api_dry_run
from labbridge.server.api.deps import Context, ServerSettings, require
from labbridge.server.auth import Action, Auth, Principal
from labbridge.server.hub import Hub
from labbridge.server.lab import Lab
from labbridge.server.schemas import Health, ServerStats
from labbridge.server.store import Store
from labbridge.server.twins import DryRuns

STATIC_DIR = Path(__file__).parent / "static"
SWAGGER_DIR = STATIC_DIR / "node_modules" / "swagger-ui-dist"

log = get_logger()

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'"
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                ]
                if not scope["path"].startswith("/docs"):
                    extra.append((b"content-security-policy", CSP.encode()))
                if scope["path"].startswith("/api"):
                    extra.append((b"cache-control", b"no-store"))
                msg["headers"] = list(msg.get("headers", [])) + extra
            await send(msg)

        await self.app(scope, receive, with_headers)


def build_context(settings: ServerSettings, hasher: Any = None) -> Context:
    """Everything the app serves; ``hasher`` replaces argon2's default cost (tests use a cheap one)."""
    store = Store(settings.data_dir)
    auth = Auth(store, hasher=hasher, idle_timeout=settings.token_idle_timeout)
    admin_password = auth.ensure_admin(reset=settings.reset_admin)
    lab = Lab(settings.config, store, simulators=settings.simulators, data_dir=settings.data_dir,
              sim_options=settings.sim_options, poll_hz=settings.poll_hz)
    hub = Hub(max_rate=settings.ws_max_rate, heartbeat=settings.ws_heartbeat)
    ctx = Context(settings, store, auth, lab, hub, admin_password)
    ctx.dry_runs = DryRuns(lab, store, hub, settings.twins, settings.sim_options)

    def job_finished(machine: str, entry_id: int | None, outcome: str, message: str) -> None:
        hub.broadcast({"type": "job", "machine": machine, "entry": entry_id, "outcome": outcome,
                       "message": message, "time": time.time()}, machine)
        hub.broadcast({"type": "queue", "machine": machine, "time": time.time()})
        store.audit(None, machine, "job.finished", outcome, f"#{entry_id} {message}".strip())

    lab.job_listeners.append(job_finished)
    return ctx


def create_app(settings: ServerSettings, ctx: Context | None = None) -> FastAPI:
    """The whole server; ``ctx`` may be built first (the CLI prints the admin password before serving)."""
    context = ctx or build_context(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for entry in context.store.interrupted_running():
            context.store.update_queue(entry["id"], state="interrupted", finished_at=time.time(),
                                       message="the server stopped while this job ran")
        await context.lab.prepare()
        context.hub.start(context.lab.states())
        server_storage.watch(context)
        await context.lab.start()
        for service in context.services:
            await service.start()
        if settings.freeze_gc:
            # Everything loaded so far lives as long as the server: move it out of the collector's sight so
            # that full collections stay short and do not stall the websocket fan-out (the CLI's choice;
            # a process that embeds the app, like a test run, keeps its collector as it is).
            gc.collect()
            gc.freeze()
        log.info("server started", demo=settings.demo, machines=list(context.lab.machines))
        try:
            yield
        finally:
            for service in reversed(context.services):
                await service.stop()
            await context.hub.stop()
            await context.dry_runs.stop()
            await context.lab.stop()
            context.store.close()

    app = FastAPI(
        title="labbridge",
        summary="Live machine state, checked student programs and role-based control of the lab's CNC machines.",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ctx = context
    for module in (api_auth, api_machines, api_programs, api_queue, api_ws):
        app.include_router(module.router)
    app.include_router(api_share.router)
    server_storage.install(app, context)
    validation.install(app)
    app.include_router(api_queue.jobs_router)
    app.include_router(api_commands.router)
    for service in context.services:
        if getattr(service, "router", None) is not None:
            app.include_router(service.router)
    app.include_router(api_dry_run.router)

    @app.get("/api/health", tags=["server"], response_model=Health, summary="Liveness (no details without a token)")
    def health() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/api/server/stats", tags=["server"], response_model=ServerStats, summary="Websocket clients and how far behind each is")
    def server_stats(_: Principal = require(Action.DIAGNOSTICS)) -> dict[str, Any]:
        return {"hub": context.hub.stats()}

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if (SWAGGER_DIR / "swagger-ui-bundle.js").exists():
            return get_swagger_ui_html(
                openapi_url="/openapi.json", title="labbridge API",
                swagger_js_url="/swagger/swagger-ui-bundle.js", swagger_css_url="/swagger/swagger-ui.css",
                swagger_favicon_url="/favicon.svg",
            )
        return HTMLResponse(_plain_docs(app))

    if SWAGGER_DIR.exists():
        app.mount("/swagger", StaticFiles(directory=SWAGGER_DIR), name="swagger")
    app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="dashboard")

    app.add_middleware(BodyLimit, max_upload=settings.max_upload_bytes)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(SecurityHeaders)
    return app


def _plain_docs(app: FastAPI) -> str:
    """A dependency-free list of endpoints, for when Swagger UI was not installed."""
    schema = app.openapi()
    rows = []
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            rows.append(f"<tr><td>{method.upper()}</td><td><code>{html.escape(path)}</code></td>"
                        f"<td>{html.escape(op.get('summary', ''))}</td></tr>")
    return (
        "<!doctype html><meta charset=utf-8><title>labbridge API</title>"
        "<h1>labbridge API</h1><p>Machine-readable: <a href='/openapi.json'>/openapi.json</a>. "
        "Run <code>make frontend</code> for the interactive Swagger UI.</p>"
        "<table border=1 cellpadding=4>" + "".join(rows) + "</table>"
    )
