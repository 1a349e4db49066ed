"""Dry runs: a queued program rehearsed on the machine's digital twin, with the same job runner and events.

The twin is the simulator the demo uses, started for this one run from the
machine's config (envelope, rates, accelerations, offsets) and, for a connected
GRBL, the ``$`` settings and work offsets read from the real controller. It runs
1×, 4× or 16× faster than real time on its own pty/TCP endpoints: it never
touches a real port, and a dry run may go on while the real machine runs a job.
The server never imports labbridge.sim: the CLI hands it the factory
(``ServerSettings.twins``).

The result (outcome, simulated run time next to the gate's estimate, alarms and
errors the twin raised) is stored per queue entry, which then shows "rehearsed".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labbridge.drivers.base import HasSettings, Homes, StreamsLines
from labbridge.errors import LabbridgeError
from labbridge.log import get_logger
from labbridge.model import MachineState, Status
from labbridge.server import twin_dnc

SPEEDS = (1, 4, 16)
BROADCAST_HZ = 10.0
READY_TIMEOUT = 30.0
LABEL = "DRY RUN — the machine does not move"

log = get_logger()

SCHEMA = """
CREATE TABLE IF NOT EXISTS web_rehearsals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id INTEGER NOT NULL,
    machine TEXT NOT NULL,
    speed INTEGER NOT NULL,
    started_by TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    outcome TEXT NOT NULL,
    simulated_seconds REAL,
    estimated_seconds REAL,
    alarms TEXT NOT NULL DEFAULT '[]',
    job_id TEXT,
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS web_rehearsals_entry ON web_rehearsals(entry_id, id);
"""


class DryRunError(LabbridgeError):
    """A dry run cannot start (HTTP 409); the message says why."""


class Rehearsals:
    """The dry-run records, in the server's SQLite file next to the queue."""

    def __init__(self, store: Any) -> None:
        self.store = store
        store.db.ensure_columns((), after=SCHEMA)

    def add(self, entry_id: int, machine: str, speed: int, user: str) -> int:
        """A new dry-run record (StorageFull, answered 507, when the disk cannot take it)."""
        rid = self.store.db.write(
            ("INSERT INTO web_rehearsals(entry_id, machine, speed, started_by, started_at, outcome) "
             "VALUES (?,?,?,?,?, 'running')", (entry_id, machine, speed, user, time.time())),
            defer=False, what="the dry-run record")
        return int(rid or 0)

    def finish(self, rid: int, **fields: Any) -> None:
        """The dry run's outcome (kept in memory while the disk is full)."""
        fields["alarms"] = json.dumps(fields.get("alarms", []))
        sets = ", ".join(f"{k}=?" for k in fields)
        self.store.db.write((f"UPDATE web_rehearsals SET {sets}, finished_at=? WHERE id=?",
                             (*fields.values(), time.time(), rid)), what=f"dry run #{rid}")

    def latest(self, entry_ids: list[int]) -> dict[int, dict[str, Any]]:
        """The newest rehearsal of each entry (entries never rehearsed are absent)."""
        if not entry_ids:
            return {}
        marks = ",".join("?" * len(entry_ids))
        rows = self.store.db.all(
            f"SELECT * FROM web_rehearsals WHERE id IN (SELECT MAX(id) FROM web_rehearsals "
            f"WHERE entry_id IN ({marks}) GROUP BY entry_id)", tuple(entry_ids))
        for row in rows:
            row["alarms"] = json.loads(row["alarms"])
        return {row["entry_id"]: row for row in rows}

    def interrupted(self) -> None:
        """Dry runs left 'running' by a stopped server did not finish."""
        self.store.db.write(("UPDATE web_rehearsals SET outcome='interrupted', message='the server stopped' "
                             "WHERE outcome='running'", ()), what="interrupted dry runs")


