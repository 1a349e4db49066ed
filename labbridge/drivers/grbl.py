"""GRBL 1.1 driver: the sans-IO protocol core over the one threaded serial link of labbridge.transports.

The link's reader thread hands serial bytes to the event loop, the parser turns them into events; every
event goes to the MachineState, to a waiting command and to subscribers (the job
runner streams with :meth:`GrblDriver.write` and counts ``ok`` itself through
:meth:`GrblDriver.subscribe`). Works with device paths and pyserial URLs
(``socket://host:port``, ``rfc2217://host:port``).

Line commands (``$H``, ``$$``, MDI) answer in order with the stream, so while a
job streams it holds :meth:`GrblDriver.exclusive` and other line commands are
refused; realtime bytes (hold, resume, reset, overrides, ``?``) always go.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from functools import partial
from typing import Any

from labbridge.config import AXES, Machine
from labbridge.drivers import grbl_settings
from labbridge.drivers import texts as T
from labbridge.protocols.grbl_codes import SETTINGS
from labbridge.protocols.grbl import (
    LINE_MAX,
    REALTIME,
    Alarm,
    Banner,
    Error,
    Event,
    GrblParser,
    Message,
    Ok,
    Options,
    Parameter,
    Probe,
    Setting,
    Status,
    Version,
    clean_line,
)
from labbridge.errors import ConnectionLost, LabbridgeError
from labbridge.log import get_logger
from labbridge.model import MachineState
from labbridge.model import Status as MachineStatus
from labbridge.transports.serial_link import SerialLink

_STATES = {s.value: s for s in MachineStatus}
_OVERRIDES = {k for k in REALTIME if k.startswith(("FEED_", "RAPID_", "SPINDLE_"))} | {"FLOOD", "MIST"}
_POSITION_LOST_ALARMS = {1, 3, 6, 7, 8, 9}
_OWNER: contextvars.ContextVar[str | None] = contextvars.ContextVar("grbl_channel_owner", default=None)


class GrblCommandError(LabbridgeError):
    """GRBL answered a command with ``error:N`` (or an alarm); the message names both."""

    def __init__(self, command: str, code: int, meaning: str, machine: str, alarm: bool = False) -> None:
        if alarm:
            text = f"{machine}: '{command}' raised ALARM:{code} ({meaning}); GRBL now waits for a reset"
        else:
            text = f"{machine}: GRBL refused '{command}' with error {code}: {meaning}"
        super().__init__(text)
        self.command, self.code, self.meaning, self.alarm = command, code, meaning, alarm


class DriverBusy(LabbridgeError):
    """A job holds the line channel; line commands must wait until it ends."""


class GrblDriver:
    """Driver for one GRBL machine (see module notes). ``port`` overrides the config's serial port."""

    def __init__(
        self,
        machine_id: str,
        machine: Machine,
        port: str | None = None,
        *,
        baudrate: int | None = None,
        poll_hz: float = 5.0,
        reconnect: bool = True,
        backoff: tuple[float, float] = (0.5, 5.0),
        banner_timeout: float = 3.0,
        command_timeout: float = 10.0,
        homing_timeout: float = 180.0,
    ) -> None:
        if not 0 < poll_hz <= 10:
            raise ValueError("poll_hz must be above 0 and at most 10 (GRBL recommends no more than 10 Hz)")
        serial_cfg = machine.connection.serial
        self.machine_id = machine_id
        self.config = machine
        self.port = port or (serial_cfg.port if serial_cfg else None)
        self.baudrate = baudrate or (serial_cfg.baudrate if serial_cfg else 115200)
        self.poll_hz = poll_hz
        self.reconnect = reconnect
        self.backoff = backoff
        self.banner_timeout = banner_timeout
        self.command_timeout = command_timeout
        self.homing_timeout = homing_timeout
        self.state = MachineState(machine_id)
        self.log = get_logger(machine=machine_id).bind(driver="grbl")
        self.settings: dict[int, float] = {}
        self.parameters: dict[str, tuple[float, ...]] = {}
        self.probe: Probe | None = None
        self.version: Version | None = None
        self.options: Options | None = None
        self.banner: Banner | None = None
        self.mismatches: list[str] = []
        self.on_disconnect: list[Callable[[str], Any]] = []
        self.busy_with: str | None = None
        self._subscribers: list[Callable[[Event], Any]] = []
        self._link: SerialLink | None = None
        self._generation = 0
        self._parser = GrblParser()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._command_lock = asyncio.Lock()
        self._waiter: tuple[asyncio.Future[list[Event]], list[Event], str] | None = None
        self._banner_seen: asyncio.Event | None = None
        self._status_seen: asyncio.Event | None = None
        self._closing = False
        self._unlock_message = False
        self._last_status = 0.0
        self._silent_reason: str | None = None  # why GRBL answers no status (critical alarm, homing)
        self._stale_fault = False
        self._reports = 0  # status reports parsed on this connection
        self._hold_report: int | None = None  # how many there were when the last feed hold went out
        self.stale_after = 3.0  # seconds without a status report before the state says so

    # ------------------------------------------------------------------ public surface

    @property
    def rx_buffer(self) -> int:
        """GRBL's serial receive buffer: from ``[OPT:]`` when the firmware reports it, else the config."""
        if self.options is not None and self.options.rx_buffer:
            return self.options.rx_buffer
        return self.config.rx_buffer

    @property
    def work_offsets(self) -> dict[str, tuple[float, ...]]:
        return {k: v for k, v in self.parameters.items() if k.startswith("G5")}

    @property
    def connected(self) -> bool:
        return self.state.connected

    @property
    def reconnects(self) -> bool:
        """With ``reconnect`` the driver reopens its own link after a loss (the CLI turns it off)."""
        return self.reconnect

    def diagnostics(self) -> dict[str, Any]:
        """Build (``$I``), parameters (``$#``) and the serial link, for the diagnostics page."""
        parts = [asdict(p) for p in (self.version, self.options) if p is not None]
        build = {k: v for part in parts for k, v in part.items()} or None  # $I: version, info, option codes
        return {
            "build_info": build,
            "parameters": {k: list(v) for k, v in self.parameters.items()},
            "link": {"port": self.port, "baudrate": self.baudrate, "rx_buffer": self.rx_buffer,
                     "poll_hz": self.poll_hz, "busy_with": self.busy_with},
        }

    def describe_settings(self) -> dict[str, dict[str, Any]]:
        """Each ``$n`` with its value, GRBL's name for it and its unit."""
        return grbl_settings.describe(self.settings)

    def subscribe(self, callback: Callable[[Event], Any]) -> Callable[[], None]:
        """Receive every parsed event (on the event loop); returns a function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def write(self, data: bytes) -> None:
        """Put bytes on the wire as they are (the job runner's streaming path). Raises ConnectionLost."""
        link = self._link
        if link is None:
            raise ConnectionLost(T.NOT_CONNECTED.format(machine=self.machine_id, port=self.port))
        try:
            link.write(data)  # a failure has already reported the link lost (on_lost)
        except ConnectionLost as exc:
            raise ConnectionLost(f"{self.machine_id}: {exc}") from None

    @contextlib.asynccontextmanager
    async def exclusive(self, owner: str) -> AsyncIterator[None]:
        """Hold the line channel for a job: line commands from anyone else raise DriverBusy meanwhile.

        Inside the block (and tasks started from it) the owner may still use the driver's line
        commands (check mode, unlock...) — but never while its own streamed lines are unanswered.
        """
        if self.busy_with is not None:
            raise DriverBusy(T.BUSY.format(machine=self.machine_id, job=self.busy_with))
        async with self._command_lock:  # let a command in flight finish first
            self.busy_with = owner
        token = _OWNER.set(owner)
        try:
            yield
        finally:
            _OWNER.reset(token)
            self.busy_with = None

    # ------------------------------------------------------------------ connect / close

    async def connect(self) -> None:
        """Open the port, wait for the banner (soft reset if none), read $I, $$, $#, start polling."""
        if not self.port:
            raise ConnectionLost(T.NO_PORT.format(machine=self.machine_id))
        self._closing = False
        self._loop = asyncio.get_running_loop()
        await self._open_and_handshake()

    async def close(self) -> None:
        self._closing = True
        for task in (self._reconnect_task, self._poll_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._reconnect_task = self._poll_task = None
        self._close_port()
        self._fail_waiter(ConnectionLost(f"{self.machine_id}: the driver was closed"))
        self.state.mark_disconnected("closed")

    async def _open_and_handshake(self) -> None:
        self._close_port()
        self._parser = GrblParser()
        self._banner_seen = asyncio.Event()
        self._status_seen = asyncio.Event()
        self._unlock_message = False
        self._generation += 1
        generation = self._generation
        link = SerialLink(str(self.port), baudrate=self.baudrate, label="GRBL port",
                          on_data=partial(self._on_data, generation), on_lost=partial(self._lost, generation))
        try:
            await link.open()
        except ConnectionLost as exc:
            raise ConnectionLost(f"{self.machine_id}: {exc}") from None
        self._link = link
        try:
            if not await self._wait_event(self._banner_seen, self.banner_timeout) and not await self._alive():
                self.log.warning("grbl_no_banner_soft_reset", port=self.port, waited=self.banner_timeout)
                self.write(REALTIME["RESET"])
                if not await self._wait_event(self._banner_seen, self.banner_timeout):
                    raise ConnectionLost(
                        f"{self.machine_id}: no GRBL welcome message on {self.port} (even after a soft reset): "
                        "check the port, the baud rate and that the controller runs GRBL 1.1")
            await asyncio.sleep(0.05)  # the unlock message, if any, follows the banner at once
            await self.identify()
            await self.read_settings()
            await self.read_parameters()
            self.state.update(connected=True, fault=None, firmware=self._firmware_text())
            if self._unlock_message and self.settings.get(22):
                self.state.update(homed=False)
            self._poll_task = asyncio.get_running_loop().create_task(self._poll(generation))
            if not await self._wait_event(self._status_seen, max(2.0, 3.0 / self.poll_hz)):
                raise ConnectionLost(T.NO_STATUS.format(machine=self.machine_id, port=self.port))
        except BaseException:
            self._close_port()
            raise
        self.log.info("grbl_connected", port=self.port, firmware=self._firmware_text(), rx_buffer=self.rx_buffer,
                      mismatches=len(self.mismatches))

    async def _alive(self) -> bool:
        """No banner (a board that does not reset on open): a GRBL that answers ``?`` is not reset, so that a
        machine left running — spindle on after a crash — is reported as it is, not silently changed."""
        self.write(REALTIME["STATUS"])
        alive = await self._wait_event(self._status_seen, 1.0)
        if alive:
            self.log.warning("grbl_no_banner_answers_status", port=self.port)
        return alive

    def _close_port(self) -> None:
        self._generation += 1
        link, self._link = self._link, None
        if link is not None:
            link.close()
        if self._poll_task is not None and self._poll_task is not asyncio.current_task():
            self._poll_task.cancel()
            self._poll_task = None

    @staticmethod
    async def _wait_event(event: asyncio.Event, timeout: float) -> bool:
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def _firmware_text(self) -> str:
        if self.version is not None:
            version, _, build = self.version.version.rpartition(".")
            if version and build.isdigit():
                return f"Grbl {version} (build {build})"
            return f"Grbl {self.version.version}"
        return f"Grbl {self.banner.version}" if self.banner else "Grbl"

    # ------------------------------------------------------------------ link → parser → state

    def _on_data(self, generation: int, data: bytes) -> None:
        if generation != self._generation:
            return
        for event in self._parser.feed(data):
            self._handle(event)
            for callback in list(self._subscribers):
                try:
                    callback(event)
                except Exception:  # a subscriber's bug must not stop the driver
                    self.log.exception("grbl_subscriber_failed")

    def _lost(self, generation: int, reason: str) -> None:
        if generation != self._generation or self._closing:
            return
        self._close_port()
        message = f"lost the serial link to {self.port}: {reason}"
        self.log.warning("grbl_disconnected", port=self.port, reason=reason)
        self.state.mark_disconnected(message)
        self._fail_waiter(ConnectionLost(f"{self.machine_id}: {message}"))
        for callback in list(self.on_disconnect):
            try:
                callback(message)
            except Exception:
                self.log.exception("grbl_on_disconnect_failed")
        if self.reconnect and self._loop is not None:
            self._reconnect_task = self._loop.create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        delay, limit = self.backoff
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                await self._open_and_handshake()
            except (LabbridgeError, OSError) as exc:
                self.log.info("grbl_reconnect_failed", port=self.port, error=str(exc), retry_in=min(delay * 2, limit))
                self.state.update(fault=f"reconnecting to {self.port}: {exc}")
                delay = min(delay * 2, limit)
                continue
            self.log.info("grbl_reconnected", port=self.port)
            return

    async def _poll(self, generation: int) -> None:
        period = 1.0 / self.poll_hz
        loop = asyncio.get_running_loop()
        self._last_status = loop.time()
        while generation == self._generation:
            with contextlib.suppress(ConnectionLost):
                self.write(REALTIME["STATUS"])
            await asyncio.sleep(period)
            silent = loop.time() - self._last_status
            if silent > self.stale_after and not self._stale_fault and generation == self._generation:
                # GRBL is silent on purpose after a hard/soft limit and during homing; say which.
                reason = self._silent_reason or (
                    f"no status report from GRBL on {self.port} for {silent:.0f} s: check the controller")
                self._stale_fault = True
                self.state.update(fault=reason)

    # ------------------------------------------------------------------ events → state

    def _handle(self, event: Event) -> None:  # noqa: C901 - one branch per event kind
        waiter = self._waiter
        if waiter is not None and not isinstance(event, Status):
            waiter[1].append(event)
        if isinstance(event, Status):
            self._on_status(event)
        elif isinstance(event, Ok | Error):
            if waiter is not None and not waiter[0].done():
                waiter[0].set_result(waiter[1])
        elif isinstance(event, Banner):
            self.banner = event
            self._unlock_message = False
            self._silent_reason = None
            if self._banner_seen is not None:
                self._banner_seen.set()
            if waiter is not None and not waiter[0].done() and waiter[2] not in ("$RST", "$C"):
                waiter[0].set_exception(LabbridgeError(
                    f"{self.machine_id}: GRBL was reset while '{waiter[2]}' was pending; it was not completed"))
        elif isinstance(event, Alarm):
            self.state.raise_alarm(f"ALARM:{event.code}", event.message, source="grbl")
            self.state.update(state=MachineStatus.ALARM)
            if event.code in _POSITION_LOST_ALARMS:
                self.state.update(homed=False)
            if event.code in (1, 2):
                self._silent_reason = (f"GRBL stopped after ALARM:{event.code} ({event.message}) and answers "
                                       "nothing until a soft reset")
            if event.code in (1, 2) and waiter is not None and not waiter[0].done():
                # hard/soft limit: GRBL answers nothing more until a reset
                waiter[0].set_exception(GrblCommandError(waiter[2], event.code, event.message, self.machine_id,
                                                         alarm=True))
        elif isinstance(event, Message):
            if event.text.endswith("to unlock"):
                self._unlock_message = True
        elif isinstance(event, Version):
            self.version = event
        elif isinstance(event, Options):
            self.options = event
        elif isinstance(event, Setting):
            with contextlib.suppress(ValueError, IndexError):  # GRBL 0.9 appends "(comment)"
                self.settings[event.number] = float(event.value.split()[0])
        elif isinstance(event, Parameter):
            self.parameters[event.name] = event.values
        elif isinstance(event, Probe):
            self.probe = event
            self.parameters["PRB"] = event.position

    def _on_status(self, s: Status) -> None:
        self._reports += 1
        axes = self.config.axes

        def as_dict(values: tuple[float, ...] | None) -> dict[str, float] | None:
            if values is None:
                return None
            return {a: v for a, v in zip(AXES, values) if a in axes}
        changes: dict[str, Any] = {
            "state": _STATES.get(s.state, MachineStatus.UNKNOWN),
            "substate": s.substate,
            "position_machine": as_dict(s.mpos),
            "position_work": as_dict(s.wpos),
            "work_offset": as_dict(s.wco),
            "feed": s.feed,
            "spindle_rpm": s.spindle,
            "pins": s.pins,
            "connected": True,
        }
        if s.planner_free is not None:
            changes.update(planner_free=s.planner_free, rx_free=s.rx_free)
        if s.line is not None:
            changes["line_number"] = s.line
        if s.overrides is not None:
            changes.update(override_feed=s.overrides[0], override_rapid=s.overrides[1],
                           override_spindle=s.overrides[2])
            acc = s.accessories
            changes["spindle_direction"] = "cw" if "S" in acc else "ccw" if "C" in acc else "off"
            flood, mist = "F" in acc, "M" in acc
            changes["coolant"] = "both" if flood and mist else "flood" if flood else "mist" if mist else "off"
        if self._stale_fault:
            self._stale_fault = False
            changes["fault"] = None
        if self._loop is not None:
            self._last_status = self._loop.time()
        self.state.update(**changes)
        if self._status_seen is not None:
            self._status_seen.set()

    # ------------------------------------------------------------------ line commands

    async def _command(self, line: str, timeout: float | None = None, *, check: bool = True) -> list[Event]:
        """Send one line and wait for its ``ok``/``error``; the events in between are returned."""
        if self.busy_with is not None and _OWNER.get() != self.busy_with:
            raise DriverBusy(T.BUSY_LINE.format(machine=self.machine_id, job=self.busy_with, line=line))
        cleaned = clean_line(line)
        if len(cleaned) > LINE_MAX:
            raise LabbridgeError(T.LINE_TOO_LONG.format(machine=self.machine_id, line=line, length=len(cleaned),
                                                        limit=LINE_MAX))
        async with self._command_lock:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[list[Event]] = loop.create_future()
            self._waiter = (future, [], cleaned[:4] if cleaned.startswith(("$RST", "$C")) else cleaned)
            try:
                self.write(cleaned.encode("ascii", "replace") + b"\n")
                events = await asyncio.wait_for(future, timeout or self.command_timeout)
            except asyncio.TimeoutError:
                raise LabbridgeError(T.NO_ANSWER.format(machine=self.machine_id, line=cleaned,
                                                        seconds=f"{timeout or self.command_timeout:.0f}")) from None
            finally:
                self._waiter = None
        last = events[-1] if events else None
        if check and isinstance(last, Error):
            raise GrblCommandError(cleaned, last.code, last.message, self.machine_id)
        return events

    def _fail_waiter(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter[0].done():
            waiter[0].set_exception(exc)

    async def identify(self) -> tuple[Version | None, Options | None]:
        """``$I``: version and build options (RX buffer size from ``[OPT:]``)."""
        await self._command("$I")
        return self.version, self.options

    async def read_settings(self) -> dict[int, float]:
        """``$$``: every setting; also recomputes :attr:`mismatches` against the config."""
        self.settings = {}
        await self._command("$$")
        self.mismatches = grbl_settings.mismatches(self.settings, self.config)
        for warning in self.mismatches:
            self.log.warning("grbl_setting_mismatch", detail=warning)
        return dict(self.settings)

    async def read_parameters(self) -> dict[str, tuple[float, ...]]:
        """``$#``: work offsets G54..G59, G28/G30, G92, TLO and the last probe."""
        await self._command("$#")
        return dict(self.parameters)

    async def write_setting(self, number: int, value: float | int | str) -> None:
        """``$n=value`` (an EEPROM write: sent alone, answered before anything else goes)."""
        if number not in SETTINGS:
            raise LabbridgeError(T.NOT_A_SETTING.format(machine=self.machine_id, number=number))
        await self._command(f"${number}={value}")
        await self.read_settings()

    async def mdi(self, line: str) -> list[Event]:
        """Send one line (MDI); returns the events up to and including its ``ok``/``error``."""
        return await self._command(line, check=False)

    async def home(self) -> None:
        """``$H``: homing cycle (GRBL answers only when it is done, and sends no status meanwhile)."""
        self.state.update(state=MachineStatus.HOME)
        self._silent_reason = "homing: GRBL sends no status until the cycle ends"
        try:
            await self._command("$H", self.homing_timeout)
        finally:
            if self._silent_reason and self._silent_reason.startswith("homing"):
                self._silent_reason = None
        self.state.update(homed=True)
        self.state.clear_alarms()

    async def unlock(self) -> None:
        """``$X``: clear the alarm lock without homing (position may be wrong: the operator decides)."""
        await self._command("$X")
        self.state.clear_alarms()

    async def jog(self, axis_words: dict[str, float], feed: float, *, incremental: bool = True,
                  machine_coordinates: bool = False) -> None:
        """``$J=``: jog by (or to) the given axis words at ``feed`` mm/min; cancel with :meth:`jog_cancel`."""
        bad = [a for a in axis_words if a.upper() not in self.config.axes]
        if bad or not axis_words:
            raise LabbridgeError(T.JOG_AXES.format(machine=self.machine_id, axes=", ".join(self.config.axes)))
        if feed <= 0:
            raise LabbridgeError(T.JOG_FEED.format(machine=self.machine_id))
        words = " ".join(f"{a.upper()}{v:.3f}" for a, v in axis_words.items())
        mode = "G53" if machine_coordinates else "G91" if incremental else "G90"
        await self._command(f"$J=G21 {mode} {words} F{feed:.0f}")

    async def set_check_mode(self, on: bool) -> None:
        """``$C`` on or off (GRBL resets itself when check mode ends)."""
        in_check = self.state.state == MachineStatus.CHECK
        if on == in_check:
            return
        banner = asyncio.Event()
        if not on:
            self._banner_seen = banner
        await self._command("$C")
        if not on:
            await self._wait_event(banner, self.banner_timeout)
        self.state.update(state=MachineStatus.CHECK if on else MachineStatus.IDLE)

    # ------------------------------------------------------------------ realtime commands

    def send_realtime(self, byte: bytes) -> None:
        if byte not in REALTIME.values():
            raise LabbridgeError(f"{self.machine_id}: {byte!r} is not a GRBL realtime command")
        self.write(byte)

    async def feed_hold(self) -> None:
        self.send_realtime(REALTIME["HOLD"])
        self._hold_report = self._reports

    async def cycle_start(self, settle_timeout: float = 10.0) -> None:
        """Cycle start. GRBL ignores ``~`` while a hold is still decelerating (``Hold:1``; protocol.c resumes
        only with SUSPEND_HOLD_COMPLETE), so a resume pressed early waits for a fresh ``Hold:0`` first."""
        deadline = time.monotonic() + settle_timeout
        while self._link is not None and time.monotonic() < deadline:
            fresh = self._hold_report is None or self._reports >= self._hold_report + 2
            if fresh and not (self.state.state == MachineStatus.HOLD and self.state.substate == 1):
                break
            await asyncio.sleep(0.02)
        self.send_realtime(REALTIME["RESUME"])

    async def jog_cancel(self) -> None:
        self.send_realtime(REALTIME["JOG_CANCEL"])

    async def soft_reset(self, wait: bool = True) -> None:
        """Ctrl-X: GRBL stops at once and discards everything buffered; waits for its banner."""
        banner = asyncio.Event()
        self._banner_seen = banner
        self.send_realtime(REALTIME["RESET"])
        if wait and not await self._wait_event(banner, self.banner_timeout):
            raise LabbridgeError(T.NO_RESTART.format(machine=self.machine_id))

    async def override(self, name: str) -> None:
        """An override byte by name: FEED_100, FEED_PLUS_10, RAPID_50, SPINDLE_STOP, FLOOD, ..."""
        if name not in _OVERRIDES:
            raise LabbridgeError(f"{self.machine_id}: unknown override {name!r}; use one of {', '.join(sorted(_OVERRIDES))}")
        self.send_realtime(REALTIME[name])
