"""``labbridge serve`` and ``labbridge demo``: the dashboard and API on uvicorn.

``demo`` is ``serve --demo`` with its data under ./data/demo: every machine gets its
simulator, and the admin password is reset and printed on each start so that a
demo can always be signed into.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from labbridge.cli.common import ConfigOption, fail, load_lab

HostOption = Annotated[str, typer.Option("--host", help="Address to listen on (127.0.0.1: this computer only).")]
PortOption = Annotated[int, typer.Option("--port", help="TCP port (0 picks a free one).", min=0, max=65535)]


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        fail(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port or stop the other server")
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _simulators() -> object:
    from labbridge.sim import start_simulator

    return start_simulator


def run_server(config: Path | None, host: str, port: int, demo: bool, data_dir: Path, max_upload_mb: float,
               cors_origins: list[str], ws_origins: list[str], reset_admin: bool, log_level: str,
               poll_hz: float | None = None, class_retention_days: float = 30.0) -> None:
    """Build the app, print where it is and the one-time admin password, serve until Ctrl-C."""
    import uvicorn

    from labbridge.log import configure_logging
    from labbridge.server.api.deps import ServerSettings
    from labbridge.server.app import build_context, create_app

    lab = load_lab(config)
    configure_logging(level=log_level)
    settings = ServerSettings(
        config=lab, data_dir=data_dir, simulators=_simulators() if demo else None, max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        cors_origins=cors_origins, ws_origins=ws_origins, reset_admin=reset_admin, poll_hz=poll_hz,
        freeze_gc=True, class_retention_days=class_retention_days,
    )
    sock = _bind(host, port)
    try:
        ctx = build_context(settings)
    except OSError as exc:
        fail(f"cannot use data dir {data_dir}: {exc}")
    app = create_app(settings, ctx)
    bound_port = sock.getsockname()[1]
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    url = f"http://{shown_host}:{bound_port}/"
    out = sys.stdout
    out.write(f"labbridge: dashboard at {url}  (API docs at {url}docs)\n")
    out.write(f"labbridge: data in {data_dir.resolve()}; machines: {', '.join(lab.machines)}"
              f"{' (simulated)' if demo else ''}\n")
    if ctx.admin_password is not None:
        out.write(f"labbridge: sign in as 'admin' with the one-time password: {ctx.admin_password}\n")
        out.write("labbridge: (it is shown only now; create users for the lab from the Users page)\n")
    if host in ("0.0.0.0", "::"):
        out.write("labbridge: listening on every network interface; anyone on the network can reach the sign-in page\n")
    out.flush()
    server = uvicorn.Server(uvicorn.Config(
        # State messages are a few hundred bytes: compressing each one for every client costs more CPU
        # (and fan-out latency) than the bandwidth it saves on the lab's network.
        app, log_level="warning", ws_ping_interval=20.0, ws_ping_timeout=20.0, access_log=False,
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=5,
    ))
    server.run(sockets=[sock])


def register(app: typer.Typer, sim_app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        config: ConfigOption = None,
        host: HostOption = "127.0.0.1",
        port: PortOption = 8000,
        demo: Annotated[bool, typer.Option("--demo", help="Back every machine with its simulator.")] = False,
        data_dir: Annotated[Path, typer.Option("--data-dir", help="Where users, programs, jobs and the audit "
                                               "log are kept (SQLite).")] = Path("data"),
        max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", min=0.001)] = 10.0,
        cors_origin: Annotated[list[str], typer.Option("--cors-origin", help="Allow cross-origin API calls "
                                                       "from this origin (repeatable; closed by default).")] = [],
        ws_origin: Annotated[list[str], typer.Option("--ws-origin", help="Also accept websocket connections "
                                                     "from this browser origin (repeatable).")] = [],
        reset_admin: Annotated[bool, typer.Option("--reset-admin", help="Set a new one-time password for "
                                                  "'admin' and revoke its tokens.")] = False,
        log_level: Annotated[str, typer.Option("--log-level")] = "info",
        poll_hz: Annotated[Optional[float], typer.Option("--poll-hz", min=0.5, max=10.0, help="GRBL status "
                                                          "polls per second (driver default if unset).")] = None,
        class_retention_days: Annotated[float, typer.Option(
            "--class-retention-days", min=0.0, envvar="LABBRIDGE_CLASS_RETENTION_DAYS",
            help="Days a class's submissions (students' programs and names) are kept after the class ends.")] = 30.0,
    ) -> None:
        """Serve the dashboard, REST API (docs at /docs) and live websocket on one port."""
        run_server(config, host, port, demo, data_dir, max_upload_mb, list(cors_origin), list(ws_origin),
                   reset_admin, log_level, poll_hz, class_retention_days)

    @app.command("demo")
    def demo_cmd(
        config: ConfigOption = None,
        host: HostOption = "127.0.0.1",
        port: PortOption = 8000,
        data_dir: Annotated[Path, typer.Option("--data-dir")] = Path("data/demo"),
        log_level: Annotated[str, typer.Option("--log-level")] = "warning",
    ) -> None:
        """Run the dashboard on a simulated lab (every machine simulated; no hardware needed)."""
        run_server(config, host, port, True, data_dir, 10.0, [], [], True, log_level, 10.0)
