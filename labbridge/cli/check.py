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
from labbridge.cli.reading import DEFAULT_MAX_SIZE_TEXT, MaxSizeOption, PipeTimeoutOption, read_and_check
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
        return "no motion"
    lo, hi = report.bounds["min"], report.bounds["max"]
    return "  ".join(f"{a} {lo[a]:.3f} .. {hi[a]:.3f}" for a in lo)


def human_report(report: Report) -> str:
    lines = [d.format(report.program) for d in report.diagnostics]
    warnings = len(report.warnings)
    verdict = "OK" if report.ok else "REJECTED"
    lines.append(
        f"{report.program}: {verdict} for {report.machine}: {report.error_count} error(s), {warnings} warning(s); "
        f"{report.lines} lines; bounds (machine mm): {format_bounds(report)}; "
        f"estimated run time {format_duration(report.estimated_seconds)}"
    )
    return "\n".join(lines)


def register(app: typer.Typer, sim_app: typer.Typer) -> None:
    @app.command("check")
    def check(
        program: Annotated[Path, typer.Argument(help="G-code program file to check.", show_default=False)],
        machine: MachineOption,
        config: ConfigOption = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object.")] = False,
        max_size: MaxSizeOption = DEFAULT_MAX_SIZE_TEXT,
        pipe_timeout: PipeTimeoutOption = DEFAULT_PIPE_TIMEOUT,
    ) -> None:
        """Check PROGRAM against a machine's envelope, limits and controller dialect."""
        machine_id, machine_cfg = load_machine(config, machine)
        report, _ = read_and_check(program, machine_id, machine_cfg, max_size, pipe_timeout)
        if as_json:
            typer.echo(json.dumps(report.to_json()))
        else:
            typer.echo(human_report(report))
        raise typer.Exit(EXIT_OK if report.ok else EXIT_PROGRAM_ERRORS)
