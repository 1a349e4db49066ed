"""What the lab tells headquarters happened: audit entries, alarms, connections and jobs, as outbox events.

Three seams, no more: the audit writer's listeners (every command with its user and outcome), each
machine's ``MachineState`` listeners (alarms raised and cleared, connection lost and restored, a
job starting and passing each 10%), and the lab's job listeners (a job finishing, with its outcome
and line). Listeners run in whichever task or thread changed the state; they only append to the
outbox, which is thread-safe.

Kinds: ``audit``, ``job.queued``, ``job.started``, ``job.progress``, ``job.finished``,
``alarm.raised``, ``alarm.cleared``, ``connection.lost``, ``connection.restored``,
``approval.requested``, ``approval.decided`` (written by ``approvals``) and ``gap`` (``outbox``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labbridge.fleet.outbox import Outbox
from labbridge.log import get_logger
from labbridge.model import MachineState

log = get_logger()


@dataclass
class _Seen:
    """What the last state change of one machine looked like, to tell what is new."""

    connected: bool | None = None
    alarms: dict[tuple[str, float], dict[str, Any]] = field(default_factory=dict)
    job_id: str | None = None
    decile: int = 0
    job: dict[str, Any] = field(default_factory=dict)


class EventSource:
    """Feeds the outbox from the audit log, the machines' states and the job ends."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._seen: dict[str, _Seen] = {}
        self._unsubscribe: list[Callable[[], None]] = []

    def _emit(self, kind: str, machine: str | None, **fields: Any) -> None:
        try:
            self.outbox.append(kind, machine, **fields)
        except Exception as exc:  # a full disk must not break the command that caused the event
            log.warning("fleet event not stored", kind=kind, machine=machine, error=str(exc))

    # audit -------------------------------------------------------------------
    def on_audit(self, entry: dict[str, Any]) -> None:
        machine = entry.get("machine")
        self._emit("audit", machine, user=entry.get("username"), action=entry.get("action"),
                   outcome=entry.get("outcome"), detail=entry.get("detail", ""))
        if entry.get("action") == "queue.submit" and entry.get("outcome") == "ok":
            self._emit("job.queued", machine, user=entry.get("username"), detail=entry.get("detail", ""))

    # machine states ----------------------------------------------------------
    def watch(self, states: dict[str, MachineState]) -> None:
        for machine, state in states.items():
            self._seen[machine] = seen = _Seen(connected=state.connected)
            seen.alarms = {(a.code, a.time): {"code": a.code, "message": a.message, "source": a.source}
                           for a in state.alarms}
            self._unsubscribe.append(state.subscribe(self._on_state))

    def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()

    def _on_state(self, state: MachineState, fields: frozenset[str]) -> None:
        seen = self._seen.setdefault(state.machine, _Seen())
        if "connected" in fields:
            self._connection(state, seen)
        if "alarms" in fields:
            self._alarms(state, seen)
        if "job" in fields:
            self._job(state, seen)

    def _connection(self, state: MachineState, seen: _Seen) -> None:
        if state.connected and seen.connected is not True:
            self._emit("connection.restored", state.machine, firmware=state.firmware)
        elif not state.connected and seen.connected:
            self._emit("connection.lost", state.machine, reason=state.fault or "link lost")
        seen.connected = state.connected

    def _alarms(self, state: MachineState, seen: _Seen) -> None:
        now = {(a.code, a.time): {"code": a.code, "message": a.message, "source": a.source} for a in state.alarms}
        for key, alarm in now.items():
            if key not in seen.alarms:
                self._emit("alarm.raised", state.machine, **alarm)
        for key, alarm in seen.alarms.items():
            if key not in now:
                self._emit("alarm.cleared", state.machine, code=alarm["code"], message=alarm["message"])
        seen.alarms = now

    def _job(self, state: MachineState, seen: _Seen) -> None:
        job = state.job
        if job is None:
            return
        if job.job_id != seen.job_id:
            seen.job_id, seen.decile = job.job_id, 0
            self._emit("job.started", state.machine, job_id=job.job_id, program=job.program,
                       lines_total=job.lines_total)
        seen.job = {"job_id": job.job_id, "program": job.program, "line": job.line_number,
                    "lines_acked": job.lines_acked, "lines_total": job.lines_total}
        decile = min(10, int(job.fraction * 10))
        if 0 < decile < 10 and decile > seen.decile:
            seen.decile = decile
            self._emit("job.progress", state.machine, job_id=job.job_id, percent=decile * 10,
                       line=job.line_number, lines_acked=job.lines_acked, lines_total=job.lines_total)

    # job ends ------------------------------------------------------------------
    def on_job_finished(self, machine: str, entry_id: int | None, outcome: str, message: str) -> None:
        last = self._seen.get(machine, _Seen()).job
        self._emit("job.finished", machine, entry=entry_id, outcome=outcome, message=message,
                   job_id=last.get("job_id"), program=last.get("program"), line=last.get("line"),
                   lines_acked=last.get("lines_acked"), lines_total=last.get("lines_total"))
