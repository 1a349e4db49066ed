"""Thin asyncio transport around the DNC cores: a pyserial port read by a small thread.

The port is opened with the operating system's XON/XOFF handling *off* even when
the machine uses XON/XOFF: labbridge must see DC1/DC3 itself (the first DC1 starts
the transfer, a DC3 that never ends is a timeout to report). A reader thread is
used instead of ``add_reader`` so pyserial URLs (``socket://``, ``rfc2217://``) work too.
"""

from __future__ import annotations

import asyncio
import os
import termios
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import serial

from labbridge.config import DncConnection
from labbridge.protocols import dnc as dp
from labbridge.protocols.dnc_pacing import char_time
from labbridge.errors import ConnectionLost, LabbridgeError
from labbridge.transports import exclusive

_PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}


class DncError(LabbridgeError):
    """A drip-feed or punch-out did not complete; the message names the last block."""


class DncAborted(DncError):
    """The control sent NAK or SYN (alarm or reset)."""


class DncTimeout(DncError):
    """The control did not send DC1 in time, or stayed paused (DC3) too long."""


class DncLinkLost(ConnectionLost):
    """The serial port went away mid-transfer (cable pulled, USB adapter reset)."""


class SerialLink:
    """One open serial port: ``read()`` with a timeout, ``write()`` without blocking the loop."""

    def __init__(self, port: str, settings: DncConnection) -> None:
        self.port = port
        self.settings = settings
        self._serial: Any = None
        self._queue: asyncio.Queue[bytes | Exception] = asyncio.Queue()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lost: Exception | None = None

    async def open(self) -> None:
        s = self.settings
        line = {"bytesize": s.bytesize, "parity": _PARITY[s.parity], "stopbits": s.stopbits}
        try:
            self._serial = self._open(line)
        except termios.error:
            # A pseudo-terminal (simulator, virtual port) has no byte size or parity: Linux refuses a
            # tcsetattr that changes only those with EINVAL. The line is ideal anyway; open it plainly.
            if not os.path.realpath(self.port).startswith("/dev/pts/"):
                raise DncLinkLost(f"cannot set {s.bytesize}{s.parity}{s.stopbits} on {self.port}") from None
            self._serial = self._open({"bytesize": 8, "parity": serial.PARITY_NONE, "stopbits": s.stopbits})
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._reader, args=(loop,), name=f"dnc-{self.port}", daemon=True)
        self._thread.start()

    def _open(self, line: dict[str, Any]) -> Any:
        s = self.settings
        try:
            return exclusive.serial_for_url(
                self.port,
                baudrate=s.baudrate,
                xonxoff=False,
                rtscts=False,
                timeout=0.05,
                write_timeout=max(s.stall_timeout, 1.0),
                **line,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            if exclusive.is_lock_failure(exc):
                raise DncLinkLost(exclusive.busy_message(self.port)) from None
            raise DncLinkLost(
                f"cannot open DNC port {self.port}: {exc}; check the cable/adapter and the port in machines.yaml"
            ) from None

    def _reader(self, loop: asyncio.AbstractEventLoop) -> None:
        while not self._stop.is_set():
            try:
                # What is there, at once: read(256) would wait up to the port timeout to fill 256 bytes,
                # and a DC3 waiting 50 ms lets 40 more characters out at 9600 baud.
                data = self._serial.read(self._serial.in_waiting or 1)
            except Exception as exc:  # the port vanished: report once, then stop
                if not self._stop.is_set():
                    loop.call_soon_threadsafe(self._queue.put_nowait, exc)
                return
            if data:
                loop.call_soon_threadsafe(self._queue.put_nowait, bytes(data))

    async def read(self, timeout: float) -> bytes:
        """Whatever arrived within ``timeout`` seconds (b"" if nothing)."""
        chunks: list[bytes] = []
        try:
            if timeout > 0 and self._queue.empty():
                item = await asyncio.wait_for(self._queue.get(), timeout)
            else:
                item = self._queue.get_nowait()
            self._take(item, chunks)
            while not self._queue.empty():
                self._take(self._queue.get_nowait(), chunks)
        except (asyncio.TimeoutError, asyncio.QueueEmpty):
            pass
        return b"".join(chunks)

    def _take(self, item: bytes | Exception, chunks: list[bytes]) -> None:
        if isinstance(item, Exception):
            raise DncLinkLost(f"DNC port {self.port} failed: {item}")
        chunks.append(item)

    async def write(self, data: bytes) -> None:
        try:
            await asyncio.to_thread(self._serial.write, data)
        except (serial.SerialException, OSError) as exc:
            raise DncLinkLost(f"writing to DNC port {self.port} failed: {exc}") from None

    def write_now(self, data: bytes) -> None:
        """Write a few bytes from the loop itself: a paced sender writes only once the line has drained,
        so the port takes them at once (a thread hop per chunk would cost more than the chunk's line time)."""
        try:
            self._serial.write(data)
        except (serial.SerialException, OSError) as exc:
            raise DncLinkLost(f"writing to DNC port {self.port} failed: {exc}") from None

    def char_seconds(self, count: int) -> float:
        """Time the line needs for ``count`` characters (start, data, parity, stop bits)."""
        s = self.settings
        return count * char_time(s.baudrate, s.bytesize, s.parity, s.stopbits)

    async def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 1.0)
        if self._serial is not None:
            try:
                self._serial.close()
            except Exception:
                pass


