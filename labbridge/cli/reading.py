"""Read and check a program once for ``check`` and ``stream``: size limit, pipe timeout, progress after 2 s."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from labbridge.cli.common import EXIT_USAGE, fail
from labbridge.config import Machine
from labbridge.errors import ProgramReadError
from labbridge.safety import Report, check_stream
from labbridge.safety.source import DEFAULT_PIPE_TIMEOUT, ProgramSource, parse_size

PROGRESS_AFTER = 2.0  # seconds: a quick check prints nothing but its report

MaxSizeOption = Annotated[str, typer.Option(
    "--max-size", help="Refuse a program from a pipe or device beyond this size (e.g. 100MB, 2GB; a plain "
    "number is MB).")]
PipeTimeoutOption = Annotated[float, typer.Option(
    "--pipe-timeout", min=0.1, help="Seconds to wait for a pipe's writer (and for each of its pauses).")]
DEFAULT_MAX_SIZE_TEXT = "100MB"


class LateProgress:
    """A progress line on a terminal that appears only once reading and checking take longer than 2 s."""

    def __init__(self, label: str, console: Console, after: float = PROGRESS_AFTER) -> None:
        self.console = console
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                                 TimeElapsedColumn(), console=console, transient=True)
        self.task = self.progress.add_task(label, total=None)
        self._lock = threading.Lock()
        self._shown = False
        self._closed = False
        self._timer = threading.Timer(after, self._show)
        self._timer.daemon = True
        if console.is_terminal:
            self._timer.start()

    def _show(self) -> None:
        with self._lock:
            if not self._closed:
                self.progress.start()
                self._shown = True

    def __call__(self, done: int, total: int | None) -> None:
        self.progress.update(self.task, completed=done, total=total)

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._closed = True
            if self._shown:
                self.progress.stop()


def max_size_bytes(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        fail(f"--max-size: {exc}", EXIT_USAGE)


def read_and_check(program: Path, machine_id: str, machine: Machine, max_size: str,
                   pipe_timeout: float = DEFAULT_PIPE_TIMEOUT, *, spool: bool = False) -> tuple[Report, ProgramSource]:
    """Check ``program`` reading it once; exit 2 with a clear message when it cannot be read."""
    limit = max_size_bytes(max_size)
    progress = LateProgress(f"checking {program.name}", Console(stderr=True))
    try:
        source = ProgramSource(program, max_size=limit, pipe_timeout=pipe_timeout, spool=spool,
                               on_progress=progress)
        report = check_stream(source, machine_id, machine, str(program))  # type: ignore[arg-type]
        if spool and report.ok:
            source.read_rest()
    except ProgramReadError as exc:
        progress.close()
        fail(str(exc), EXIT_USAGE)
    progress.close()
    source.close()
    return report, source
