"""``labbridge fleet``: headquarters' web app, built from the lab server's own pieces.

The same users, roles, tokens, sign-in, audit log and websocket as ``serve`` (the server's store,
auth and routers, in headquarters' own data folder), plus the fleet API and a page listing every
lab. Headquarters runs no machines itself: its websocket carries fleet messages only, and a hold or
cancel sent to it finds no machine.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from labbridge import __version__
from labbridge.config import HqConfig
from labbridge.fleet.hq.api import build_router
from labbridge.fleet.hq.fleet import Fleet, FleetHub
from labbridge.fleet.hq.link import HqLink
from labbridge.fleet.hq.store import FleetStore
from labbridge.log import get_logger
from labbridge.server.api import auth as api_auth, ws as api_ws
from labbridge.server.api.deps import Context
from labbridge.server.app import STATIC_DIR, SecurityHeaders
from labbridge.server.auth import Auth
from labbridge.server.store import Store

HQ_STATIC = Path(__file__).parent / "static"
log = get_logger()


@dataclass
class HqSettings:
    """How ``labbridge fleet`` was started."""

    config: HqConfig
    data_dir: Path
    base_dir: Path | None = None
    ws_origins: list[str] = field(default_factory=list)
    reset_admin: bool = False
    request_timeout: float = 20.0


class NoMachines:
    """Headquarters' stand-in for the lab: no machines, so the shared websocket offers none to hold."""

    machines: dict[str, Any] = {}


@dataclass
class HqContext(Context):
    fleet: Fleet = field(default=None)  # type: ignore[assignment]
    fleet_store: FleetStore = field(default=None)  # type: ignore[assignment]
    link: HqLink = field(default=None)  # type: ignore[assignment]


def build_hq_context(settings: HqSettings) -> HqContext:
    store = Store(settings.data_dir)
    auth = Auth(store)
    admin_password = auth.ensure_admin(reset=settings.reset_admin)
    hub = FleetHub(max_rate=10.0)
    fleet_store = FleetStore(settings.data_dir)
    fleet = Fleet(fleet_store, hub)
    link = HqLink(settings.config.fleet, fleet, settings.base_dir)
    return HqContext(settings, store, auth, NoMachines(), hub, admin_password,  # type: ignore[arg-type]
                     fleet=fleet, fleet_store=fleet_store, link=link)


def create_hq_app(settings: HqSettings, ctx: HqContext | None = None) -> FastAPI:
    context = ctx or build_hq_context(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context.hub.start({})
        await context.link.start()
        flusher = asyncio.get_running_loop().create_task(context.fleet.flush_forever(), name="fleet-flush")
        log.info("headquarters started", labs=len(context.fleet.labs), broker=settings.config.fleet.broker)
        try:
            yield
        finally:
            flusher.cancel()
            with contextlib.suppress(BaseException):
                await flusher
            await context.fleet.flush()
            await context.link.stop()
            await context.hub.stop()
            context.fleet_store.close()
            context.store.close()

    app = FastAPI(title="labbridge headquarters", version=__version__, docs_url=None, redoc_url=None,
                  summary="Every mobile lab's machines, events and jobs, through the fleet broker.", lifespan=lifespan)
    app.state.ctx = context
    app.include_router(api_auth.router)
    app.include_router(api_ws.router)
    app.include_router(build_router(context))

    @app.get("/api/health", tags=["server"], summary="Liveness")
    def health() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/style.css", include_in_schema=False)
    def style() -> FileResponse:
        return FileResponse(STATIC_DIR / "style.css")

    @app.get("/favicon.svg", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC_DIR / "favicon.svg")

    app.mount("/", StaticFiles(directory=HQ_STATIC, html=True), name="headquarters")
    app.add_middleware(SecurityHeaders)
    return app