@dataclass
class DryRun:
    machine: str
    entry_id: int
    speed: int
    user: str
    program: str
    hash: str
    estimated_seconds: float | None
    record: int
    handle: Any = None
    config: Any = None  # the twin's machine config (its connection points at the simulator)
    driver: Any = None
    runner: Any = None
    task: asyncio.Task[None] | None = None
    started_at: float | None = None
    ended_at: float | None = None  # when the twin's program ended (a DNC tape ends before the control does)
    twin_ran: bool = False  # the twin reported Run since the job started
    held_since: float | None = None
    held_seconds: float = 0.0  # real seconds the twin stood in feed hold (not part of the program's time)
    alarms: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None

    def status(self) -> dict[str, Any]:
        st: MachineState | None = self.driver.state if self.driver is not None else None
        job = st.job if st is not None else None
        return {
            "machine": self.machine, "entry": self.entry_id, "speed": self.speed, "label": LABEL,
            "program": self.program, "hash": self.hash, "state": "finished" if self.result else "running",
            "twin_state": st.state.value if st is not None else "starting",
            "position": st.position_machine if st is not None else None,
            "line": (job.line_number if job else None), "lines_acked": job.lines_acked if job else 0,
            "lines_total": job.lines_total if job else 0, "job_state": job.state if job else None,
            "eta_seconds": job.eta_seconds if job else None, "result": self.result,
        }


