"""``labbridge stream PROGRAM --machine ID [--config PATH] [--port DEVICE] [--check-mode] [--yes] [--home]
[--from-line N] [--max-size SIZE] [--pipe-timeout S]``.

Runs the safety gate (diagnostics printed as ``labbridge check`` prints them),
connects, asks for confirmation (unless ``--yes``; with no terminal ``--yes`` is
required), streams with a progress bar and prints a summary. GRBL machines go
through the job runner; ``fanuc-*`` machines through the DNC drip-feed. Every run
leaves a job record in the data dir (``$LABBRIDGE_DATA_DIR``, default ./data).

``--home`` runs GRBL's homing cycle first when the controller is not known to be
homed: opening the USB port of an Arduino-based GRBL resets it, and with homing
enabled it then waits, locked, for ``$H`` — without the option a machine that
requires homing refuses the job by its ``homed`` interlock.

``--from-line N`` resumes a GRBL program at line N: the modal state is rebuilt,
the tool approaches from above, the preamble and the rest are checked again, and a
controller that lost its position is homed first. When the machine's last job was
interrupted (a crash, a lost cable), the run says so before anything is sent,
suggests the line to resume from, reports the machine's state once connected and
offers to stop the spindle and coolant (``--yes`` stops them). Another process
owning the machine makes the run refuse at once (exit 3, naming it).

Exit codes (a contract): 0 every line acknowledged ok; 1 rejected by the safety
gate, nothing sent; 2 usage or config error; 3 the controller reported an error or
alarm, refused to start (an interlock), or the connection was lost — the message
names the program line and the controller's words.
"""

from __future__ import annotations

import asyncio
import getpass
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn

from labbridge.cli.check import format_duration, human_report
from labbridge.cli.common import (
    EXIT_CONTROLLER, EXIT_OK, EXIT_PROGRAM_ERRORS, EXIT_USAGE, ConfigOption, MachineOption, fail, load_machine,
)
from labbridge.cli.owner import claim
from labbridge.cli.recovery import check_from_line, report_and_offer, shout, sweep_and_announce
from labbridge.cli.reading import DEFAULT_MAX_SIZE_TEXT, MaxSizeOption, PipeTimeoutOption, read_and_check
from labbridge.config import Machine
from labbridge.errors import ConfigError, GateRejected, InterlockError, LabbridgeError, ProgramReadError
from labbridge.safety import Report
from labbridge.safety.source import DEFAULT_PIPE_TIMEOUT
from labbridge.cli.language import LangOption, LocalizedCommand
from labbridge.i18n import N_, _
from labbridge.streaming.texts import localize

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
    return "ETA —" if seconds is None else f"ETA {format_duration(seconds)}"


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("lines"),
        TaskProgressColumn(), TextColumn("{task.fields[eta]}"), console=console, transient=False,
    )


@dataclass
class Run:
    """One ``labbridge stream`` run: what goes where, and how."""

    machine_id: str
    machine: Machine
    program: Path
    data: bytes
    port: str | None
    console: Console
    check_mode: bool = False
    home: bool = False
    from_line: int | None = None
    yes: bool = False
    interrupted: Any = None  # the machine's last job, if it was interrupted and not yet seen


def _confirm(run: Run, report: Report, device: str | None) -> None:
    if run.yes:
        return
    if not sys.stdin.isatty():
        fail("no terminal to confirm on: pass --yes to stream without asking", EXIT_USAGE)
    motion = "in check mode (GRBL parses every line, nothing moves)" if run.check_mode else "— the machine will move"
    if run.home and not run.check_mode:
        motion += ", homing first if it is not homed"
    if run.from_line:
        motion += (f", resuming at line {run.from_line} (safe approach from above; homing first if the controller "
                   "lost its position)")
    question = (f"Stream {run.program} ({report.lines} lines, about {format_duration(report.estimated_seconds)}) to "
                f"{run.machine_id} ({run.machine.name}) on {device or 'the configured port'} {motion}?")
    if not typer.confirm(question, default=False):
        fail("not confirmed; nothing was sent", EXIT_USAGE)


# ---------------------------------------------------------------------------- one job, either runner


def _open_store() -> Any:
    from labbridge.streaming.records import JobStore

    try:
        return JobStore()
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


async def _run_job(runner: Any, run: Run) -> int:
    """Start, show progress, cancel cleanly on Ctrl-C, print the summary; the same for GRBL and DNC jobs."""
    from labbridge.streaming.job import JobState

    console, machine_id = run.console, run.machine_id
    loop = asyncio.get_running_loop()
    cancelled = asyncio.Event()

    def on_sigint() -> None:
        if not cancelled.is_set():
            cancelled.set()
            console.print("[bold]" + (_("cancelling: feed hold, then reset…") if runner.protocol == "grbl"
                                      else _("cancelling: stopping the tape…")))
            loop.create_task(runner.cancel())

    with _progress(console) as bar:
        task = bar.add_task(f"{machine_id} {run.program.name}", total=None, eta="ETA —")

        def update(job: Any) -> None:
            eta = _eta_text(job.eta_seconds) if runner.protocol == "grbl" else "DNC"
            bar.update(task, total=job.lines_total, completed=job.lines_acked, eta=eta)

        try:
            job = await runner.start(run.program, check_mode=run.check_mode, on_progress=update, data=run.data,
                                     **({"from_line": run.from_line} if run.from_line else {}))
        except GateRejected as exc:
            bar.stop()
            console.print(human_report(exc.report))
            fail(localize(str(exc)), EXIT_PROGRAM_ERRORS)
        except InterlockError as exc:
            fail(_("refused by the '{interlock}' interlock: {reason}; nothing was sent").format(
                interlock=exc.interlock, reason=localize(str(exc))), EXIT_CONTROLLER)
        except (ConfigError, ProgramReadError) as exc:
            fail(str(exc), EXIT_USAGE)
        with _sigint(loop, on_sigint):
            job = await runner.wait()
        update(job)
    for starved in getattr(getattr(runner, "stalls", None), "starvations", ()):
        shout(console, _("{machine}: the stream starved mid-cut").format(machine=machine_id),
              localize(starved.message()))
    took = (job.ended_at or time.time()) - (job.started_at or time.time())
    if runner.protocol != "grbl":
        template = _("{machine}: {program}: {state}: {done}/{total} blocks sent by DNC in {duration} (job {job})")
    elif run.check_mode and job.state == JobState.COMPLETED:
        template = _("{machine}: {program}: {state}: {done}/{total} lines acknowledged in {duration} (job {job}) "
                     "in check mode")
    else:
        template = _("{machine}: {program}: {state}: {done}/{total} lines acknowledged in {duration} (job {job})")
    typer.echo(template.format(machine=machine_id, program=job.program_name, state=job.state.value,
                               done=job.lines_acked, total=job.lines_total, duration=format_duration(took),
                               job=job.id))
    if job.state == JobState.COMPLETED:
        return EXIT_OK
    fail(f"{machine_id}: {localize(job.message)}", EXIT_CONTROLLER)


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


