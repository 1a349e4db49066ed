"""The running lab behind the web server: per machine a driver, its state and its job runner.

Connecting never blocks the server: each machine has a supervisor task that
connects, watches the link and reconnects with back-off. A machine whose driver
cannot be built or reached shows Disconnected with the reason as its fault text.
In demo mode every machine is first given its simulator and the driver is pointed
at it, so the whole lab runs with no hardware.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from labbridge.config import LabConfig, Machine
from labbridge.drivers.base import (
    Driver, HasDiagnostics, HasSettings, Homes, Jogs, Overrides, Polls, Resets, Resumes, Streams, Unlocks, Unsupported,
)
from labbridge.errors import InterlockError, LabbridgeError
from labbridge.i18n import N_, _, localize, phrase
from labbridge.log import RECENT_EVENTS, get_logger
from labbridge.model import MachineState, Status

#: ``(machine_id, machine, **options) -> (handle, machine pointed at the simulator)``; given by the CLI's demo.
SimulatorFactory = Callable[..., Awaitable[tuple[Any, Machine]]]

log = get_logger()
C = TypeVar("C")


# Command results a person reads (stored English in the audit log; the reply is localized).
RAPID_OVERRIDE = phrase(N_("rapid override {value}%"))
OVERRIDE_SET = phrase(N_("{target} override {value}%"))


class CommandError(LabbridgeError):
    """A machine command could not be carried out (HTTP 409); the message says why."""


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@dataclass
class ConnectionStats:
    attempts: int = 0
    connects: int = 0
    disconnects: int = 0
    last_error: str | None = None
    connected_since: float | None = None
    last_attempt: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class MachineRuntime:
    """Everything the server holds for one machine."""

    machine_id: str
    config: Machine
    state: MachineState
    driver: Driver | None = None
    sim: Any = None
    runner: Any = None
    job_task: asyncio.Task[None] | None = None
    queue_entry: int | None = None
    supervisor: asyncio.Task[None] | None = None
    stats: ConnectionStats = field(default_factory=ConnectionStats)
    unsubscribe: Any = None
    lock: Any = None  # this server's claim on the machine (streaming.ownership.MachineLock)

    @property
    def active_runner(self) -> Any:
        """The job runner while its job is still going, else None."""
        if self.runner is not None and self.job_task is not None and not self.job_task.done():
            return self.runner
        return None


class Lab:
    """Owns drivers, simulators and job runners; the API and the hub only talk to this."""

    def __init__(self, config: LabConfig, store: Any, *, simulators: SimulatorFactory | None = None,
                 data_dir: Path | None = None,
                 sim_options: dict[str, Any] | None = None, connect_timeout: float = 15.0,
                 retry_max: float = 30.0, poll_hz: float | None = None) -> None:
        self.config = config
        self.store = store
        self.simulators = simulators
        self.demo = simulators is not None
        self.data_dir = data_dir
        self.sim_options = sim_options or {}
        self.connect_timeout = connect_timeout
        self.retry_max = retry_max
        self.poll_hz = poll_hz
        self._job_store: Any = None
        self.machines: dict[str, MachineRuntime] = {}
        self.job_listeners: list[Any] = []
        self._stopping = False

    # lifecycle ---------------------------------------------------------------
    async def prepare(self) -> None:
        """Start simulators (demo) and build drivers, so that the hub can subscribe before anything moves."""
        for machine_id, machine in self.config.machines.items():
            state = MachineState(machine=machine_id)
            runtime = MachineRuntime(machine_id, machine, state)
            self.machines[machine_id] = runtime
            if self.demo:
                try:
                    runtime.sim, overrides = await self._start_sim(machine_id, machine)
                    machine = overrides or machine
                    runtime.config = machine
                except Exception as exc:  # a missing simulator must not stop the rest of the lab
                    state.mark_disconnected(f"simulator could not start: {exc}")
                    log.warning("simulator failed", machine=machine_id, error=str(exc))
                    continue
            try:
                runtime.driver = self._build_driver(machine_id, machine, runtime.sim)
                if self.poll_hz and isinstance(runtime.driver, Polls):
                    runtime.driver.poll_hz = self.poll_hz
                runtime.state = runtime.driver.state
            except Exception as exc:
                state.mark_disconnected(f"no driver for {machine.controller}: {exc}")
                log.warning("driver unavailable", machine=machine_id, error=str(exc))
                continue
            runtime.unsubscribe = runtime.state.subscribe(self._alarm_recorder(machine_id))
            if runtime.state.fault is None and not runtime.state.connected:
                runtime.state.update(fault="connecting…")

    async def _start_sim(self, machine_id: str, machine: Machine) -> tuple[Any, Machine | None]:
        opts = dict(self.sim_options.get(machine.controller, {}))
        opts.update(self.sim_options.get(machine_id, {}))
        assert self.simulators is not None
        return await self.simulators(machine_id, machine, **opts)

    @staticmethod
    def _build_driver(machine_id: str, machine: Machine, sim: Any) -> Driver:
        from labbridge.drivers.factory import create_driver

        return create_driver(machine_id, machine)

    async def start(self) -> None:
        from labbridge.server.recovery import recover_interrupted

        recover_interrupted(self)  # jobs a crash left running become interrupted; machines show them
        for runtime in self.machines.values():
            if runtime.driver is not None:
                runtime.supervisor = asyncio.get_running_loop().create_task(
                    self._supervise(runtime), name=f"supervise-{runtime.machine_id}"
                )

    async def stop(self) -> None:
        self._stopping = True
        for runtime in self.machines.values():
            if runtime.job_task is not None and not runtime.job_task.done() and runtime.runner is not None:
                try:  # never leave a machine moving when the server stops
                    await asyncio.wait_for(_maybe_await(runtime.runner.cancel()), 10.0)
                except Exception as exc:
                    log.warning("job cancel on shutdown failed", machine=runtime.machine_id, error=str(exc))
        for runtime in self.machines.values():
            if runtime.driver is not None and runtime.runner is not None and runtime.state.is_moving:
                try:
                    await asyncio.wait_for(_maybe_await(runtime.driver.feed_hold()), 2.0)
                except Exception:
                    pass
            for task in (runtime.supervisor, runtime.job_task):
                if task is not None:
                    task.cancel()
            if runtime.driver is not None:
                try:
                    await asyncio.wait_for(_maybe_await(runtime.driver.close()), 5.0)
                except Exception as exc:
                    log.warning("driver close failed", machine=runtime.machine_id, error=str(exc))
            if runtime.sim is not None:
                try:
                    await _maybe_await(runtime.sim.close())
                except Exception as exc:
                    log.warning("simulator close failed", machine=runtime.machine_id, error=str(exc))
            if runtime.lock is not None:
                runtime.lock.release()

    def _claim(self, runtime: MachineRuntime) -> bool:
        """Own the machine before touching its port; a machine another process owns is left alone."""
        if self.demo or self.data_dir is None:
            return True  # simulated machines are this process's own
        from labbridge.streaming.ownership import MachineBusy, MachineLock

        if runtime.lock is None:
            conn = runtime.config.connection
            port = conn.serial.port if conn.serial else conn.dnc.port if conn.dnc else None
            runtime.lock = MachineLock(self.data_dir, runtime.machine_id, port)
        if runtime.lock.held:
            return True
        try:
            runtime.lock.take()
        except MachineBusy as exc:
            runtime.state.mark_disconnected(f"{exc}; the server connects when it ends")
            runtime.stats.last_error = str(exc)
            log.info("machine owned elsewhere", machine=runtime.machine_id, owner=str(exc))
            return False
        return True

    async def _supervise(self, runtime: MachineRuntime) -> None:
        assert runtime.driver is not None
        delay = 1.0
        stats = runtime.stats
        while not self._stopping:
            if not self._claim(runtime):
                await asyncio.sleep(min(2.0, self.retry_max))  # the owner's run may end any moment
                continue
            stats.attempts += 1
            stats.last_attempt = time.time()
            try:
                await asyncio.wait_for(_maybe_await(runtime.driver.connect()), self.connect_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = str(exc) or type(exc).__name__
                if isinstance(exc, asyncio.TimeoutError):
                    reason = f"no answer within {self.connect_timeout:.0f} s"
                stats.last_error = reason
                runtime.state.mark_disconnected(f"cannot connect: {reason}; retrying in {delay:.0f} s")
                log.info("connect failed", machine=runtime.machine_id, error=reason)
                try:
                    await runtime.driver.close()
                except Exception:
                    pass
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            if runtime.driver.reconnects:
                # Drivers that reconnect by themselves (GRBL's serial link, Modbus, OPC UA) take over from here.
                stats.connects += 1
                stats.connected_since = time.time()
                if runtime.state.fault == "connecting…":
                    runtime.state.update(fault=None)
                log.info("driver started", machine=runtime.machine_id)
                return
            stats.connects += 1
            stats.connected_since = time.time()
            if runtime.state.fault == "connecting…":
                runtime.state.update(fault=None)
            log.info("machine connected", machine=runtime.machine_id)
            while not self._stopping and runtime.state.connected:
                await asyncio.sleep(0.5)
            if self._stopping:
                return
            if time.time() - stats.connected_since > 30:
                delay = 1.0
            stats.disconnects += 1
            stats.connected_since = None
            stats.last_error = runtime.state.fault
            log.warning("machine disconnected", machine=runtime.machine_id, reason=runtime.state.fault)
            try:
                await runtime.driver.close()
            except Exception:
                pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max)

    def _alarm_recorder(self, machine_id: str) -> Any:
        seen: set[tuple[str, float]] = set()

        def record(state: MachineState, fields: frozenset[str]) -> None:
            if "alarms" not in fields:
                return
            for alarm in state.alarms:
                key = (alarm.code, alarm.time)
                if key not in seen:
                    seen.add(key)
                    try:
                        self.store.add_alarm(machine_id, alarm.code, alarm.message, alarm.source, alarm.time)
                    except Exception as exc:
                        log.warning("alarm not recorded", machine=machine_id, error=str(exc))

        return record

    # access ------------------------------------------------------------------
    def runtime(self, machine_id: str) -> MachineRuntime:
        try:
            return self.machines[machine_id]
        except KeyError:
            raise KeyError(machine_id) from None

    def states(self) -> dict[str, MachineState]:
        return {mid: rt.state for mid, rt in self.machines.items()}

    def _connected_driver(self, runtime: MachineRuntime) -> Driver:
        if runtime.driver is None:
            raise CommandError(_("{machine}: no driver ({reason})").format(
                machine=runtime.machine_id, reason=localize(runtime.state.fault) or _("not available")))
        if not runtime.state.connected:
            raise CommandError(_("{machine} is not connected ({reason}); check the cable and the controller's "
                                 "power").format(machine=runtime.machine_id,
                                                 reason=localize(runtime.state.fault) or _("no link")))
        return runtime.driver

    def capable(self, machine_id: str, capability: type[C], what: str) -> C:
        """The machine's connected driver if it has ``capability``; else CommandError saying what is missing."""
        runtime = self.runtime(machine_id)
        driver = self._connected_driver(runtime)
        if not isinstance(driver, capability):
            raise CommandError(_("{machine}: the {controller} driver has no {what}").format(
                machine=machine_id, controller=runtime.config.controller, what=_(what)))
        return driver

    async def _run(self, machine_id: str, what: str, call: Awaitable[Any]) -> Any:
        """Await a driver command; raise CommandError with a readable reason if it cannot run."""
        try:
            return await asyncio.wait_for(_maybe_await(call), 60.0)
        except Unsupported as exc:
            raise CommandError(localize(str(exc))) from None
        except asyncio.TimeoutError:
            raise CommandError(_("{machine}: {what} got no answer within 60 s").format(
                machine=machine_id, what=_(what))) from None
        except LabbridgeError as exc:
            raise CommandError(f"{machine_id}: {localize(str(exc))}") from None

    async def hold(self, machine_id: str) -> str:
        """Stop wins: hold the job if one runs, else feed-hold the controller directly."""
        runtime = self.runtime(machine_id)
        if runtime.active_runner is not None:
            await _maybe_await(runtime.active_runner.hold())
            return N_("job held")
        driver = self.capable(machine_id, Driver, N_("feed hold"))
        await self._run(machine_id, N_("feed hold"), driver.feed_hold())
        return N_("feed hold sent")

    async def resume(self, machine_id: str) -> str:
        runtime = self.runtime(machine_id)
        if runtime.active_runner is not None:
            await _maybe_await(runtime.active_runner.resume())
            return N_("job resumed")
        driver = self.capable(machine_id, Resumes, N_("cycle start"))
        await self._run(machine_id, N_("cycle start"), driver.cycle_start())
        return N_("cycle start sent")

    async def cancel(self, machine_id: str) -> str:
        runtime = self.runtime(machine_id)
        if runtime.active_runner is not None:
            await _maybe_await(runtime.active_runner.cancel())
            return N_("job cancelled")
        if runtime.state.is_moving or runtime.state.state == Status.HOLD:
            await self.reset(machine_id)
            return N_("soft reset sent")
        raise CommandError(_("{machine}: no job is running and the machine is not moving").format(
            machine=machine_id))

    async def home(self, machine_id: str) -> None:
        await self._run(machine_id, N_("home"), self.capable(machine_id, Homes, N_("home")).home())

    async def unlock(self, machine_id: str) -> None:
        await self._run(machine_id, N_("unlock"), self.capable(machine_id, Unlocks, N_("unlock")).unlock())

    async def reset(self, machine_id: str) -> None:
        await self._run(machine_id, N_("soft reset"), self.capable(machine_id, Resets, N_("soft reset")).soft_reset())

    async def jog(self, machine_id: str, moves: dict[str, float], feed: float, relative: bool) -> str:
        driver = self.capable(machine_id, Jogs, N_("jog"))
        await self._run(machine_id, N_("jog"), driver.jog(moves, feed, incremental=relative))
        return "jog " + " ".join(f"{a}{v:g}" for a, v in moves.items())

    async def jog_cancel(self, machine_id: str) -> None:
        await self._run(machine_id, N_("jog cancel"), self.capable(machine_id, Jogs, N_("jog cancel")).jog_cancel())

    async def set_override(self, machine_id: str, target: str, value: int) -> str:
        """Set an override to ``value`` percent with GRBL's realtime steps (reset, then ±10s and ±1s)."""
        prefix = {"feed": "FEED", "spindle": "SPINDLE", "rapid": "RAPID"}[target]
        driver = self.capable(machine_id, Overrides, N_("override"))
        if target == "rapid":
            await self._run(machine_id, N_("override"), driver.override(f"RAPID_{value}"))
            return RAPID_OVERRIDE.format(value=value)
        steps = [f"{prefix}_100"]
        diff = value - 100
        tens, ones = int(diff / 10), diff - 10 * int(diff / 10)
        steps += [f"{prefix}_{'PLUS' if tens > 0 else 'MINUS'}_10"] * abs(tens)
        steps += [f"{prefix}_{'PLUS' if ones > 0 else 'MINUS'}_1"] * abs(ones)
        for name in steps:
            await self._run(machine_id, N_("override"), driver.override(name))
        return OVERRIDE_SET.format(target=target, value=value)

    async def read_settings(self, machine_id: str) -> Any:
        driver = self.capable(machine_id, HasSettings, N_("read settings"))
        return _jsonable(await self._run(machine_id, N_("read settings"), driver.read_settings()))

    async def write_setting(self, machine_id: str, key: str, value: str) -> str:
        number: Any = key.lstrip("$")
        if self.runtime(machine_id).config.controller == "grbl":
            if not number.isdigit():
                raise CommandError(_("{machine}: GRBL settings are numbered, like $110; got {key}").format(
                    machine=machine_id, key=repr(key)))
            number = int(number)
        driver = self.capable(machine_id, HasSettings, N_("write setting"))
        await self._run(machine_id, N_("write setting"), driver.write_setting(number, value))
        return f"${number} = {value}"

    # jobs --------------------------------------------------------------------
    def job_running(self, machine_id: str) -> bool:
        runtime = self.runtime(machine_id)
        return runtime.job_task is not None and not runtime.job_task.done()

    async def start_job(self, machine_id: str, program_path: Path, program_name: str, user: str,
                        entry_id: int | None = None, from_line: int | None = None) -> str | None:
        """Start a checked program (at ``from_line``: resumed); raises InterlockError or CommandError."""
        runtime = self.runtime(machine_id)
        driver = self._connected_driver(runtime)
        if self.job_running(machine_id):
            raise InterlockError("busy", f"{machine_id} is already running a job; wait for it or cancel it")
        if runtime.config.controller == "grbl":
            from labbridge.streaming.runner import JobRunner

            runner: Any = JobRunner(driver, machine_id, runtime.config, self.job_store(), user=user)
        else:
            if not isinstance(driver, Streams) or runtime.config.connection.dnc is None:
                raise CommandError(_("{machine}: no DNC link configured (connection.dnc); programs cannot be "
                                     "sent").format(machine=machine_id))
            from labbridge.streaming.dnc_runner import DncRunner

            runner = DncRunner(driver, machine_id, runtime.config, self.job_store(), user=user,
                               port=driver.dnc_port())
        job = await runner.start(str(program_path), program_name=program_name,
                                 **({"from_line": from_line} if from_line else {}))
        runtime.runner = runner
        runtime.queue_entry = entry_id
        runtime.job_task = asyncio.get_running_loop().create_task(
            self._watch_job(runtime, runner, entry_id), name=f"job-{machine_id}"
        )
        return job.id

    def job_store(self) -> Any:
        """The record of every job, GRBL and DNC alike (shares the server's SQLite file)."""
        if self._job_store is None:
            from labbridge.streaming.records import JobStore

            self._job_store = JobStore(self.store.path)
        return self._job_store

    async def _watch_job(self, runtime: MachineRuntime, runner: Any, entry_id: int | None) -> None:
        outcome, message = "failed", ""
        try:
            job = await runner.wait()
            outcome, message = job.state.value, job.message
        except asyncio.CancelledError:
            outcome, message = "interrupted", "server stopped"
            raise
        except Exception as exc:
            outcome, message = "failed", str(exc) or type(exc).__name__
        finally:
            if entry_id is not None:
                self.store.update_queue(entry_id, state=outcome, finished_at=time.time(), message=message)
            for listener in self.job_listeners:
                listener(runtime.machine_id, entry_id, outcome, message)
            log.info("job finished", machine=runtime.machine_id, outcome=outcome, detail=message)

    # diagnostics -------------------------------------------------------------
    def diagnostics(self, machine_id: str) -> dict[str, Any]:
        runtime = self.runtime(machine_id)
        driver = runtime.driver
        events = [e for e in list(RECENT_EVENTS) if e.get("machine") == machine_id][-100:]
        facts = _jsonable(driver.diagnostics()) if isinstance(driver, HasDiagnostics) else {}
        settings = driver if isinstance(driver, HasSettings) else None
        return {
            "machine": machine_id,
            "controller": runtime.config.controller,
            "settings_described": _jsonable(settings.describe_settings()) if settings else None,
            "firmware": runtime.state.firmware,
            "driver": type(driver).__name__ if driver is not None else None,
            "simulated": runtime.sim is not None,
            "settings": _jsonable(settings.settings) if settings else None,
            "mismatches": _jsonable(settings.mismatches) if settings else None,
            "parameters": facts.get("parameters"),
            "build_info": facts.get("build_info"),
            "connection": {**runtime.stats.to_dict(), "link": facts.get("link"), "fault": runtime.state.fault},
            "alarm_history": self.store.alarms(machine_id),
            "recent_events": _jsonable(events),
        }


def _jsonable(value: Any) -> Any:
    """Driver data (dataclasses, tuples, enums, pydantic models) as JSON-friendly values."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return _jsonable(value.value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)
