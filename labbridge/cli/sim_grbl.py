"""``labbridge sim grbl``: a simulated GRBL 1.1h mill on a pseudo-terminal, until Ctrl-C."""

from __future__ import annotations

import signal
import threading

import typer

from labbridge.cli.common import ConfigOption, fail, load_machine


def register(app: typer.Typer, sim_app: typer.Typer) -> None:
    @sim_app.command("grbl")
    def sim_grbl(
        config: ConfigOption = None,
        machine: str = typer.Option("mill-1", "--machine", "-m", help="GRBL machine id from the config."),
        baud: int = typer.Option(115200, "--baud", help="Serial rate the simulated link is paced at."),
        time_scale: float = typer.Option(1.0, "--time-scale", help="Firmware seconds per real second (motion, "
                                         "dwell, homing); the serial link is never scaled."),
        latency_ms: float = typer.Option(0.0, "--latency-ms", help="Extra delay on each device-to-host delivery, "
                                         "like a USB-serial adapter's latency timer (FTDI: 16)."),
        factory_defaults: bool = typer.Option(False, "--factory-defaults", help="GRBL's stock $ settings instead "
                                              "of settings matching the machine's config."),
        line_ms: float = typer.Option(0.0, "--line-ms", help="Firmware time to parse one line (an AVR needs about "
                                      "2-3 ms); 0 parses instantly, so only the serial link limits streaming."),
        link: str = typer.Option(None, "--link", help="Also make this symlink point at the device."),
    ) -> None:
        """Serve the real GRBL protocol on a pty; prints the device path to open."""
        from labbridge.sim.grbl.port import GrblSimulator

        machine_id, m = load_machine(config, machine)
        if m.controller != "grbl":
            fail(f"{machine_id} is a {m.controller} machine; `labbridge sim grbl` simulates GRBL machines only")
        if baud <= 0 or time_scale <= 0 or latency_ms < 0 or line_ms < 0:
            fail("--baud and --time-scale must be positive, --latency-ms and --line-ms zero or more")
        sim = GrblSimulator(machine_id, m, baud=baud, time_scale=time_scale, latency_ms=latency_ms,
                            factory_defaults=factory_defaults, link=link, line_ms=line_ms)
        try:
            port = sim.start()
        except OSError as exc:
            fail(f"cannot create the simulated serial device: {exc}")
        typer.echo(port, err=False)
        if link:
            typer.echo(f"(device {sim.device})", err=True)
        typer.echo(f"GRBL 1.1h simulator for {machine_id} at {baud} baud; Ctrl-C to stop", err=True)
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            sim.close()
