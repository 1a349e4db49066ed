"""What every job runner shares: the record, its events, the live progress and the start/wait surface.

A runner runs one job at a time on one machine. The GRBL runner streams line by
line (:mod:`labbridge.streaming.runner`), the DNC runner sends a tape
(:mod:`labbridge.streaming.dnc_runner`); both offer ``start``, ``wait``, ``hold``,
``resume`` and ``cancel``, write the same :class:`~labbridge.streaming.job.Job`
record and the same event names to the one job store, and publish the same
:class:`~labbridge.model.JobProgress` on the machine's state. So the CLI, the
server's queue and the dashboard treat every machine alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from labbridge.config import Machine
from labbridge.errors import ProgramReadError
from labbridge.log import get_logger
from labbridge.model import JobProgress, MachineState
from labbridge.streaming.job import ACTIVE_STATES, Job, JobState, new_job_id
from labbridge.streaming.records import JobStore
from labbridge.streaming.recovery import process_owner

ProgressCallback = Callable[[Job], Awaitable[None] | None]
_ACTIVE: dict[str, JobRunnerBase] = {}  # machine id → the runner whose job is going on it (in this process)


def read_program(path: Path) -> bytes:
    """The program's bytes, read once: what is checked, hashed and sent."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ProgramReadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ProgramReadError(f"{path}: is a directory, not a program file") from None
    except OSError as exc:
        raise ProgramReadError(f"{path}: cannot read: {exc.strerror or exc}") from None


def active_job(machine_id: str) -> Job | None:
    """The job going on ``machine_id`` in this process, if any."""
    runner = _ACTIVE.get(machine_id)
    job = runner.job if runner is not None else None
    return job if job is not None and job.state in ACTIVE_STATES else None