# ---------------------------------------------------------------------------- GRBL


async def _stream_grbl(run: Run) -> int:
    from labbridge.drivers.factory import create_driver
    from labbridge.streaming.runner import JobRunner

    machine_id, console = run.machine_id, run.console
    store = _open_store()
    driver: Any = create_driver(machine_id, run.machine, port=run.port)
    if hasattr(driver, "reconnect"):
        driver.reconnect = False  # a CLI run ends with the link; the job record says what happened
    try:
        try:
            await asyncio.wait_for(driver.connect(), 30.0)
        except asyncio.TimeoutError:
            fail(f"{machine_id}: no answer from the controller on {driver.port} within 30 s; nothing was sent",
                 EXIT_CONTROLLER)
        except LabbridgeError as exc:
            fail(f"{exc}; nothing was sent", EXIT_CONTROLLER)
        if run.interrupted is not None:
            await report_and_offer(driver, machine_id, run.interrupted, run.yes, console, _user(), run.data,
                                   run.from_line)
        # --home homes a machine not known to be homed; a resume re-homes one that lost its position.
        lost = driver.state.homed is False
        if not run.check_mode and ((run.home and driver.state.homed is not True) or (run.from_line and lost)):
            console.print(f"{machine_id}: homing ($H)…")
            try:
                await driver.home()
            except LabbridgeError as exc:
                fail(f"{machine_id}: homing failed: {exc}; nothing was sent", EXIT_CONTROLLER)
        runner = JobRunner(driver, machine_id, run.machine, store, user=_user())
        return await _run_job(runner, run)
    finally:
        await driver.close()
        store.close()


# ---------------------------------------------------------------------------- Fanuc-style (DNC)


async def _stream_dnc(run: Run) -> int:
    from labbridge.streaming.dnc_runner import DncRunner

    store = _open_store()
    try:
        runner = DncRunner(None, run.machine_id, run.machine, store, user=_user(), port=run.port)
        return await _run_job(runner, run)
    finally:
        store.close()


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
        from_line: Annotated[Optional[int], typer.Option(
            "--from-line", min=1, help="GRBL: resume at program line N (modal state rebuilt, safe approach from "
            "above, checked again; re-homes first where the controller lost its position).",
            show_default=False)] = None,
        max_size: MaxSizeOption = DEFAULT_MAX_SIZE_TEXT,
        pipe_timeout: PipeTimeoutOption = DEFAULT_PIPE_TIMEOUT,
        lang: LangOption = None,
    ) -> None:
        machine_id, machine_cfg = load_machine(config, machine)
        console = Console(stderr=True)
        grbl = machine_cfg.controller == "grbl"
        if check_mode and not grbl:
            fail(f"--check-mode is GRBL's $C; {machine_id} is a {machine_cfg.controller} machine", EXIT_USAGE)
        if from_line is not None and not grbl:
            fail(f"--from-line resumes GRBL programs; on {machine_id} ({machine_cfg.controller}) search for the "
                 "block at the control", EXIT_USAGE)
        if grbl and port is None and machine_cfg.connection.serial is None:
            fail(f"{machine_id} has no connection.serial in the config; pass --port DEVICE", EXIT_USAGE)
        # Read once, all of it, and check it before anything else happens: nothing moves before that.
        report, source = read_and_check(program, machine_id, machine_cfg, max_size, pipe_timeout, spool=True)
        typer.echo(human_report(report))
        if not report.ok:
            raise typer.Exit(EXIT_PROGRAM_ERRORS)
        data = source.data()  # the bytes the gate checked are the bytes that go out
        if from_line is not None:
            check_from_line(program, data, machine_id, machine_cfg, from_line)
        device = port or (machine_cfg.connection.serial.port if grbl and machine_cfg.connection.serial else
                          machine_cfg.connection.dnc.port if machine_cfg.connection.dnc else None)
        if home and not grbl:
            fail(f"--home is GRBL's $H; home {machine_id} ({machine_cfg.controller}) at its control", EXIT_USAGE)
        lock = claim(machine_id, device)  # exit 3 naming the owner; held until this run ends
        run = Run(machine_id, machine_cfg, program, data, port, console, check_mode, home, from_line, yes)
        run.interrupted = sweep_and_announce(machine_id, source.sha256, from_line, console)
        _confirm(run, report, device)
        try:
            code = asyncio.run(_stream_grbl(run) if grbl else _stream_dnc(run))
        finally:
            lock.release()
        raise typer.Exit(code)
