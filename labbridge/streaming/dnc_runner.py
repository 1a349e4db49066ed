"""The job runner for Fanuc-style machines: the checked program goes out as a DNC tape.

The control reads the tape at its own pace (DC1/DC3), so a job here is the tape
transfer, recorded in the same :class:`~labbridge.streaming.job.Job` and the same
job store as a GRBL job, with the same states and event names. ``hold`` asks the
control to feed-hold through whatever stop action its Modbus map declares;
``resume`` is cycle start at the control's panel (the job shows ``running`` again
when the control's state does); ``cancel`` stops the tape (the control then runs
out of blocks; the operator resets it at the panel, which the message says).

``driver`` may be None (``labbridge stream`` sends a tape without a status link):
then there is no remote hold and the machine's state is the runner's own.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from labbridge.config import Machine
from labbridge.errors import ConnectionLost, InterlockError, LabbridgeError
from labbridge.model import MachineState, Status
from labbridge.streaming.base import JobRunnerBase, ProgressCallback, read_program
from labbridge.streaming.dnc_transfer import Tape, prepare_tape, send_tape
from labbridge.streaming.job import Job, JobState
from labbridge.streaming.records import JobStore
from labbridge.streaming import texts as T


class DncRunner(JobRunnerBase):
    """Runs one tape at a time to one Fanuc-style machine (see the module notes). ``port`` overrides
    the config's DNC port."""

    protocol = "dnc"

    def __init__(self, driver: Any, machine_id: str, machine: Machine, store: JobStore | None = None, *,
                 user: str | None = None, port: str | None = None, **options: Any) -> None:
        super().__init__(driver, machine_id, machine, store, user=user, **options)
        self.port = port
        self._own_state = MachineState(machine_id) if driver is None else None
        self._cancel_requested = False
        self._unwatch: Any = None
        self._stopped_since_hold = False
        self._report: Any = None
        self._trailing: asyncio.TimerHandle | None = None

    @property
    def state(self) -> MachineState:
        return self._own_state if self._own_state is not None else self.driver.state

    async def start(self, program_path: str | Path, *, check_mode: bool = False, from_line: int | None = None,
                    on_progress: ProgressCallback | None = None, program_name: str | None = None,
                    data: bytes | None = None) -> Job:
        """Check and frame the program, then start sending; returns the job once the tape may go out.

        Raises InterlockError (another job runs; nothing recorded), GateRejected (recorded as
        failed, nothing sent), ProgramReadError, ConfigError (no DNC link), LabbridgeError for
        GRBL-only options.
        """
        if check_mode:
            raise LabbridgeError(f"{self.machine_id}: check mode is GRBL's $C; a Fanuc-style control has none")
        if from_line is not None:
            raise LabbridgeError(f"{self.machine_id}: resuming from a line is not offered for DNC tapes; "
                                 "search for the block at the control instead")
        busy = self._other_runner() if not self.running else f"job {self.job.id if self.job else '?'}"
        if busy is not None:
            raise InterlockError("busy", f"{self.machine_id} is busy with {busy}; wait for it to end or cancel it")
        path = Path(program_path)
        data = read_program(path) if data is None else data
        name = program_name or path.name
        job = self._create_job(path, data, name)
        try:
            tape = await prepare_tape(self.machine_id, self.machine, path, data=data, program_name=name, log=self.log)
        except BaseException as exc:
            self._release()
            self._finish(JobState.FAILED, message=str(exc))
            raise
        self._event("gate_checked", ok=True, errors=0, warnings=len(tape.report.warnings))
        self._report = tape.report
        self.state.update(program_name=name)
        self._begin(len(tape.program.blocks), tape.report.estimated_seconds, on_progress,
                    message=T.TAPE_WAITING,
                    port=self.port or tape.settings.port)
        self._unwatch = self.state.subscribe(self._on_state)
        self._task = asyncio.get_running_loop().create_task(self._run(tape), name=f"dnc-{job.id}")
        return job

    async def _run(self, tape: Tape) -> None:
        job = self.job
        assert job is not None
        try:
            result = await send_tape(tape, port=self.port, job=job, on_progress=self._progress, log=self.log)
            self._finish(JobState.COMPLETED, message=T.TAPE_READ.format(blocks=result.blocks_sent,
                                                                          seconds=f"{result.seconds:.0f}"))
        except asyncio.CancelledError:
            if self._cancel_requested:
                self._finish(JobState.CANCELLED, message=T.TAPE_STOPPED.format(where=self._where()))
            else:
                self._finish(JobState.INTERRUPTED, message=T.SHUTDOWN)
            raise
        except ConnectionLost as exc:
            job.error_code, job.error_message = "disconnected", str(exc)
            self._finish(JobState.INTERRUPTED, message=T.TAPE_LOST.format(reason=exc, where=self._where()))
        except LabbridgeError as exc:
            job.error_code, job.error_message = type(exc).__name__, str(exc)
            self._finish(JobState.FAILED, message=str(exc))
        except Exception as exc:  # never leave a job 'running' in the record
            self.log.exception("job_runner_failed")
            self._finish(JobState.FAILED, message=T.STOPPED_BY_LABBRIDGE.format(error=exc))
        finally:
            if self._unwatch is not None:
                self._unwatch()
            self._release()

    def _where(self) -> str:
        line = self.job.last_acked_line if self.job else None
        return T.AFTER_LINE.format(line=line) if line else T.BEFORE_FIRST_BLOCK

    def _eta(self) -> float | None:
        """The gate's estimate less its time up to the last block the control read (as GRBL's counts acked
        lines; the control's buffer runs a few blocks behind)."""
        job, report = self.job, self._report
        if job is None or report is None:
            return job.eta_seconds if job is not None else None
        if not job.last_acked_line:
            return report.estimated_seconds
        return max(0.0, report.estimated_seconds - report.seconds_until(job.last_acked_line))

    def _progress(self, job: Job) -> None:
        self._save()
        self._publish()
        if self._trailing is None:  # the last block's figures show even when none follows for a while (DC3)
            self._trailing = asyncio.get_running_loop().call_later(self.progress_interval, self._publish_trailing)

    def _publish_trailing(self) -> None:
        self._trailing = None
        if self.job is not None and not self.job.state.final:
            self._publish(force=True)

    def _on_state(self, state: MachineState, fields: frozenset[str]) -> None:
        """The control resumed at its panel after a hold: the record follows its state."""
        if "state" not in fields or self.job is None or self.job.state != JobState.HOLDING:
            return
        if state.state != Status.RUN:
            self._stopped_since_hold = True  # a report from before the hold took effect is not a resume
        elif self._stopped_since_hold:
            self._set_holding(False, by="cycle start at the control")

    async def hold(self) -> None:
        """Feed hold through the control's declared stop register; the tape waits for the control."""
        if self.driver is None:
            raise LabbridgeError(f"{self.machine_id}: no status link to hold through; use FEED HOLD on the control")
        await self.driver.feed_hold()
        if self.running and self.job is not None:
            self._stopped_since_hold = False
            self._set_holding(True, last_acked_line=self.job.last_acked_line)

    async def resume(self) -> None:
        raise LabbridgeError(f"{self.machine_id}: resume a Fanuc-style control with cycle start on its panel")

    async def cancel(self) -> Job | None:
        """Feed hold (where possible), stop the tape; returns the ended job."""
        if not self.running:
            return self.job
        self._cancel_requested = True
        if self.driver is not None:
            try:
                await self.driver.feed_hold()
            except LabbridgeError as exc:
                self._event("feed_hold_failed", level="warning", reason=str(exc))
        assert self._task is not None
        self._task.cancel()
        return await self.wait()