class DryRuns:
    """At most one dry run per machine; runs beside (never instead of) the machine's real jobs."""

    def __init__(self, lab: Any, store: Any, hub: Any, twins: Any, options: dict[str, Any] | None = None) -> None:
        self.lab = lab
        self.hub = hub
        self.twins = twins
        self.options = options or {}
        self.records = Rehearsals(store)
        self.records.interrupted()
        self.runs: dict[str, DryRun] = {}

    def status(self, machine: str) -> dict[str, Any] | None:
        run = self.runs.get(machine)
        return run.status() if run is not None else None

    async def start(self, entry: dict[str, Any], path: Path, speed: int, user: str) -> dict[str, Any]:
        machine = entry["machine"]
        if self.twins is None:
            raise DryRunError(f"{machine}: no digital twin is available in this server (start it with "
                              "`labbridge serve`, which provides the simulators)")
        if speed not in SPEEDS:
            raise DryRunError(f"speed must be one of {', '.join(f'{s}x' for s in SPEEDS)}, not {speed}")
        self._idle(machine)
        estimate = await self._gate(entry, path)  # the gate's figure for the config as it is now
        self._idle(machine)  # (another dry run may have started while the gate checked)
        run = DryRun(machine, entry["id"], speed, user, entry["name"], entry["hash"], estimate,
                     self.records.add(entry["id"], machine, speed, user))
        self.runs[machine] = run
        run.task = asyncio.get_running_loop().create_task(self._run(run, path), name=f"dry-run-{machine}")
        return run.status()

    async def _gate(self, entry: dict[str, Any], path: Path) -> float:
        """Check the program against the machine's config as it is now (it may have changed since the entry was
        queued); a rejected program is refused before a twin starts, so no twin gets a byte of it."""
        from labbridge.safety import check_program

        machine = entry["machine"]
        config = self.lab.config.machines.get(machine, self.lab.runtime(machine).config)
        report = await asyncio.to_thread(check_program, path.read_bytes(), config, machine_id=machine,
                                         program_name=entry["name"])
        if not report.ok:
            first = report.errors[0].format(report.program) if report.errors else "see labbridge check"
            raise DryRunError(f"{entry['name']} is rejected by the safety gate for {machine} ({report.error_count} "
                              f"error(s); first: {first}); no twin was started, nothing was sent")
        return float(report.estimated_seconds)

    def _idle(self, machine: str) -> None:
        current = self.runs.get(machine)
        if current is not None and current.result is None:
            raise DryRunError(f"{machine}: a dry run of entry #{current.entry_id} is still going; wait or cancel it")

    def _going(self, machine: str) -> DryRun:
        run = self.runs.get(machine)
        if run is None or run.result is not None:
            raise DryRunError(f"{machine}: no dry run is going")
        return run

    async def hold(self, machine: str) -> str:
        """Feed hold on the twin, with the job runner's hold (the record shows ``holding``) while the runner runs;
        after a DNC tape has gone out, the twin's control still runs its last blocks and is held directly."""
        run = self._going(machine)
        if run.runner is None or not (run.runner.running or run.runner.protocol == "dnc"):
            raise DryRunError(f"{machine}: the dry run has not started its program yet; hold again in a moment")
        if run.runner.running:
            await run.runner.hold()
        else:
            await twin_dnc.TwinControl(run.driver, run.handle).feed_hold()
        return "dry run held"

    async def resume(self, machine: str) -> str:
        """Cycle start on the twin: the runner's resume, or for a Fanuc-style twin the simulated panel's button
        (a real Fanuc-style control resumes only at its panel)."""
        run = self._going(machine)
        if run.runner is None or not (run.runner.running or run.runner.protocol == "dnc"):
            raise DryRunError(f"{machine}: the dry run has no program going to resume")
        if run.runner.protocol == "dnc":
            run.handle.cycle_start()
        else:
            await run.runner.resume()
        return "dry run resumed"

    async def cancel(self, machine: str) -> str:
        run = self._going(machine)
        if run.runner is not None and run.runner.running:
            with contextlib.suppress(Exception):
                await run.runner.cancel()
        elif run.task is not None:  # still starting, or a DNC twin running its last blocks after the tape
            run.task.cancel()
        return "dry run cancelled"

    async def stop(self) -> None:
        for run in self.runs.values():
            if run.task is not None and not run.task.done():
                run.task.cancel()
                with contextlib.suppress(BaseException):
                    await run.task

    # the run ------------------------------------------------------------------------------------------
    async def _run(self, run: DryRun, path: Path) -> None:
        outcome, message, job_id = "failed", "", None
        unsubscribe = None
        try:
            await self._start_twin(run)
            unsubscribe = run.driver.state.subscribe(self._watcher(run))
            await self._ready(run)
            job = await self._start_job(run, path)
            job_id = str(getattr(job, "id", ""))
            if run.runner.protocol != "dnc":
                run.started_at = time.monotonic()  # (a DNC twin's clock starts when it reports Run)
            self._broadcast(run)
            job = await run.runner.wait()
            outcome = str(getattr(job.state, "value", job.state))
            message = str(getattr(job, "message", "") or "")
            if getattr(job, "error_code", None):
                run.alarms.append({"code": job.error_code, "message": job.error_message or "",
                                   "line": job.error_line})
            if outcome == "completed" and run.runner.protocol == "dnc":
                outcome, message = await twin_dnc.run_out(run, message)
            elif outcome == "failed" and run.runner.protocol == "dnc":
                await twin_dnc.alarm_reported(run)  # the tape saw NAK at once; the control's alarm comes by poll
        except asyncio.CancelledError:
            outcome, message = "cancelled", "the dry run was stopped"
            if run.runner is not None and run.runner.running:  # (the runner's task is its own: stop it too)
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(run.runner.cancel(), 10.0)
        except Exception as exc:
            outcome, message = "failed", str(exc) or type(exc).__name__
            log.warning("dry run failed", machine=run.machine, error=message)
        finally:
            if unsubscribe is not None:
                unsubscribe()
            await self._finish(run, outcome, message, job_id)

    async def _start_twin(self, run: DryRun) -> None:
        runtime = self.lab.runtime(run.machine)
        machine = self.lab.config.machines.get(run.machine, runtime.config)
        options: dict[str, Any] = {**self.options.get(machine.controller, {}), "time_scale": float(run.speed)}
        real = runtime.driver
        if machine.controller == "grbl" and real is not None and runtime.state.connected and runtime.sim is None:
            if isinstance(real, HasSettings) and real.settings:
                options["settings"] = dict(real.settings)
            params = real.parameters if isinstance(real, StreamsLines) else {}
            offsets = {k: tuple(v)[:3] for k, v in params.items() if k.startswith("G5") and len(tuple(v)) >= 3}
            if offsets:
                options["offsets"] = offsets
        twin_id = f"{run.machine}/twin"
        run.handle, pointed = await self.twins(twin_id, machine, **options)
        run.config = twin_dnc.twin_links(run.machine, machine, pointed, run.speed)
        from labbridge.drivers.factory import create_driver

        run.driver = create_driver(twin_id, run.config)
        await asyncio.wait_for(run.driver.connect(), READY_TIMEOUT)

    async def _ready(self, run: DryRun) -> None:
        """Wait for the twin to report, home it when its config requires homing (as an operator would)."""
        state = run.driver.state
        deadline = time.monotonic() + READY_TIMEOUT
        while state.state in (Status.UNKNOWN, Status.DISCONNECTED) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        machine = self.lab.runtime(run.machine).config
        if machine.homing_required and state.homed is not True and isinstance(run.driver, Homes):
            await run.driver.home()
        while state.state != Status.IDLE and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def _start_job(self, run: DryRun, path: Path) -> Any:
        machine = self.lab.runtime(run.machine).config
        twin_id = f"{run.machine}/twin"
        name = f"{run.program} (dry run {run.speed}x)"
        if machine.controller == "grbl":
            from labbridge.streaming.runner import JobRunner

            run.runner = JobRunner(run.driver, twin_id, machine, self.lab.job_store(), user=run.user)
            return await run.runner.start(str(path), program_name=name)
        from labbridge.streaming.dnc_runner import DncRunner

        run.runner = DncRunner(twin_dnc.TwinControl(run.driver, run.handle), twin_id, run.config,
                               self.lab.job_store(), user=run.user, port=run.driver.dnc_port())
        return await run.runner.start(path, program_name=name)

    def _watcher(self, run: DryRun) -> Any:
        last = [0.0]
        later: list[asyncio.TimerHandle | None] = [None]
        loop = asyncio.get_running_loop()  # state changes arrive on it (serial reader threads hand over to it)
        seen: set[tuple[str, float]] = set()

        def watch(state: MachineState, fields: frozenset[str]) -> None:
            if state.state == Status.RUN and not run.twin_ran:
                run.twin_ran = True
                if run.started_at is None and run.runner is not None:  # a DNC twin's clock: first Run to Idle,
                    run.started_at = time.monotonic()  # both seen through the same status link
            if state.state == Status.HOLD and run.held_since is None:
                run.held_since = time.monotonic()
            elif state.state != Status.HOLD and run.held_since is not None:
                run.held_seconds += time.monotonic() - run.held_since
                run.held_since = None
            if "alarms" in fields:
                for alarm in state.alarms:
                    if (alarm.code, alarm.time) not in seen:
                        seen.add((alarm.code, alarm.time))
                        run.alarms.append({"code": alarm.code, "message": alarm.message, "line": None})
            now = time.monotonic()
            if now - last[0] >= 1.0 / BROADCAST_HZ:
                last[0] = now
                self._broadcast(run)
            elif later[0] is None:  # too soon: send it a little later, or the last change (a hold) is never told
                later[0] = loop.call_later(last[0] + 1.0 / BROADCAST_HZ - now, trailing)

        def trailing() -> None:
            later[0] = None
            if run.result is None:
                last[0] = time.monotonic()
                self._broadcast(run)

        return watch

    def _broadcast(self, run: DryRun) -> None:
        self.hub.broadcast({"type": "dryrun", **run.status(), "time": time.time()}, run.machine)

    async def _finish(self, run: DryRun, outcome: str, message: str, job_id: str | None) -> None:
        simulated = None
        if run.started_at is not None and outcome == "completed":
            ran = (run.ended_at or time.monotonic()) - run.started_at - run.held_seconds
            simulated = round(max(0.0, ran) * run.speed, 2)
        run.result = {"outcome": outcome, "simulated_seconds": simulated, "estimated_seconds": run.estimated_seconds,
                      "alarms": run.alarms[-20:], "message": message, "speed": run.speed, "job_id": job_id}
        self.records.finish(run.record, outcome=outcome, simulated_seconds=simulated,
                            estimated_seconds=run.estimated_seconds, alarms=run.alarms[-20:], job_id=job_id,
                            message=message)
        for thing in (run.driver, run.handle):  # the twin's driver, then the simulator itself
            if thing is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(_maybe_await(thing.close()), 10.0)
        self._broadcast(run)
        self.hub.broadcast({"type": "queue", "machine": run.machine, "time": time.time()})
        log.info("dry run finished", machine=run.machine, entry=run.entry_id, outcome=outcome,
                 simulated_seconds=simulated, estimated_seconds=run.estimated_seconds)


async def _maybe_await(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future) else value
