"""``labbridge serve`` and ``labbridge demo``: the dashboard and API on uvicorn.

``demo`` is ``serve --demo`` with its data under ./data/demo: every machine gets its
simulator, and the admin password is reset and printed on each start so that a
demo can always be signed into.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from labbridge.cli.common import ConfigOption, fail, load_lab
from labbridge.config import DATA_DIR_ENV, DEFAULT_DATA_DIR

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
               poll_hz: float | None = None, exposure: Exposure | None = None) -> None:
    """Build the app, print where it is and the one-time admin password, serve until Ctrl-C."""
    import uvicorn

    from labbridge.log import configure_logging
    from labbridge.server.api.deps import ServerSettings
    from labbridge.server.app import build_context, create_app
    from labbridge.server.http_guard import GuardLimits, fd_headroom, guarded_protocol
    from labbridge.server.limits import WS_MESSAGE_MAX

    exposure = exposure or Exposure()
    lab = load_lab(config)
    configure_logging(level=log_level)
    cert = _certificate(exposure, data_dir, host)
    settings = ServerSettings(
        config=lab, data_dir=data_dir, simulators=_simulators() if demo else None, max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        cors_origins=cors_origins, ws_origins=ws_origins, reset_admin=reset_admin, poll_hz=poll_hz,
        freeze_gc=True, twins=_simulators(),  # dry runs rehearse on a simulator in every mode; machines stay real
        trusted_proxies=list(exposure.trusted_proxies), tls=cert is not None,
        token_idle_timeout=exposure.idle_minutes * 60 if exposure.idle_minutes else None,
    )
    sock = _bind(host, port)
    try:
        ctx = build_context(settings)
    except OSError as exc:
        fail(f"cannot use data dir {data_dir}: {exc}")
    fleet = _attach_fleet(ctx, config)
    app = create_app(settings, ctx)
    bound_port = sock.getsockname()[1]
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    url = f"{'https' if cert else 'http'}://{shown_host}:{bound_port}/"
    out = sys.stdout
    out.write(f"labbridge: dashboard at {url}  (API docs at {url}docs)\n")
    if cert is not None:
        made = "made now, kept in" if cert.created else "from"
        out.write(f"labbridge: TLS certificate {made} {cert.certfile}; SHA-256 fingerprint {cert.fingerprint}\n")
    out.write(f"labbridge: data in {data_dir.resolve()}; machines: {', '.join(lab.machines)}"
              f"{' (simulated)' if demo else ''}\n")
    if ctx.admin_password is not None:
        out.write(f"labbridge: sign in as 'admin' with the one-time password: {ctx.admin_password}\n")
        out.write("labbridge: (it is shown only now and works once: you choose a new password at that sign-in)\n")
    if fleet is not None:
        out.write(f"labbridge: fleet link to {fleet.cfg.broker} as lab {fleet.identity.id!r} (retries in the "
                  "background; the dashboard shows its state)\n")
    if host in ("0.0.0.0", "::"):
        out.write("labbridge: listening on every network interface; anyone on the network can reach the sign-in page\n")
        if cert is None:
            out.write("labbridge: without --tls, passwords and tokens cross the network in clear text\n")
    out.flush()
    protocol, _guard = guarded_protocol(GuardLimits(
        head_timeout=exposure.read_timeout, body_idle=exposure.read_timeout,
        max_connections=fd_headroom(exposure.max_connections)))
    server = uvicorn.Server(uvicorn.Config(
        # State messages are a few hundred bytes: compressing each one for every client costs more CPU
        # (and fan-out latency) than the bandwidth it saves on the lab's network.
        app, log_level="warning", ws_ping_interval=20.0, ws_ping_timeout=20.0, access_log=False,
        ws_per_message_deflate=False, ws_max_size=WS_MESSAGE_MAX, ws_max_queue=16,
        timeout_graceful_shutdown=5, http=protocol,
        # X-Forwarded-For is believed only from proxies named with --trusted-proxy (uvicorn trusts 127.0.0.1
        # by default, which would let anyone on this computer pick the address sign-in throttling sees).
        proxy_headers=bool(exposure.trusted_proxies), forwarded_allow_ips=list(exposure.trusted_proxies) or None,
        ssl_certfile=str(cert.certfile) if cert else None, ssl_keyfile=str(cert.keyfile) if cert else None,
    ))
    server.run(sockets=[sock])


def _attach_fleet(ctx: Any, config: Path | None) -> Any:
    """The fleet link when the config has ``fleet:`` (passwords files are relative to the config)."""
    from labbridge.config import resolve_config_path
    from labbridge.fleet.service import attach

    return attach(ctx, base_dir=resolve_config_path(config).resolve().parent)


@dataclass(frozen=True)
class Exposure:
    """How the server meets the network: TLS, proxies, connection and idle limits."""

    tls: bool = False
    certfile: Path | None = None
    keyfile: Path | None = None
    trusted_proxies: tuple[str, ...] = ()
    max_connections: int = 1000
    idle_minutes: float | None = None
    read_timeout: float = 10.0


def _certificate(exposure: Exposure, data_dir: Path, host: str) -> Any:
    from labbridge.errors import ConfigError
    from labbridge.server.store import private_dir
    from labbridge.server.tls import ensure_certificate, given_certificate

    if (exposure.certfile is None) != (exposure.keyfile is None):
        fail("--certfile and --keyfile go together; give both (or --tls for a local certificate)")
    try:
        if exposure.certfile is not None and exposure.keyfile is not None:
            return given_certificate(exposure.certfile, exposure.keyfile)
        if exposure.tls:
            private_dir(data_dir)
            return ensure_certificate(data_dir, [host] if host not in ("0.0.0.0", "::", "") else [])
    except ConfigError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot keep the TLS certificate in {data_dir}: {exc.strerror or exc}")
    return None


def register(app: typer.Typer, sim_app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        config: ConfigOption = None,
        host: HostOption = "127.0.0.1",
        port: PortOption = 8000,
        demo: Annotated[bool, typer.Option("--demo", help="Back every machine with its simulator.")] = False,
        data_dir: Annotated[Path, typer.Option("--data-dir", envvar=DATA_DIR_ENV, help="Where users, programs, "
                                               "jobs and the audit log are kept (SQLite); labbridge stream records "
                                               "its jobs in the same place.")] = DEFAULT_DATA_DIR,
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
        tls: Annotated[bool, typer.Option("--tls", help="Serve https with a local certificate made on first "
                                          "start (kept in the data dir; its fingerprint is printed).")] = False,
        certfile: Annotated[Optional[Path], typer.Option("--certfile", help="Serve https with this PEM "
                                                         "certificate (with --keyfile).")] = None,
        keyfile: Annotated[Optional[Path], typer.Option("--keyfile", help="The PEM private key of --certfile.")] = None,
        trusted_proxy: Annotated[list[str], typer.Option("--trusted-proxy", help="Believe X-Forwarded-For from "
                                                         "this proxy address (repeatable; none by default).")] = [],
        max_connections: Annotated[int, typer.Option("--max-connections", min=16, help="Open connections at "
                                                     "most (half-open ones are closed first when full).")] = 1000,
        idle_minutes: Annotated[Optional[float], typer.Option("--idle-minutes", min=1, help="Sign out tokens "
                                                              "unused this long (default 120).")] = None,
        read_timeout: Annotated[float, typer.Option("--read-timeout", min=0.5, max=300, help="Seconds a client "
                                                    "may take to send a request head, or pause in a body.")] = 10.0,
    ) -> None:
        """Serve the dashboard, REST API (docs at /docs) and live websocket on one port."""
        run_server(config, host, port, demo, data_dir, max_upload_mb, list(cors_origin), list(ws_origin),
                   reset_admin, log_level, poll_hz,
                   Exposure(tls, certfile, keyfile, tuple(trusted_proxy), max_connections, idle_minutes, read_timeout))

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
