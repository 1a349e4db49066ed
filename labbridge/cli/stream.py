"""``labbridge stream PROGRAM --machine ID [--config PATH] [--port DEVICE] [--check-mode] [--yes] [--home]``.

Runs the safety gate (diagnostics printed as ``labbridge check`` prints them),
connects, asks for confirmation (unless ``--yes``; with no terminal ``--yes`` is
required), streams with a progress bar and prints a summary. GRBL machines go
through the job runner; ``fanuc-*`` machines through the DNC drip-feed. Every run
leaves a job record in the data dir (``$LABBRIDGE_DATA_DIR``, default ./data).

``--home`` runs GRBL's homing cycle first when the controller is not known to be
homed: opening the USB port of an Arduino-based GRBL resets it, and with homing
enabled it then waits, locked, for ``$H`` — without the option a machine that
requires homing refuses the job by its ``homed`` interlock.

Exit codes (a contract): 0 every line acknowledged ok; 1 rejected by the safety
gate, nothing sent; 2 usage or config error; 3 the controller reported an error or
alarm, refused to start (an interlock), or the connection was lost — the message
names the program line and the controller's words.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn

from labbridge.cli.check import format_duration, human_report
from labbridge.cli.common import (
    EXIT_CONTROLLER, EXIT_OK, EXIT_PROGRAM_ERRORS, EXIT_USAGE, ConfigOption, MachineOption, fail, load_machine,
)
from labbridge.cli.language import LangOption, LocalizedCommand
from labbridge.config import Machine
from labbridge.errors import (
    ConfigError, ConnectionLost, GateRejected, InterlockError, LabbridgeError, ProgramReadError,
)
from labbridge.i18n import N_, _, ngettext
from labbridge.safety import Report, check_program

PortOption = Annotated[
    str | None,
    typer.Option("--port", help=N_("Serial device or pyserial URL (socket://host:port); overrides the config's "
                                   "port."), show_default=False),
]


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return "cli"


def _eta_text(seconds: float | None) -> str:
    return _("ETA {duration}").format(duration="—" if seconds is None else format_duration(seconds))


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("lines"),
        TaskProgressColumn(), TextColumn("{task.fields[eta]}"), console=console, transient=False,
    )


def _confirm(machine_id: str, machine: Machine, program: Path, report: Report, port: str | None,
             check_mode: bool, yes: bool, home: bool = False) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        fail(_("no terminal to confirm on: pass --yes to stream without asking"), EXIT_USAGE)
    if check_mode:
        motion = _("in check mode (GRBL parses every line, nothing moves)")
    elif home:
        motion = _("— the machine will move, homing first if it is not homed")
    else:
        motion = _("— the machine will move")
    question = _("Stream {program} ({lines} lines, about {duration}) to {machine} ({name}) on {port} {motion}?").format(
        program=program, lines=report.lines, duration=format_duration(report.estimated_seconds), machine=machine_id,
        name=machine.name, port=port or _("the configured port"), motion=motion)
    if not typer.confirm(question, default=False):
        fail(_("not confirmed; nothing was sent"), EXIT_USAGE)


def _rejected(exc: GateRejected) -> str:
    """Why the gate stopped the stream, in the CLI's language (the job record keeps the runner's words)."""
    report = exc.report
    if not isinstance(report, Report) or report.ok:
        return str(exc)
    return ngettext("{program} is rejected by the safety gate for {machine}: {n} error; nothing was sent",
                    "{program} is rejected by the safety gate for {machine}: {n} errors; nothing was sent",
                    report.error_count).format(program=report.program, machine=report.machine, n=report.error_count)


# ---------------------------------------------------------------------------- GRBL


async def _stream_grbl(machine_id: str, machine: Machine, program: Path, port: str | None,
                       check_mode: bool, console: Console, home: bool = False) -> int:
    from labbridge.drivers.factory import create_driver
    from labbridge.streaming.runner import JobRunner, JobState
    from labbridge.streaming.records import JobStore

    try:
        store = JobStore()
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    driver: Any = create_driver(machine_id, machine, port=port)
    if hasattr(driver, "reconnect"):
        driver.reconnect = False  # a CLI run ends with the link; the job record says what happened
    try:
        try:
            await asyncio.wait_for(driver.connect(), 30.0)
        except asyncio.TimeoutError:
            fail(_("{machine}: no answer from the controller on {port} within 30 s; nothing was sent").format(
                machine=machine_id, port=driver.port), EXIT_CONTROLLER)
        except LabbridgeError as exc:
            fail(_("{error}; nothing was sent").format(error=exc), EXIT_CONTROLLER)
        if home and not check_mode and driver.state.homed is not True:
            console.print(_("{machine}: homing ($H)…").format(machine=machine_id), markup=False)
            try:
                await driver.home()
            except LabbridgeError as exc:
                fail(_("{machine}: homing failed: {error}; nothing was sent").format(machine=machine_id, error=exc),
                     EXIT_CONTROLLER)
        runner = JobRunner(driver, machine_id, machine, store, user=_user())
        loop = asyncio.get_running_loop()
        cancelled = asyncio.Event()

        def on_sigint() -> None:
            if not cancelled.is_set():
                cancelled.set()
                console.print(_("cancelling: feed hold, then reset…"), style="bold", markup=False)
                loop.create_task(runner.cancel())

        with _progress(console) as bar:
            task = bar.add_task(f"{machine_id} {program.name}", total=None, eta="ETA —")

            def update(job: Any) -> None:
                bar.update(task, total=job.lines_total, completed=job.lines_acked, eta=_eta_text(job.eta_seconds))

            try:
                job = await runner.start(program, check_mode=check_mode, on_progress=update)
            except GateRejected as exc:
                bar.stop()
                console.print(human_report(exc.report), markup=False, highlight=False)
                fail(_rejected(exc), EXIT_PROGRAM_ERRORS)
            except InterlockError as exc:
                fail(_("refused by the '{interlock}' interlock: {error}; nothing was sent").format(
                    interlock=exc.interlock, error=exc), EXIT_CONTROLLER)
            except ProgramReadError as exc:
                fail(str(exc), EXIT_USAGE)
            with _sigint(loop, on_sigint):
                job = await runner.wait()
            update(job)
    finally:
        await driver.close()
        store.close()
    took = (job.ended_at or time.time()) - (job.started_at or time.time())
    summary = _("{machine}: {program}: {state}: {acked}/{total} lines acknowledged in {duration} (job {job})").format(
        machine=machine_id, program=job.program_name, state=job.state.value, acked=job.lines_acked,
        total=job.lines_total, duration=format_duration(took), job=job.id)
    if job.state == JobState.COMPLETED:
        typer.echo(summary + (" " + _("in check mode") if check_mode else ""))
        return EXIT_OK
    typer.echo(summary)
    fail(f"{machine_id}: {job.message}", EXIT_CONTROLLER)


class _sigint:
    """Ctrl-C during a job cancels it cleanly (hold, reset) instead of killing the process mid-stream."""

    def __init__(self, loop: asyncio.AbstractEventLoop, handler: Any) -> None:
        self.loop, self.handler, self.installed = loop, handler, False

    def __enter__(self) -> None:
        try:
            self.loop.add_signal_handler(signal.SIGINT, self.handler)
            self.installed = True
        except (NotImplementedError, RuntimeError, ValueError):
            pass

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            self.loop.remove_signal_handler(signal.SIGINT)


# ---------------------------------------------------------------------------- Fanuc-style (DNC)


async def _stream_dnc(machine_id: str, machine: Machine, program: Path, port: str | None, report: Report,
                      console: Console) -> int:
    try:
        from labbridge.streaming import dnc_transfer as dnc_job
    except ImportError:
        fail(_("DNC streaming for {controller} machines is not available in this build; nothing was sent").format(
            controller=machine.controller), EXIT_USAGE)
    from labbridge.streaming.job import Job, JobState, new_job_id
    from labbridge.streaming.records import JobStore

    try:
        store = JobStore()
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    sha = hashlib.sha256(program.read_bytes()).hexdigest()
    job = Job(new_job_id(), machine_id, str(program), program.name, sha, _user(), JobState.RUNNING,
              lines_total=report.lines, estimated_seconds=report.estimated_seconds, started_at=time.time())
    store.create(job)
    store.add_event(job.id, "job_started", transport="dnc", port=port)
    try:
        with _progress(console) as bar:
            task = bar.add_task(f"{machine_id} {program.name}", total=None, eta="DNC")

            def update(p: Any) -> None:
                job.lines_total, job.lines_acked, job.lines_sent = p.lines_total, p.lines_acked, p.lines_acked
                job.last_acked_line = p.line_number
                bar.update(task, total=p.lines_total, completed=p.lines_acked, eta=p.state)

            try:
                await dnc_job.stream_dnc(machine_id, machine, program, port=port, on_progress=update)
            except GateRejected as exc:
                job.state, job.message = JobState.FAILED, str(exc)
                fail(_rejected(exc), EXIT_PROGRAM_ERRORS)
            except (ConfigError, ProgramReadError) as exc:
                job.state, job.message = JobState.FAILED, str(exc)
                fail(str(exc), EXIT_USAGE)
            except LabbridgeError as exc:
                lost = isinstance(exc, ConnectionLost)
                job.state = JobState.INTERRUPTED if lost else JobState.FAILED
                job.error_code = "disconnected" if lost else type(exc).__name__
                job.error_message = job.message = str(exc)
                if job.last_acked_line:
                    fail(_("{machine}: {error} after line {line}").format(
                        machine=machine_id, error=exc, line=job.last_acked_line), EXIT_CONTROLLER)
                fail(f"{machine_id}: {exc}", EXIT_CONTROLLER)
        job.state, job.message = JobState.COMPLETED, f"all {job.lines_acked} blocks read by the control"
    finally:
        job.ended_at = time.time()
        if job.state == JobState.RUNNING:
            job.state, job.message = JobState.INTERRUPTED, "stopped before the transfer ended"
        store.save(job)
        store.add_event(job.id, f"job_{job.state.value}", message=job.message)
        store.close()
    typer.echo(_("{machine}: {program}: completed: {blocks} blocks sent by DNC (job {job})").format(
        machine=machine_id, program=program.name, blocks=job.lines_acked, job=job.id))
    return EXIT_OK


# ---------------------------------------------------------------------------- the command


def register(app: typer.Typer, sim_app: typer.Typer) -> None:
    @app.command("stream", cls=LocalizedCommand, help=N_(
        "Check PROGRAM, then stream it to a machine with progress; exit 0 when every line was accepted."))
    def stream(
        program: Annotated[Path, typer.Argument(help=N_("G-code program file to run."), show_default=False)],
        machine: MachineOption,
        config: ConfigOption = None,
        port: PortOption = None,
        check_mode: Annotated[bool, typer.Option("--check-mode", help=N_(
            "Stream in GRBL's check mode ($C): every line parsed, nothing moves; check mode is left afterwards."))
        ] = False,
        yes: Annotated[bool, typer.Option("--yes", "-y", help=N_("Do not ask for confirmation."))] = False,
        home: Annotated[bool, typer.Option("--home", help=N_(
            "GRBL: run the homing cycle ($H) first if the machine is not homed (the machine moves to its switches)."))
        ] = False,
        lang: LangOption = None,
    ) -> None:
        machine_id, machine_cfg = load_machine(config, machine)
        console = Console(stderr=True)
        grbl = machine_cfg.controller == "grbl"
        if check_mode and not grbl:
            fail(_("--check-mode is GRBL's $C; {machine} is a {controller} machine").format(
                machine=machine_id, controller=machine_cfg.controller), EXIT_USAGE)
        if grbl and port is None and machine_cfg.connection.serial is None:
            fail(_("{machine} has no connection.serial in the config; pass --port DEVICE").format(machine=machine_id),
                 EXIT_USAGE)
        try:
            report = check_program(program, machine_cfg, machine_id=machine_id, program_name=str(program))
        except ProgramReadError as exc:
            fail(str(exc), EXIT_USAGE)
        typer.echo(human_report(report))
        if not report.ok:
            raise typer.Exit(EXIT_PROGRAM_ERRORS)
        device = port or (machine_cfg.connection.serial.port if grbl and machine_cfg.connection.serial else
                          machine_cfg.connection.dnc.port if machine_cfg.connection.dnc else None)
        if home and not grbl:
            fail(_("--home is GRBL's $H; home {machine} ({controller}) at its control").format(
                machine=machine_id, controller=machine_cfg.controller), EXIT_USAGE)
        _confirm(machine_id, machine_cfg, program, report, device, check_mode, yes, home)
        if grbl:
            code = asyncio.run(_stream_grbl(machine_id, machine_cfg, program, port, check_mode, console, home))
        else:
            code = asyncio.run(_stream_dnc(machine_id, machine_cfg, program, port, report, console))
        raise typer.Exit(code)
