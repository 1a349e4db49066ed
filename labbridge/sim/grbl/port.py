"""The GRBL simulator on a pseudo-terminal: any GRBL sender opens its device path like a USB port.

A thread owns the pty master and paces bytes in both directions at the serial
byte rate (10 bits per byte), so character counting, RX overflow and send-response
round trips behave as on a real 115200-baud link. Opening the port resets the
simulated Arduino (as DTR does on an Uno), so a sender sees a fresh banner.

Options:
- ``baud``: serial rate used for pacing (default 115200).
- ``time_scale``: simulated firmware seconds per wall-clock second (motion, dwell,
  homing, EEPROM writes); 10 makes a 1-minute move take 6 s. The serial link is
  never scaled.
- ``latency_ms``: extra delay on every device-to-host delivery, modelling a
  USB-serial adapter's latency timer (FTDI default 16 ms); off by default.
- ``factory_defaults``: GRBL's stock ``$`` values (as in a fresh ``$RST=$``)
  instead of values matching the machine's config.
- ``link``: a symlink kept pointing at the current device (like /dev/serial/by-id),
  so a driver can find the machine again after :meth:`GrblSimulator.replug`.
- ``settings`` / ``offsets``: ``$`` values and work offsets read from a real controller,
  stored over the config's (a digital twin of that controller).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import select
import threading
import time
import tty
from collections import deque
from dataclasses import dataclass
from typing import Any

from labbridge.config import Machine
from labbridge.sim.grbl.firmware import FirmwareOptions, GrblFirmware
from labbridge.sim.grbl.settings import Eeprom
from labbridge.log import get_logger

OUTBOUND_LIMIT = 65536  # bytes held for a host that does not read
BOOT_SECONDS = 0.1  # simulated bootloader time after a port open (an Uno takes ~0.5-2 s)


@dataclass
class SimOptions:
    baud: int = 115200
    time_scale: float = 1.0
    latency_ms: float = 0.0
    factory_defaults: bool = False
    rx_buffer: int = 128
    line_ms: float = 0.0  # firmware time to parse one line (real AVR: ~2-3 ms); 0 = instant
    reset_on_open: bool = True
    link: str | None = None
    settings: dict[int, float] | None = None
    offsets: dict[str, tuple[float, float, float]] | None = None


class GrblSimulator:
    """A simulated GRBL 1.1h on a pty, run by a background thread (usable with or without asyncio)."""

    def __init__(self, machine_id: str, machine: Machine, options: SimOptions | None = None, **opts: Any) -> None:
        self.machine_id = machine_id
        self.options = options or SimOptions(**opts)
        o = self.options
        eeprom = Eeprom() if o.factory_defaults else Eeprom.from_machine(machine)
        for number, value in (o.settings or {}).items():
            eeprom.store(int(number), float(value))
        eeprom.offsets.update({k: tuple(v) for k, v in (o.offsets or {}).items() if k in eeprom.offsets})
        fw_opts = FirmwareOptions(rx_buffer=o.rx_buffer, line_seconds=o.line_ms / 1000.0)
        self.firmware = GrblFirmware(machine, eeprom, fw_opts)
        self.firmware.take_output()  # power-up banner: nobody is listening yet
        self.log = get_logger(machine=machine_id)
        self._lock = threading.RLock()
        self._byte_time = 10.0 / o.baud
        self._master: int | None = None
        self._slave_path: str | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._inbound: deque[tuple[float, int]] = deque()
        self._outbound: deque[tuple[float, int]] = deque()
        self._rx_wire_free = 0.0
        self._tx_wire_free = 0.0
        self._host_open = False
        self._boot_until: float | None = None
        self._t0 = time.monotonic()
        self.bytes_in = 0
        self.bytes_out = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> str:
        """The device path a sender opens (the link if one was asked for)."""
        if self.options.link:
            return self.options.link
        if self._slave_path is None:
            raise RuntimeError("simulator not started")
        return self._slave_path

    @property
    def device(self) -> str | None:
        return self._slave_path

    def start(self) -> str:
        self._open_pty()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"grbl-sim-{self.machine_id}", daemon=True)
        self._thread.start()
        self.log.info("grbl_sim_started", port=self.port, device=self._slave_path, baud=self.options.baud,
                      time_scale=self.options.time_scale, latency_ms=self.options.latency_ms)
        return self.port

    def close(self) -> None:
        """Stop the thread and remove the device (a sender sees the port vanish)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._close_pty()
        if self.options.link:
            with contextlib.suppress(OSError):
                os.unlink(self.options.link)
        self.log.info("grbl_sim_stopped")

    def unplug(self) -> None:
        """Pull the USB cable: the device disappears; the controller keeps its state."""
        with self._lock:
            self._close_pty()

    def replug(self) -> str:
        """Plug back in: a new device appears (the link, if any, follows it)."""
        with self._lock:
            self._open_pty()
        return self.port

    def __enter__(self) -> GrblSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ test and demo hooks

    def set_pin(self, letter: str, active: bool) -> None:
        """Drive an input pin: ``D`` door, ``P`` probe, ``X``/``Y``/``Z`` limit switches."""
        with self._lock:
            self.firmware.set_pin(letter, active)

    def snapshot(self) -> dict[str, Any]:
        """The simulated machine's truth (for tests): state, position, homed, planner, rx."""
        with self._lock:
            fw = self.firmware
            return {
                "state": fw.state_text(), "position": tuple(fw.stepper.position), "homed": fw.homed,
                "planner": len(fw.stepper.blocks), "rx": len(fw.rx), "settings": dict(fw.eeprom.settings),
                "offsets": dict(fw.eeprom.offsets), "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
            }

    # ------------------------------------------------------------------ pty

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        path = os.ttyname(slave)
        os.set_blocking(master, False)
        # Close our slave end: while no sender has the device open, reads on the master fail with EIO,
        # which is how an open (a "DTR reset") is noticed.
        os.close(slave)
        self._master, self._slave_path = master, path
        self._host_open = False
        if self.options.link:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.options.link)
            os.symlink(path, self.options.link)

    def _close_pty(self) -> None:
        if self._master is not None:
            with contextlib.suppress(OSError):
                os.close(self._master)
        self._master = None
        self._host_open = False
        self._inbound.clear()
        self._outbound.clear()

    # ------------------------------------------------------------------ the pump

    def _sim_time(self, now: float) -> float:
        return (now - self._t0) * self.options.time_scale

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                timeout = self._pump()
                self._wait(timeout)
        except Exception:  # pragma: no cover - a simulator bug must be visible, not silent
            self.log.exception("grbl_sim_crashed")
            raise

    def _wait(self, timeout: float) -> None:
        master = self._master
        if master is None or not self._host_open:
            time.sleep(min(timeout, 0.01))
            return
        with contextlib.suppress(OSError, ValueError):
            select.select([master], [], [], max(0.0, timeout))

    def _pump(self) -> float:
        """One round: read, deliver due bytes, run the firmware, write due bytes. Returns the next wait."""
        with self._lock:
            now = time.monotonic()
            self._read(now)
            fw = self.firmware
            if self._boot_until is not None:
                if now < self._boot_until:
                    self._inbound.clear()  # the bootloader swallows what arrives meanwhile
                    return 0.005
                self._boot_until = None
                fw.power_cycle()
            while self._inbound and self._inbound[0][0] <= now:
                _, b = self._inbound.popleft()
                fw.receive(bytes((b,)))
                fw.step(self._sim_time(time.monotonic()))
            # bytes still in GRBL's TX buffer (not yet serialised); latency delays delivery, not the UART
            fw.tx_pending = max(0, int((self._tx_wire_free - now) / self._byte_time))
            fw.step(self._sim_time(now))
            data = fw.take_output()
            if data and self._host_open:
                latency = self.options.latency_ms / 1000.0
                t = max(self._tx_wire_free, now)
                for b in data:
                    t += self._byte_time
                    self._outbound.append((t + latency, b))
                self._tx_wire_free = t
            self._write(now)
            next_due = 0.005
            if fw.wake_at is not None:
                next_due = min(next_due, (fw.wake_at - self._sim_time(now)) / self.options.time_scale)
            if fw.task_blocking and fw.stepper.busy:
                next_due = min(next_due, 0.002)  # a line waits for planner room
            if self._inbound:
                next_due = min(next_due, self._inbound[0][0] - now)
            if self._outbound:
                next_due = min(next_due, self._outbound[0][0] - now)
            return max(next_due, 0.0005)

    def _read(self, now: float) -> None:
        master = self._master
        if master is None:
            return
        try:
            data = os.read(master, 4096)
        except BlockingIOError:
            data = b""
            if not self._host_open:
                self._on_host_open(now)
        except OSError as exc:
            if exc.errno == errno.EIO:  # no sender has the device open
                if self._host_open:
                    self._host_open = False
                    self._outbound.clear()
                    self._inbound.clear()
                return
            raise
        if not data:
            return
        if not self._host_open:
            self._on_host_open(now)
        self.bytes_in += len(data)
        t = max(self._rx_wire_free, now)
        for b in data:
            t += self._byte_time
            self._inbound.append((t, b))
        self._rx_wire_free = t

    def _on_host_open(self, now: float) -> None:
        self._host_open = True
        self._outbound.clear()
        self._tx_wire_free = now
        if self.options.reset_on_open:
            # The Arduino resets when the port opens and its bootloader runs briefly; the delay also
            # lets the sender finish opening (pyserial flushes its input on open).
            self._boot_until = now + BOOT_SECONDS

    def _write(self, now: float) -> None:
        master = self._master
        if master is None or not self._outbound:
            return
        chunk = bytearray()
        while self._outbound and self._outbound[0][0] <= now:
            chunk.append(self._outbound.popleft()[1])
        if not chunk:
            return
        try:
            written = os.write(master, bytes(chunk))
        except BlockingIOError:
            written = 0
        except OSError:
            return
        self.bytes_out += written
        if written < len(chunk) and len(self._outbound) < OUTBOUND_LIMIT:
            # The host's tty buffer is full: keep the rest for the next round (up to a limit, beyond
            # which, like a UART feeding a host that never reads, bytes are lost).
            self._outbound.extendleft((now, b) for b in reversed(chunk[written:]))


async def start_grbl_sim(machine_id: str, machine: Machine, **opts: Any) -> AsyncGrblSim:
    """Start a simulator from inside an event loop; ``await handle.close()`` stops it."""
    sim = GrblSimulator(machine_id, machine, **opts)
    await asyncio.to_thread(sim.start)
    return AsyncGrblSim(sim)


class AsyncGrblSim:
    """Asyncio-friendly handle: ``.port``, ``await .close()``, and the simulator as ``.sim``."""

    def __init__(self, sim: GrblSimulator) -> None:
        self.sim = sim

    @property
    def port(self) -> str:
        return self.sim.port

    async def close(self) -> None:
        await asyncio.to_thread(self.sim.close)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sim, name)
