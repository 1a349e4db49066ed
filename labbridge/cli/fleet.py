"""``labbridge fleet``: the headquarters dashboard, fed by every lab through the MQTT broker.

Its config holds only ``fleet:`` (broker and credentials); ``machines:`` may be empty. Like
``serve`` it prints its URL and, on first start, the one-time password for ``admin``; it starts at
once and keeps trying to reach the broker in the background.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from labbridge.cli.common import ConfigOption, fail
from labbridge.cli.serve import HostOption, PortOption, _bind


def run_fleet(config: Path | None, host: str, port: int, data_dir: Path, log_level: str, reset_admin: bool) -> None:
    import uvicorn

    from labbridge.config import load_hq_config, resolve_config_path
    from labbridge.errors import ConfigError
    from labbridge.fleet.hq.app import HqSettings, build_hq_context, create_hq_app
    from labbridge.log import configure_logging

    try:
        hq = load_hq_config(config)
    except ConfigError as exc:
        fail(str(exc))
    configure_logging(level=log_level)
    settings = HqSettings(config=hq, data_dir=data_dir, base_dir=resolve_config_path(config).resolve().parent,
                          reset_admin=reset_admin)
    sock = _bind(host, port)
    try:
        ctx = build_hq_context(settings)
    except OSError as exc:
        fail(f"cannot use data dir {data_dir}: {exc}")
    app = create_hq_app(settings, ctx)
    bound = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    out = sys.stdout
    out.write(f"labbridge: headquarters dashboard at http://{shown}:{bound}/\n")
    out.write(f"labbridge: data in {data_dir.resolve()}; labs from {hq.fleet.broker} as {ctx.link.client_id}\n")
    if ctx.admin_password is not None:
        out.write(f"labbridge: sign in as 'admin' with the one-time password: {ctx.admin_password}\n")
        out.write("labbridge: (it is shown only now; create users for headquarters from the Users page)\n")
    out.flush()
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, ws_per_message_deflate=False,
                                  timeout_graceful_shutdown=5)).run(sockets=[sock])


def register(app: typer.Typer, sim_app: typer.Typer) -> None:
    @app.command("fleet")
    def fleet(
        config: ConfigOption = None,
        host: HostOption = "127.0.0.1",
        port: PortOption = 8100,
        data_dir: Annotated[Path, typer.Option("--data-dir", help="Where users, labs, events and jobs are kept "
                                               "(SQLite).")] = Path("data/fleet"),
        log_level: Annotated[str, typer.Option("--log-level")] = "info",
        reset_admin: Annotated[bool, typer.Option("--reset-admin", help="Set a new one-time password for "
                                                  "'admin' and revoke its tokens.")] = False,
    ) -> None:
        """Headquarters: every lab's machines, alarms, events and jobs, through the fleet's MQTT broker."""
        run_fleet(config, host, port, data_dir, log_level, reset_admin)
