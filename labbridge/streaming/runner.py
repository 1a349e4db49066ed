"""The job runner: streams a checked program to a GRBL machine and keeps an honest record of it.

Order of a start: interlocks → the safety gate again, with the controller's live
work offsets and position → interlocks once more → stream. The stream itself is
the sans-IO :class:`~labbridge.protocols.grbl_stream.StreamEngine` fed by the
driver's events; this module adds the I/O, the reactions and the record:

- ``error:N``: the engine stops sending in the same callback that reads the
  answer, a feed hold goes out at once, and once the machine has stopped
  (``Hold:0``) a soft reset discards what was still buffered, so nothing after
  the failing line runs. The job fails naming the line and the error's meaning.
- ``ALARM:N``: nothing more is sent; GRBL has already stopped. The job fails.
- Lost link: the job is interrupted with the last acknowledged line recorded.
- Cancel: feed hold, wait for ``Hold:0``, soft reset, unlock if the reset left an
  alarm, report.

A job completes when every line was answered ``ok`` and the controller reports
Idle with an empty planner (the last moves have run), or at once in check mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labbridge.config import WORK_OFFSET_CODES, Machine
from labbridge.errors import ConnectionLost, GateRejected, InterlockError, LabbridgeError
from labbridge.model import MachineState, Status
from labbridge.protocols import grbl as gp
from labbridge.protocols.grbl_stream import (
    Acked, Alarmed, Completed, ControllerReset, EngineState, Rejected, StreamEngine, StreamLine, program_lines,
)
from labbridge.safety import Report, check_program
from labbridge.streaming.base import JobRunnerBase, ProgressCallback, active_job, read_program
from labbridge.streaming.interlocks import check_interlocks
from labbridge.streaming.job import Job, JobState
from labbridge.streaming.records import JobStore
from labbridge.streaming.resume import build_resume
from labbridge.safety.lexer import split_lines
from labbridge.streaming.runner_watch import ExecutionWatch
from labbridge.streaming import texts as T

__all__ = ["GateRejected", "Job", "JobRunner", "JobState", "JobStore", "InterlockError", "active_job"]


def _vec(values: Any) -> tuple[float, float, float]:
    v = [float(x) for x in tuple(values)[:3]]
    return (v + [0.0, 0.0, 0.0])[:3]  # type: ignore[return-value]


class JobRunner(ExecutionWatch, JobRunnerBase):
    """Runs one job at a time on one GRBL machine through its driver (see the module notes).

    ``store`` may be None (no record kept; tests and the benchmark). ``mode`` is the
    streaming window: ``"cc"`` character counting (default) or ``"sr"`` send-response.
    """

    def __init__(
        self,
        driver: Any,
        machine_id: str,
        machine: Machine,
        store: JobStore | None = None,
        *,
        user: str | None = None,
        mode: str = "cc",
        stop_timeout: float = 60.0,
        progress_interval: float = 0.2,
        save_interval: float = 1.0,
    ) -> None:
        super().__init__(driver, machine_id, machine, store, user=user, progress_interval=progress_interval,
                         save_interval=save_interval)
        self.mode = mode
        self.stop_timeout = stop_timeout
        self.report: Report | None = None
        self.engine: StreamEngine | None = None
        self._wake = asyncio.Event()
        self._gate_numbers: list[int] = []
        self._disconnected: str | None = None
        self._cancel_requested = False
        self._tail_started: float | None = None
        self._idle_after_tail = False
        self._max_planner_free = 0
        self._status_count = 0
        self._start_watch(None, None)
        self._watch_from: tuple[Any, Any] = (None, None)

    # ------------------------------------------------------------------ public API

    async def start(
        self,
        program_path: str | Path,
        *,
        check_mode: bool = False,
        from_line: int | None = None,
        on_progress: ProgressCallback | None = None,
        program_name: str | None = None,
        data: bytes | None = None,
    ) -> Job:
        """Check, then start streaming; returns the job once the first bytes may go out.

        Raises InterlockError (nothing created or sent), GateRejected (job recorded as
        failed, nothing sent), ProgramReadError, ResumeError. ``data``: the program's bytes when the
        caller has read them already (a pipe cannot be read twice); else the file is read here.
        """
        if self.running:
            raise InterlockError("busy", f"this runner is already streaming job {self.job.id if self.job else ''}")
        path = Path(program_path)
        self._interlocks(check_mode)
        data = read_program(path) if data is None else data
        name = program_name or path.name
        job = self._create_job(path, data, name, check_mode=check_mode, from_line=from_line)
        try:
            lines, report = await self._gate(data, name, from_line)
            self._interlocks(check_mode)
        except BaseException as exc:
            self._release()
            if job.state == JobState.CHECKING:
                self._finish(JobState.FAILED, message=str(exc))
            raise
        self.report = report
        self.engine = StreamEngine(lines, self.driver.rx_buffer, self.mode)
        self._start_watch(*self._watch_from)
        self._begin(len(lines), report.estimated_seconds, on_progress, mode=self.mode,
                    rx_buffer=self.driver.rx_buffer)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"job-{job.id}")
        return job

    async def hold(self) -> None:
        """Feed hold; nothing new is sent until :meth:`resume`."""
        if not self.running or self.job is None:
            await self.driver.feed_hold()
            return
        if self.engine is not None:
            self.engine.pause()
        await self.driver.feed_hold()
        self._set_holding(True, last_acked_line=self.job.last_acked_line)

    async def resume(self) -> None:
        """Cycle start after a hold; streaming continues."""
        if not self.running or self.job is None:
            await self.driver.cycle_start()
            return
        await self.driver.cycle_start()
        if self.engine is not None:
            self.engine.resume()
        self._set_holding(False)
        self._wake.set()

    async def cancel(self) -> Job | None:
        """Stop the job: feed hold, wait for Hold:0, soft reset, unlock if needed; returns the ended job."""
        if not self.running:
            return self.job
        self._cancel_requested = True
        if self.engine is not None:
            self.engine.stop()
        with contextlib.suppress(LabbridgeError):
            await self.driver.feed_hold()
        self._wake.set()
        return await self.wait()

    # ------------------------------------------------------------------ before streaming

    def _interlocks(self, check_mode: bool) -> None:
        busy = self._other_runner() or getattr(self.driver, "busy_with", None)
        try:
            check_interlocks(self.machine_id, self.machine, self.state, check_mode=check_mode, busy_with=busy)
        except InterlockError as exc:
            self.log.warning("job_refused", interlock=exc.interlock, reason=str(exc))
            if self.job is not None and self.job.state == JobState.CHECKING:
                self._event("job_refused", interlock=exc.interlock, reason=str(exc))
            raise

    async def _gate(self, data: bytes, name: str, from_line: int | None) -> tuple[list[StreamLine], Report]:
        """Check the program (or resume preamble + remainder) with the controller's live offsets and position."""
        reader = getattr(self.driver, "read_parameters", None)
        if reader is not None:
            with contextlib.suppress(LabbridgeError):
                await reader()
        params = getattr(self.driver, "parameters", {}) or {}
        offsets = {k: _vec(v) for k, v in params.items() if k in WORK_OFFSET_CODES}
        pos = self.state.position_machine
        start = _vec(pos.get(a, 0.0) for a in "XYZ") if pos else None
        text_lines = split_lines(data.decode("utf-8", "replace"))  # as the gate and GRBL end lines
        if from_line is None:
            report = await asyncio.to_thread(check_program, data, self.machine, machine_id=self.machine_id,
                                             program_name=name, work_offsets=offsets or None, start=start)
            lines = program_lines(enumerate(text_lines, 1))
            self._gate_numbers = [ln.number for ln in lines]
        else:
            plan = build_resume(text_lines, self.machine, from_line, machine_id=self.machine_id,
                                work_offsets=offsets or None)
            combined = plan.preamble + text_lines[from_line - 1:]
            report = await asyncio.to_thread(check_program, combined, self.machine, machine_id=self.machine_id,
                                             program_name=f"{name} (resumed at line {from_line})",
                                             work_offsets=offsets or None, start=start)
            pre = program_lines(enumerate(plan.preamble, 1), preamble=True)
            rest = program_lines(enumerate(text_lines[from_line - 1:], from_line))
            lines = pre + rest
            n = len(plan.preamble)
            self._gate_numbers = [ln.number if ln.preamble else n + ln.number - from_line + 1 for ln in lines]
            self._event("resume_preamble", from_line=from_line, preamble=plan.preamble, modal=plan.modal)
            if not report.ok:
                report = _renumber(report, n, from_line)
        self._watch_from = (offsets or None, start)
        self._event("gate_checked", ok=report.ok, errors=report.error_count, warnings=len(report.warnings),
                    live_offsets={k: list(v) for k, v in offsets.items()}, start=list(start) if start else None)
        if not report.ok:
            first = report.errors[0].format(report.program) if report.errors else T.NO_DETAILS
            raise GateRejected(T.GATE_LIVE.format(program=name, machine=self.machine_id, count=report.error_count,
                                                  error=first), report)
        if not lines:
            raise GateRejected(T.NOTHING_TO_SEND.format(program=name), report)
        return lines, report

    # ------------------------------------------------------------------ the stream

    async def _run(self) -> None:
        job, driver = self.job, self.driver
        assert job is not None and self.engine is not None
        unsubscribe = driver.subscribe(self._on_event)
        unwatch = self.state.subscribe(self._on_state)
        on_disconnect = getattr(driver, "on_disconnect", None)
        if isinstance(on_disconnect, list):
            on_disconnect.append(self._on_disconnect)
        exclusive = getattr(driver, "exclusive", None)
        guard = exclusive(f"job {job.id}") if exclusive is not None else contextlib.nullcontext()
        heartbeat = asyncio.get_running_loop().create_task(self._heartbeat(), name=f"heartbeat-{job.id}")
        try:
            async with guard:
                try:
                    if job.check_mode:
                        await _maybe_await(driver.set_check_mode(True))
                        self._event("check_mode_on")
                    await self._stream()
                finally:
                    if job.check_mode and self._disconnected is None:
                        await self._leave_check_mode(unsubscribe)
        except ConnectionLost as exc:
            self._interrupted(str(exc))
        except asyncio.CancelledError:
            if not job.state.final:
                self._finish(JobState.INTERRUPTED, message=T.SHUTDOWN)
            raise
        except Exception as exc:  # never leave a job 'running' in the record
            self.log.exception("job_runner_failed")
            if not job.state.final:
                self._finish(JobState.FAILED, message=T.STOPPED_BY_LABBRIDGE.format(error=exc))
        finally:
            heartbeat.cancel()
            unsubscribe()
            unwatch()
            if isinstance(on_disconnect, list) and self._on_disconnect in on_disconnect:
                on_disconnect.remove(self._on_disconnect)
            self._release()
            if not job.state.final:
                self._finish(JobState.FAILED, message=T.NO_RESULT)
            self._publish(force=True)

    async def _stream(self) -> None:
        engine, job = self.engine, self.job
        assert engine is not None and job is not None
        while True:
            if self._disconnected is not None:
                self._interrupted(self._disconnected)
                return
            if self._cancel_requested:
                await self._do_cancel()
                return
            self._send()
            if engine.state == EngineState.FAILED:
                await self._do_failure()
                return
            if engine.state == EngineState.COMPLETED and self._tail_done():
                done = T.ALL_ACKED_CHECK if job.check_mode else T.ALL_ACKED
                self._finish(JobState.COMPLETED, message=done.format(lines=engine.lines_total))
                return
            self._wake.clear()
            await self._wake.wait()

    def _tail_done(self) -> bool:
        """After the last ok: done in check mode, else once GRBL reports Idle with an empty planner."""
        assert self.job is not None
        if self.job.check_mode:
            return True
        if self._tail_started is None:
            self._tail_started = time.monotonic()
            self._idle_after_tail = False
        return self._idle_after_tail

    # ------------------------------------------------------------------ driver callbacks (sync, on the loop)

    def _on_event(self, event: object) -> None:
        engine, job = self.engine, self.job
        if engine is None or job is None:
            return
        if isinstance(event, gp.Status):
            self._status_count += 1
            self._wake.set()
            if event.planner_free is not None:
                self._max_planner_free = max(self._max_planner_free, event.planner_free)
            if self._tail_started is not None and event.state in ("Idle", "Check") and (
                    event.planner_free is None or event.planner_free >= self._max_planner_free):
                self._idle_after_tail = True
                self._wake.set()
            self._watch_status(event)
            return
        outcomes = engine.receive(event)
        if not outcomes:
            return
        for outcome in outcomes:
            if isinstance(outcome, Acked):
                job.lines_acked = engine.acked
                if not outcome.line.preamble:
                    job.last_acked_line = outcome.line.number
            elif isinstance(outcome, Rejected):
                if not job.check_mode:
                    self._send_hold()  # stop motion now, before anything else
                self._record_error(outcome.words, outcome.message, outcome.line)
            elif isinstance(outcome, Alarmed):
                line = engine.last_acked
                self._record_error(outcome.words, outcome.message, None)
                self._event("job_alarm", words=outcome.words, meaning=outcome.message,
                            after=line.where if line else None)
            elif isinstance(outcome, ControllerReset):
                self._event("controller_reset", expected=outcome.expected, lines_lost=outcome.lost)
                if not outcome.expected and job.error_code is None:
                    job.error_code = "reset"
                    job.error_message = T.RESET_DURING.format(lost=outcome.lost)
            elif isinstance(outcome, Completed):
                self._event("job_all_acked", lines=outcome.lines)
        self._refill()
        self._publish()
        self._save()
        self._wake.set()

    def _refill(self) -> None:
        """Send what the freed window allows right here, one loop turn sooner than the stream task would."""
        engine, job = self.engine, self.job
        if engine is None or job is None or not engine.sending or self._cancel_requested or self._disconnected:
            return
        try:
            self._send()
        except ConnectionLost as exc:
            self._disconnected = self._disconnected or str(exc)

    def _on_state(self, state: MachineState, fields: frozenset[str]) -> None:
        if "connected" in fields and not state.connected and self._disconnected is None:
            self._disconnected = state.fault or "the link to the controller was lost"
            self._wake.set()

    def _on_disconnect(self, message: str) -> None:
        if self._disconnected is None:
            self._disconnected = message
        self._wake.set()

    def _send_hold(self) -> None:
        try:
            self.driver.send_realtime(gp.REALTIME["HOLD"])
        except LabbridgeError as exc:
            self._event("feed_hold_failed", reason=str(exc))

    def _record_error(self, words: str, meaning: str, line: StreamLine | None) -> None:
        job = self.job
        assert job is not None
        if job.error_code is not None:
            return  # the first problem is the one that stopped the job
        job.error_code = words
        job.error_message = meaning
        if line is not None:
            job.error_line = None if line.preamble else line.number
            job.error_block = line.text
            self._event("job_line_error", words=words, meaning=meaning, where=line.where, block=line.text,
                        lines_sent=self.engine.lines_sent if self.engine else None)

    # ------------------------------------------------------------------ endings

    async def _leave_check_mode(self, unsubscribe: Callable[[], None]) -> None:
        """``$C`` off once every streamed line is answered (its ok must not be taken for a job line's)."""
        engine = self.engine
        assert engine is not None
        drained = await self._wait_for(lambda _s: engine.in_flight == 0, 10.0)
        unsubscribe()
        try:
            if drained and self.state.state != Status.ALARM:
                await _maybe_await(self.driver.set_check_mode(False))
                self._event("check_mode_off")
            else:
                engine.expect_reset()
                await self.driver.soft_reset()  # a reset leaves check mode too
                self._event("check_mode_off", by="soft reset")
        except LabbridgeError as exc:
            self._event("check_mode_off_failed", level="warning", reason=str(exc))

    async def _wait_for(self, predicate: Callable[[MachineState], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate(self.state):
            if self._disconnected is not None:
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(remaining, 0.25))
        return True

    async def _stop_and_flush(self) -> str:
        """Feed hold, wait until stopped, soft reset (discarding the buffers), unlock if needed. Returns notes."""
        driver, engine = self.driver, self.engine
        assert engine is not None
        notes = []
        # Reports already on the wire when the hold went out may be stale: look only at fresh ones.
        seen = self._status_count
        stopped = await self._wait_for(
            lambda s: self._status_count >= seen + 2 and (
                (s.state == Status.HOLD and s.substate == 0) or s.state in (Status.ALARM, Status.IDLE)),
            self.stop_timeout)
        if self._disconnected is not None:
            raise ConnectionLost(self._disconnected)
        if not stopped:
            notes.append(T.NO_HOLD.format(seconds=f"{self.stop_timeout:.0f}"))
        if self.state.state == Status.ALARM:
            return "; ".join(notes + [T.IN_ALARM])
        engine.expect_reset()
        await driver.soft_reset()
        notes.append(T.SOFT_RESET)
        await self._wait_for(lambda s: s.state in (Status.IDLE, Status.ALARM), 5.0)
        if self.state.state == Status.ALARM:
            alarm = self.state.alarms[-1] if self.state.alarms else None
            await driver.unlock()
            notes.append(T.UNLOCKED.format(alarm=alarm.code) if alarm else T.UNLOCKED_ALARM)
        return "; ".join(notes)

    async def _do_cancel(self) -> None:
        job = self.job
        assert job is not None
        self._event("job_cancel_requested", lines_sent=job.lines_sent, lines_acked=job.lines_acked)
        detail = ""
        if not job.check_mode:
            detail = await self._stop_and_flush()
        job.lines_acked = self.engine.acked if self.engine else job.lines_acked
        where = T.AFTER_LINE.format(line=job.last_acked_line) if job.last_acked_line else T.BEFORE_FIRST_ACK
        self._finish(JobState.CANCELLED, message=T.CANCELLED_DETAIL.format(where=where, detail=detail) if detail
                     else T.CANCELLED.format(where=where))

    async def _do_failure(self) -> None:
        job, engine = self.job, self.engine
        assert job is not None and engine is not None
        failure = engine.failure
        detail = ""
        if isinstance(failure, Rejected) and not job.check_mode:
            try:
                detail = await self._stop_and_flush()
            except LabbridgeError as exc:
                if isinstance(exc, ConnectionLost):
                    raise
                detail = T.COULD_NOT_STOP.format(error=exc)
        if isinstance(failure, Rejected):
            template = T.REJECTED_DETAIL if detail else T.REJECTED
            message = template.format(where=failure.line.where, block=failure.line.text, words=failure.words,
                                      meaning=failure.message, detail=detail)
        elif isinstance(failure, Alarmed):
            after = T.AFTER.format(where=failure.last_acked.where) if failure.last_acked else T.BEFORE_FIRST_ACK
            message = T.ALARMED.format(words=failure.words, meaning=failure.message, after=after)
        elif isinstance(failure, ControllerReset):
            message = T.RESET_FAILED.format(lost=failure.lost, line=job.last_acked_line)
        else:
            message = T.FAILED_DETAIL.format(detail=detail) if detail else T.FAILED
        self._finish(JobState.FAILED, message=message)

    def _interrupted(self, reason: str) -> None:
        job = self.job
        assert job is not None
        if job.state.final:
            return
        job.error_code = job.error_code or "disconnected"
        job.error_message = job.error_message or reason
        last, ran = job.last_acked_line, job.executed_line
        seen = T.LAST_SEEN.format(line=ran) if ran else T.PLANNER_UNSURE
        self._finish(JobState.INTERRUPTED, message=T.CONNECTION_LOST.format(
            reason=reason, acked=T.line_or(last, T.NONE), seen=seen, resume=T.line_or(ran, T.AN_EARLIER_LINE)))

    def _finish(self, state: JobState, *, message: str) -> None:
        job = self.job
        assert job is not None
        if self.engine is not None:
            job.lines_sent = self.engine.lines_sent
            job.lines_acked = self.engine.acked
        notes = self._watch_notes(state)
        super()._finish(state, message=message + (f"; {notes}" if notes else ""))

    # ------------------------------------------------------------------ records and progress

    def _eta(self) -> float | None:
        job, report = self.job, self.report
        if job is None or report is None or self.engine is None:
            return None
        last = self.engine.last_acked
        if last is None:
            return report.estimated_seconds
        index = self.engine.acked - 1
        gate_line = self._gate_numbers[index] if 0 <= index < len(self._gate_numbers) else last.number
        return max(0.0, report.estimated_seconds - report.seconds_until(gate_line))


def _renumber(report: Report, preamble: int, from_line: int) -> Report:
    """Name diagnostics of a resumed check by program line (or preamble line) instead of combined position."""
    from dataclasses import replace

    fixed = []
    for d in report.diagnostics:
        if d.line > preamble:
            fixed.append(replace(d, line=from_line + d.line - preamble - 1))
        else:
            fixed.append(replace(d, message=f"(resume preamble line {d.line}) {d.message}"))
    report.diagnostics = fixed
    return report


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
