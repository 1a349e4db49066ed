"""``labbridge jobs [--machine ID] [--limit N] [--data-dir DIR] [--json]``: the recorded jobs, newest first.

The same records ``/api/jobs`` lists: GRBL and DNC jobs alike, from ``labbridge
stream`` and from the server's queue (they share the data dir's database).
``--json`` prints the records with the field names of ``/api/jobs``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from labbridge.cli.common import fail
from labbridge.config import DATA_DIR_ENV, database_path, default_data_dir
from labbridge.errors import ConfigError


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else "—"


def register(app: typer.Typer, sim_app: typer.Typer) -> None:
    @app.command("jobs")
    def jobs(
        machine: Annotated[str | None, typer.Option("--machine", "-m", help="Only this machine's jobs.",
                                                    show_default=False)] = None,
        limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=500, help="How many jobs to list.")] = 20,
        data_dir: Annotated[Path | None, typer.Option("--data-dir", help=f"Where the records are (default "
                                                      f"${DATA_DIR_ENV}, else ./data).", show_default=False)] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the records as JSON.")] = False,
    ) -> None:
        """List recorded jobs, newest first: state, lines, and why a job did not complete."""
        from labbridge.streaming.records import JobStore
        from labbridge.streaming.texts import localize, localize_record

        path = database_path(data_dir if data_dir is not None else default_data_dir())
        if not path.exists():
            fail(f"no job records at {path}: run a job first, or pass --data-dir (or set {DATA_DIR_ENV})")
        try:
            with JobStore(path) as store:
                records = store.list_jobs(machine, limit=limit)
        except ConfigError as exc:
            fail(str(exc))
        if as_json:
            typer.echo(json.dumps([localize_record(job.to_dict()) for job in records], indent=2))
            return
        if not records:
            typer.echo(f"no jobs recorded{' for ' + machine if machine else ''} in {path}")
            return
        table = Table("job", "machine", "protocol", "program", "state", "lines", "started", "outcome", box=None)
        for job in records:
            table.add_row(job.id, job.machine, job.protocol, job.program_name, job.state.value,
                          f"{job.lines_acked}/{job.lines_total}", _when(job.started_at or job.created_at),
                          localize(job.message))
        Console(width=160).print(table)
