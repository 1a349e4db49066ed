"""One threaded pyserial link, used by the GRBL driver and the DNC transfer alike.

A small thread reads the port and hands every chunk to the event loop, either to
an ``on_data`` callback (GRBL: bytes go straight into the parser) or to a queue
that :meth:`SerialLink.read` drains with a timeout (DNC: the sender polls between
chunks). A thread rather than ``add_reader``, so pyserial URLs (``socket://``,
``rfc2217://``) work as well as device paths.

The operating system's XON/XOFF handling stays *off*: the DNC side must see
DC1/DC3 itself (the first DC1 starts a transfer, a DC3 that never ends is a
timeout to report). On POSIX a device is opened exclusively, so a second process
cannot talk to a machine that one is already driving.

When the port fails (cable pulled, USB adapter reset) ``on_lost`` is called once,
on the loop, with the reason; after :meth:`close` no callback runs any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
import threading
from collections.abc import Callable
from typing import Any

import serial

from labbridge.errors import ConnectionLost
from labbridge.protocols.dnc_pacing import char_time
from labbridge.transports import exclusive

_PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}
_READ_ERRORS = (serial.SerialException, OSError, TypeError, AttributeError)  # the last two: closed under us


class SerialLink:
    """One open serial port (see the module notes). ``label`` names it in messages ("DNC port", ...)."""

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 115200,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        write_timeout: float | None = 2.0,
        exclusive: bool = True,
        label: str = "serial port",
        on_data: Callable[[bytes], Any] | None = None,
        on_lost: Callable[[str], Any] | None = None,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.bytesize = bytesize
        self.parity = parity
        self.stopbits = stopbits
        self.write_timeout = write_timeout
        self.exclusive = exclusive
        self.label = label
        self.on_data = on_data
        self.on_lost = on_lost
        self._serial: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[bytes | str] = asyncio.Queue()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._lost_reason: str | None = None

    @property
    def is_open(self) -> bool:
        return self._serial is not None and not self._closed.is_set()

    # ------------------------------------------------------------------ open / close

    async def open(self) -> None:
        """Open the port and start the reader; raises ConnectionLost naming the port and the reason."""
        self._loop = asyncio.get_running_loop()
        self._serial = await asyncio.to_thread(self._open)
        self._thread = threading.Thread(target=self._read_loop, args=(self._serial,), daemon=True,
                                        name=f"serial-{self.port}")
        self._thread.start()

    def _open(self) -> Any:
        line = {"bytesize": self.bytesize, "parity": _PARITY[self.parity], "stopbits": self.stopbits}
        try:
            return self._open_with(line)
        except termios.error:
            # A pseudo-terminal (simulator, virtual port) has no byte size or parity: Linux refuses a
            # tcsetattr that changes only those with EINVAL. The line is ideal anyway; open it plainly.
            if not os.path.realpath(self.port).startswith("/dev/pts/"):
                raise ConnectionLost(f"cannot set {self.bytesize}{self.parity}{self.stopbits:g} on {self.label} "
                                     f"{self.port}") from None
            return self._open_with({"bytesize": 8, "parity": serial.PARITY_NONE, "stopbits": self.stopbits})

    def _open_with(self, line: dict[str, Any]) -> Any:
        url = "://" in self.port
        ser = serial.serial_for_url(self.port, baudrate=self.baudrate, xonxoff=False, rtscts=False, timeout=0.05,
                                    do_not_open=True, **line)
        if self.write_timeout is not None and not self.port.startswith("rfc2217://"):
            ser.write_timeout = self.write_timeout  # pyserial's RFC 2217 client has no write timeout
        if self.exclusive and os.name == "posix" and not url:
            ser.exclusive = True
        try:
            ser.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            if exclusive.is_lock_failure(exc):  # name who has it: a port has one owner
                raise ConnectionLost(f"cannot open {self.label} {self.port}: {exclusive.busy_message(self.port)}") \
                    from None
            raise ConnectionLost(f"cannot open {self.label} {self.port}: {exc}; check the cable/adapter "
                                 "and the port in the config") from None
        return ser

    def close(self) -> None:
        """Close the port; the reader thread ends by itself and no callback runs after this."""
        self._closed.set()
        ser, self._serial = self._serial, None
        if ser is not None:
            with contextlib.suppress(Exception):
                ser.close()

    async def aclose(self) -> None:
        """:meth:`close`, then wait (briefly) for the reader thread to end."""
        self.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            await asyncio.to_thread(self._thread.join, 1.0)

    # ------------------------------------------------------------------ reading (thread → loop)

    def _read_loop(self, ser: Any) -> None:
        loop = self._loop
        assert loop is not None
        while not self._closed.is_set():
            try:
                data = ser.read(ser.in_waiting or 1)
            except _READ_ERRORS as exc:
                if not self._closed.is_set():
                    with contextlib.suppress(RuntimeError):  # the loop may be gone at exit
                        loop.call_soon_threadsafe(self._lost, f"read failed: {exc}")
                return
            if data:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._deliver, bytes(data))

    def _deliver(self, data: bytes) -> None:
        if self._closed.is_set():
            return
        if self.on_data is not None:
            self.on_data(data)
        else:
            self._queue.put_nowait(data)

    def _lost(self, reason: str) -> None:
        if self._closed.is_set() or self._lost_reason is not None:
            return
        self._lost_reason = reason
        self._queue.put_nowait(reason)
        if self.on_lost is not None:
            self.on_lost(reason)

    async def read(self, timeout: float) -> bytes:
        """Whatever arrived within ``timeout`` seconds (b"" if nothing); raises ConnectionLost once the port failed.

        Only without ``on_data`` (otherwise the bytes went to the callback).
        """
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

    def _take(self, item: bytes | str, chunks: list[bytes]) -> None:
        if isinstance(item, str):
            raise ConnectionLost(f"{self.label} {self.port} failed: {item}")
        chunks.append(item)

    # ------------------------------------------------------------------ writing

    def write(self, data: bytes) -> None:
        """Put ``data`` on the wire now (blocks at most ``write_timeout``); raises ConnectionLost."""
        ser = self._serial
        if ser is None or self._closed.is_set():
            raise ConnectionLost(f"{self.label} {self.port} is not open")
        try:
            ser.write(data)
        except (serial.SerialException, OSError) as exc:
            reason = f"write failed: {exc}"
            if self._loop is not None:
                self._lost(reason)
            raise ConnectionLost(f"writing to {self.label} {self.port} failed: {exc}") from None

    async def send(self, data: bytes) -> None:
        """:meth:`write` in a worker thread, for slow lines where a write may take seconds (DNC)."""
        ser = self._serial
        if ser is None or self._closed.is_set():
            raise ConnectionLost(f"{self.label} {self.port} is not open")
        try:
            await asyncio.to_thread(ser.write, data)
        except (serial.SerialException, OSError) as exc:
            self._lost(f"write failed: {exc}")
            raise ConnectionLost(f"writing to {self.label} {self.port} failed: {exc}") from None

    def char_seconds(self, count: int) -> float:
        """Time the line needs for ``count`` characters (start, data, parity, stop bits)."""
        return count * char_time(self.baudrate, self.bytesize, self.parity, self.stopbits)
