"""The GRBL runner's watch over a running job, beyond ``ok`` and ``error``: where the machine really is, stalls
that starve it, and a heartbeat in the record.

A mixin of :class:`~labbridge.streaming.runner.JobRunner` (it uses the runner's
engine, job, driver and record): every line written goes to the
:class:`~labbridge.streaming.execution.ExecutionTracker`, every status report
moves ``executed_line`` and feeds the :class:`~labbridge.streaming.starvation.StallWatch`;
a heartbeat task keeps the record's ``updated_at`` fresh (so that after a crash
it says when the bridge stopped), notices stalls and concludes their judgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from labbridge.errors import LabbridgeError
from labbridge.protocols import grbl as gp
from labbridge.protocols.grbl_stream import EngineState
from labbridge.streaming.execution import ExecutionTracker
from labbridge.streaming.job import JobState
from labbridge.streaming.starvation import BEAT, StallWatch
from labbridge.streaming import texts as T


class ExecutionWatch:
    """Mixin: call ``_start_watch`` when streaming begins, ``_send`` to write, ``_watch_status`` per report."""

    engine: Any
    job: Any
    driver: Any
    machine: Any
    machine_id: str
    log: Any
    _max_planner_free: int
    # and, from the runner: _event(name, **detail), _save(), _refill()

    def _start_watch(self, offsets: dict[str, Any] | None, start: Any) -> None:
        self.tracker = ExecutionTracker(self.machine, self.machine_id, offsets, start)
        self.stalls = StallWatch()
        self._tracked = 0

    # -- writing
    def _send(self) -> None:
        """Write what the window allows, unless a stall is being judged; follow the lines that went."""
        engine, job = self.engine, self.job
        if self.stalls.beat(time.monotonic()):
            self._stall_begins()
            return
        if self.stalls.judging:
            return
        data = engine.data_to_send()
        if not data:
            return
        self.driver.write(data)
        job.lines_sent = engine.lines_sent
        self._follow_sent()

    def _follow_sent(self) -> None:
        engine, job = self.engine, self.job
        for line in engine.lines[self._tracked:engine.lines_sent]:
            if not line.preamble:
                job.last_sent_line = line.number
            if not job.check_mode:
                try:
                    self.tracker.sent(line.number, line.text, line.preamble)
                except Exception:  # the watch must never stop the job
                    self.log.exception("execution_tracker_failed")
        self._tracked = engine.lines_sent

    # -- status reports
    def _watch_status(self, s: gp.Status) -> None:
        engine, job = self.engine, self.job
        if job.check_mode:
            return
        idle = s.state == "Idle"
        drained = idle and (s.planner_free is None or s.planner_free >= self._max_planner_free)
        clean = engine.state in (EngineState.STREAMING, EngineState.PAUSED, EngineState.COMPLETED)
        try:
            executed = self.tracker.report(s.mpos, idle=drained and clean and engine.in_flight == 0,
                                           line_word=s.line)
        except Exception:
            self.log.exception("execution_tracker_failed")
            executed = job.executed_line
        job.executed_line = executed
        self.stalls.status(idle and engine.lines_sent < engine.lines_total, executed)

    # -- heartbeat
    async def _heartbeat(self) -> None:
        """Keep the record fresh, notice stalls, and resume sending once a stall has been judged."""
        while True:
            await asyncio.sleep(BEAT)
            try:
                self._beat(time.monotonic())
            except Exception:  # the heartbeat must outlive any one bad beat
                self.log.exception("job_heartbeat_failed")

    def _beat(self, now: float) -> None:
        if self.stalls.beat(now):
            self._stall_begins()
        elif self.stalls.judging:
            self._poll_status()
        if self.stalls.due(now):
            starved = self.stalls.conclude()
            if starved is not None:
                self._event("stream_starved", level="warning", seconds=round(starved.seconds, 1),
                            line=starved.line, message=starved.message())
            self._refill()
        self._save()

    def _stall_begins(self) -> None:
        self._event("stream_stalled", seconds=round(self.stalls.gap or 0.0, 1),
                     last_sent_line=self.job.last_sent_line)
        self._poll_status()

    def _poll_status(self) -> None:
        with contextlib.suppress(LabbridgeError):
            self.driver.send_realtime(gp.REALTIME["STATUS"])

    def _watch_notes(self, state: JobState) -> str:
        """The job's outcome message tail: starvations, and where the machine really stopped."""
        notes = [s.message() for s in self.stalls.starvations]
        job = self.job
        if state != JobState.COMPLETED and job.executed_line is not None and (
                job.last_acked_line is None or job.executed_line < job.last_acked_line):
            if job.last_acked_line is not None and job.last_acked_line > job.executed_line + 1:
                notes.append(T.STOPPED_ON_NEVER_RAN.format(line=job.executed_line, first=job.executed_line + 1,
                                                           last=job.last_acked_line))
            else:
                notes.append(T.STOPPED_ON.format(line=job.executed_line))
        return "; ".join(notes)
