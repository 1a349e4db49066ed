"""``labbridge check``: run the safety gate on a program, compiler style.

Exit 0: no errors (warnings allowed). 1: the program has errors. 2: usage,
config or unreadable file. Other tools depend on these codes and on the
``--json`` shape; keep them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from labbridge.cli.common import EXIT_OK, EXIT_PROGRAM_ERRORS, ConfigOption, MachineOption, load_machine
from labbridge.cli.language import LangOption, LocalizedCommand
from labbridge.cli.reading import DEFAULT_MAX_SIZE_TEXT, MaxSizeOption, PipeTimeoutOption, read_and_check
from labbridge.i18n import N_, _, ngettext
from labbridge.safety import Report
from labbridge.safety.source import DEFAULT_PIPE_TIMEOUT


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def format_bounds(report: Report) -> str:
    if report.bounds is None:
        return _("no motion")
    lo, hi = report.bounds["min"], report.bounds["max"]
    return "  ".join(f"{a} {lo[a]:.3f} .. {hi[a]:.3f}" for a in lo)


def human_report(report: Report) -> str:
    lines = [d.format(report.program) for d in report.diagnostics]
    warnings = len(report.warnings)
    verdict = (_("{program}: OK for {machine}") if report.ok else _("{program}: REJECTED for {machine}")).format(
        program=report.program, machine=report.machine)
    counts = "; ".join((
        ngettext("{n} error", "{n} errors", report.error_count).format(n=report.error_count)
        + ", " + ngettext("{n} warning", "{n} warnings", warnings).format(n=warnings),
        ngettext("{n} line", "{n} lines", report.lines).format(n=report.lines),
        _("bounds (machine mm): {bounds}").format(bounds=format_bounds(report)),
        _("estimated run time {duration}").format(duration=format_duration(report.estimated_seconds)),
    ))
    lines.append(f"{verdict}: {counts}")
    return "\n".join(lines)


def register(app: typer.Typer, sim_app: typer.Typer) -> None:
    @app.command("check", cls=LocalizedCommand,
                 help=N_("Check PROGRAM against a machine's envelope, limits and controller dialect."))
    def check(
        program: Annotated[Path, typer.Argument(help=N_("G-code program file to check."), show_default=False)],
        machine: MachineOption,
        config: ConfigOption = None,
        as_json: Annotated[bool, typer.Option("--json", help=N_("Print exactly one JSON object."))] = False,
        lang: LangOption = None,
        max_size: MaxSizeOption = DEFAULT_MAX_SIZE_TEXT,
        pipe_timeout: PipeTimeoutOption = DEFAULT_PIPE_TIMEOUT,
    ) -> None:
        machine_id, machine_cfg = load_machine(config, machine)
        report, _source = read_and_check(program, machine_id, machine_cfg, max_size, pipe_timeout)
        if as_json:
            typer.echo(json.dumps(report.to_json()))
        else:
            typer.echo(human_report(report))
        raise typer.Exit(EXIT_OK if report.ok else EXIT_PROGRAM_ERRORS)
