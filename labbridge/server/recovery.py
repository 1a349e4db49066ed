"""The server's side of crash recovery: sweep the job records on start, show each machine's interruption.

``labbridge serve`` starting after a crash (its own, or a CLI run's) marks jobs left
running by dead processes ``interrupted`` (:func:`labbridge.streaming.recovery.interrupt_orphans`)
and puts every machine's unacknowledged interruption on its live state as the
job, state ``interrupted``, with the line to resume from — the dashboard shows it
as a banner with the machine's spindle and coolant beside it, until an operator
stops them, resumes, or dismisses it (:mod:`labbridge.server.commands.recovery`).
"""

from __future__ import annotations

from typing import Any

from labbridge.log import get_logger
from labbridge.model import JobProgress, MachineState
from labbridge.streaming.job import Job
from labbridge.streaming.recovery import interrupt_orphans, last_interruption, suggested_line

log = get_logger()


def show_interruption(state: MachineState, job: Job) -> None:
    """The interrupted job on the machine's live state (the dashboard's banner reads it from there)."""
    state.update(job=JobProgress(
        job_id=job.id, program=job.program_name, state="interrupted", lines_total=job.lines_total,
        lines_acked=job.lines_acked, line_number=suggested_line(job), started_at=job.started_at,
        eta_seconds=None, message=job.message))


def clear_interruption(state: MachineState, job_id: str) -> None:
    if state.job is not None and state.job.job_id == job_id and state.job.state == "interrupted":
        state.update(job=None)


def recover_interrupted(lab: Any) -> list[Job]:
    """On start: interrupt orphaned jobs, then show each machine's last unacknowledged interruption."""
    store = lab.job_store()
    if store is None:
        return []
    cut = interrupt_orphans(store, lab.machines)
    for job in cut:
        log.warning("job interrupted by a stopped bridge", machine=job.machine, job=job.id, detail=job.message)
    for machine_id, runtime in lab.machines.items():
        job = last_interruption(store, machine_id)
        if job is not None:
            show_interruption(runtime.state, job)
    return cut