ProgressCallback = Callable[[dp.DncSender], Awaitable[None] | None]


async def drip_feed(
    link: SerialLink,
    sender: dp.DncSender,
    *,
    on_event: Callable[[dp.SendEvent], None] | None = None,
    on_progress: ProgressCallback | None = None,
    grace: float = 0.3,
) -> None:
    """Run ``sender`` over ``link`` until the tape is out; raise a DncError on abort or timeout.

    After each chunk the line time is waited and the input is read, so a DC3 is
    seen within one chunk. ``grace`` seconds after the last byte a NAK is still
    reported (the control may alarm on the final blocks).
    """
    try:
        await _drip_feed(link, sender, on_event, on_progress, grace)
    except DncLinkLost as exc:
        raise DncLinkLost(f"{exc}; {sender.where()}") from None


async def _drip_feed(
    link: SerialLink,
    sender: dp.DncSender,
    on_event: Callable[[dp.SendEvent], None] | None,
    on_progress: ProgressCallback | None,
    grace: float,
) -> None:
    last_blocks = -1

    def handle(events: list[dp.SendEvent]) -> None:
        for event in events:
            if on_event is not None:
                on_event(event)
            if isinstance(event, dp.Aborted):
                raise (DncAborted if event.code in ("NAK", "SYN") else DncTimeout)(event.reason)

    while sender.state not in (dp.SendState.DONE, dp.SendState.ABORTED):
        now = time.monotonic()
        chunk = sender.next_chunk(now)
        if chunk and sender.pacing is not None:
            link.write_now(chunk)
        elif chunk:
            await link.write(chunk)
        if chunk:
            # Paced: the sender says when the next chunk may go; always read the input before it does.
            wait = sender.time_until_write(time.monotonic()) if sender.pacing else link.char_seconds(len(chunk))
        else:
            left = sender.time_left(now)
            wait = 0.2 if left is None else min(0.2, left + 0.01)
            if sender.state == dp.SendState.SENDING:
                wait = min(wait, sender.time_until_write(now))
        data = await link.read(wait)
        handle(sender.receive_data(data, time.monotonic()))
        timed_out = sender.check_timeout(time.monotonic())
        if timed_out is not None:
            handle([timed_out])
        if on_progress is not None and sender.blocks_sent != last_blocks:
            last_blocks = sender.blocks_sent
            result = on_progress(sender)
            if asyncio.iscoroutine(result):
                await result
    if sender.state == dp.SendState.DONE:
        if on_event is not None:
            on_event(dp.Completed())
        deadline = time.monotonic() + grace
        while (left := deadline - time.monotonic()) > 0:
            data = await link.read(left)
            for event in sender.receive_data(data, time.monotonic()):
                if isinstance(event, dp.Aborted):
                    raise DncAborted(event.reason)


async def punch_in(
    link: SerialLink,
    *,
    start_timeout: float,
    idle_timeout: float,
    on_started: Callable[[], None] | None = None,
) -> dp.ProgramReceived:
    """Receive one program the control punches out; raise DncTimeout if it never comes or stalls."""
    receiver = dp.DncReceiver()
    started = False
    deadline = time.monotonic() + start_timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            if not started:
                raise DncTimeout(
                    f"nothing received on {link.port} within {start_timeout:g} s: start the punch-out "
                    "on the control (EDIT mode, PUNCH) after this command is waiting"
                )
            raise DncTimeout(
                f"the control stopped sending for {idle_timeout:g} s after {receiver.bytes_received} bytes "
                "without the closing %; the program was not saved"
            )
        data = await link.read(min(left, 0.2))
        if data:
            deadline = time.monotonic() + idle_timeout
        for event in receiver.receive_data(data):
            if isinstance(event, dp.ReceiveStarted) and not started:
                started = True
                if on_started is not None:
                    on_started()
            elif isinstance(event, dp.ProgramReceived):
                return event