class JobRunnerBase:
    """The shared half of a job runner (see the module notes). Subclasses set ``protocol`` and implement
    ``start``, ``hold``, ``resume`` and ``cancel``; ``store`` may be None (no record kept)."""

    protocol = "grbl"

    def __init__(self, driver: Any, machine_id: str, machine: Machine, store: JobStore | None = None, *,
                 user: str | None = None, progress_interval: float = 0.2, save_interval: float = 1.0) -> None:
        self.driver = driver
        self.machine_id = machine_id
        self.machine = machine
        self.store = store
        self.user = user
        self.progress_interval = progress_interval
        self.save_interval = save_interval
        self.job: Job | None = None
        self.log = get_logger(machine=machine_id, user=user)
        self._task: asyncio.Task[None] | None = None
        self._on_progress: ProgressCallback | None = None
        self._last_progress = 0.0
        self._last_save = 0.0

    @property
    def state(self) -> MachineState:
        return self.driver.state

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def wait(self) -> Job:
        """Return the job once it has ended (completed, failed, cancelled or interrupted)."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._task)
        assert self.job is not None, "start() first"
        return self.job

    # ------------------------------------------------------------------ the job's life

    def _other_runner(self) -> str | None:
        """``job <id>`` when another runner's job is going on this machine in this process."""
        other = _ACTIVE.get(self.machine_id)
        if other is None or other is self:
            return None
        return f"job {other.job.id if other.job else '?'}"

    def _create_job(self, path: Path, data: bytes, name: str, *, check_mode: bool = False,
                    from_line: int | None = None) -> Job:
        """Record a new job (state ``checking``) and claim the machine for it in this process."""
        sha = hashlib.sha256(data).hexdigest()
        job = Job(new_job_id(), self.machine_id, str(path), name, sha, self.user, JobState.CHECKING,
                  check_mode=check_mode, from_line=from_line, protocol=self.protocol, owner=process_owner())
        self.job = job
        self.log = get_logger(machine=self.machine_id, job=job.id, user=self.user, program_sha256=sha)
        if self.store is not None:
            self.store.create(job)
        self._event("job_created", program=name, path=str(path), check_mode=check_mode, from_line=from_line,
                    protocol=self.protocol)
        _ACTIVE[self.machine_id] = self
        return job

    def _release(self) -> None:
        if _ACTIVE.get(self.machine_id) is self:
            _ACTIVE.pop(self.machine_id, None)

    def _begin(self, lines_total: int, estimated_seconds: float | None, on_progress: ProgressCallback | None,
               message: str = "", **detail: Any) -> None:
        """The checks passed: the job is running from now on."""
        job = self.job
        assert job is not None
        job.lines_total = lines_total
        job.estimated_seconds = job.eta_seconds = estimated_seconds
        job.state = JobState.RUNNING
        job.started_at = time.time()
        job.message = message
        self._on_progress = on_progress
        self._save(force=True)
        self._event("job_started", lines=lines_total,
                    estimated_seconds=round(estimated_seconds, 1) if estimated_seconds is not None else None,
                    protocol=self.protocol, **detail)
        self._publish(force=True)

    def _set_holding(self, holding: bool, **detail: Any) -> None:
        """``running`` ↔ ``holding`` with its event (``job_held`` / ``job_resumed``)."""
        job = self.job
        if job is None:
            return
        before, after = (JobState.RUNNING, JobState.HOLDING) if holding else (JobState.HOLDING, JobState.RUNNING)
        if job.state != before:
            return
        job.state = after
        self._event("job_held" if holding else "job_resumed", **detail)
        self._save(force=True)
        self._publish(force=True)

    def _finish(self, state: JobState, *, message: str) -> None:
        job = self.job
        assert job is not None
        job.state = state
        job.message = message
        job.ended_at = time.time()
        job.eta_seconds = 0.0 if state == JobState.COMPLETED else None
        self._save(force=True)
        level = "info" if state == JobState.COMPLETED else "warning"
        self._event(f"job_{state.value}", level=level, message=message, lines_acked=job.lines_acked,
                    lines_sent=job.lines_sent, last_acked_line=job.last_acked_line, error_code=job.error_code,
                    error_line=job.error_line)
        self._publish(force=True)

    # ------------------------------------------------------------------ records and progress

    def _event(self, event: str, *, level: str = "info", **detail: Any) -> None:
        job = self.job
        getattr(self.log, level)(event, **detail)
        if job is not None and self.store is not None:
            try:
                self.store.add_event(job.id, event, **detail)
            except Exception as exc:  # the record must not stop a running machine
                self.log.warning("job_event_not_recorded", event_name=event, error=str(exc))

    def _save(self, force: bool = False) -> None:
        if self.store is None or self.job is None:
            return
        now = time.monotonic()
        if not force and now - self._last_save < self.save_interval:
            return
        self._last_save = now
        try:
            self.store.save(self.job)
        except Exception as exc:
            self.log.warning("job_not_saved", error=str(exc))

    def _eta(self) -> float | None:
        """Seconds left; the job's own figure unless a runner knows better."""
        return self.job.eta_seconds if self.job is not None else None

    def _publish(self, force: bool = False) -> None:
        """Show the job on the machine's state and tell the caller's ``on_progress`` (rate-limited)."""
        job = self.job
        if job is None:
            return
        now = time.monotonic()
        if not force and now - self._last_progress < self.progress_interval:
            return
        self._last_progress = now
        if not job.state.final:
            job.eta_seconds = self._eta()
        with contextlib.suppress(Exception):
            self.state.update(job=JobProgress(
                job_id=job.id, program=job.program_name, state=job.state.value, lines_total=job.lines_total,
                lines_acked=job.lines_acked, line_number=job.last_acked_line, started_at=job.started_at,
                eta_seconds=job.eta_seconds, message=job.message))
        if self._on_progress is not None:
            try:
                result = self._on_progress(job)
                if inspect.isawaitable(result):
                    asyncio.ensure_future(result)
            except Exception:
                self.log.exception("job_progress_callback_failed")
