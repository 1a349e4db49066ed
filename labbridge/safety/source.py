"""Reading a program once: files, pipes and devices opened safely, size-limited, hashed and spooled.

A program name on the command line may be a FIFO nobody writes to (``open()``
would wait forever), ``/dev/zero`` (no line ever ends), or a pipe carrying
gigabytes. So: non-regular files are opened without blocking and read with a
timeout for the writer and a size limit; every byte read is hashed and, for a
stream, kept in a spool, so the bytes streamed are the bytes the gate checked —
the file is never opened a second time. (A file with no line end in its first
64 KiB is judged binary by the checker at once; see ``program.py``.)
"""

from __future__ import annotations

import hashlib
import os
import re
import select
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labbridge.errors import ProgramReadError

DEFAULT_MAX_SIZE = 100 * 1024 * 1024
DEFAULT_PIPE_TIMEOUT = 30.0
SPOOL_IN_MEMORY = 32 * 1024 * 1024  # beyond this the spool is a temporary file

ProgressCallback = Callable[[int, int | None], None]  # (bytes read, total if known)

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def parse_size(text: str) -> int:
    """``100``, ``100M``, ``100MB``, ``1.5GiB``, ``512K`` → bytes (a plain number means megabytes)."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size: write e.g. 100MB, 2GB or 512KB")
    unit = (match.group(2) or "m")[0].lower()
    return int(float(match.group(1)) * _UNITS[unit])


def format_size(size: int) -> str:
    for unit, scale in (("GB", 1024 ** 3), ("MB", 1024 ** 2), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{size} bytes"


class ProgramSource:
    """A program being read: ``read(n)`` for the checker; ``sha256``, ``data()`` once it is all read.

    ``spool=True`` keeps every byte read so that :meth:`data` returns exactly them.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_size: int = DEFAULT_MAX_SIZE,
                 pipe_timeout: float = DEFAULT_PIPE_TIMEOUT, spool: bool = False,
                 on_progress: ProgressCallback | None = None) -> None:
        self.path = Path(path)
        self.max_size = max_size
        self.pipe_timeout = pipe_timeout
        self.on_progress = on_progress
        self.bytes_read = 0
        self.complete = False
        self._hash = hashlib.sha256()
        self._spool: Any = tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY) if spool else None
        self._fd, info = _open(self.path)
        self.regular = stat.S_ISREG(info.st_mode)
        self.kind = "file" if self.regular else "pipe" if stat.S_ISFIFO(info.st_mode) else "device"
        self.total: int | None = info.st_size if self.regular else None
        self._poll: Any = None
        if not self.regular:
            self._poll = select.poll()
            self._poll.register(self._fd, select.POLLIN)

    # -- the checker's side
    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (at least one unless the program has ended). Raises ProgramReadError."""
        if self.complete or self._fd is None:
            return b""
        size = 1 << 20 if size is None or size < 0 else size
        if not self.regular:
            self._wait_readable()
        try:
            data = os.read(self._fd, size)
        except BlockingIOError:  # a device that polled readable and then had nothing: try again
            return self.read(size)
        except OSError as exc:
            raise ProgramReadError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        if not data:
            self.complete = True
            return b""
        self.bytes_read += len(data)
        if not self.regular and self.bytes_read > self.max_size:
            self.close()
            raise ProgramReadError(
                f"{self.path}: more than {format_size(self.max_size)} arrived from this "
                f"{self.kind} and reading stopped: a program may be at most "
                "--max-size (default 100MB) when it is not a regular file; nothing was sent")
        self._hash.update(data)
        if self._spool is not None:
            self._spool.write(data)
        if self.on_progress is not None:
            self.on_progress(self.bytes_read, self.total)
        return data

    def _wait_readable(self) -> None:
        """Poll for data, end of input or a hang-up; a pipe that stays silent is an error, never a hang."""
        deadline = time.monotonic() + self.pipe_timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                what = ("nothing has been written to this pipe" if self.bytes_read == 0
                        else f"the pipe went silent after {format_size(self.bytes_read)}")
                raise ProgramReadError(
                    f"{self.path}: {what} for {self.pipe_timeout:g} s (--pipe-timeout): start the program "
                    "that writes it first, or give a file; nothing was sent")
            if self._poll.poll(min(left, 1.0) * 1000):
                return

    # -- after reading
    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def read_rest(self) -> None:
        """Read to the end (the checker may stop early on a binary file)."""
        while self.read(1 << 20):
            pass

    def data(self) -> bytes:
        """Every byte read (spooled sources only), once the program has been read to its end."""
        if self._spool is None:
            raise RuntimeError("this program source was not spooled")
        self.read_rest()
        if not self.complete:
            raise RuntimeError(f"{self.path} was closed before it was read to its end")
        self._spool.seek(0)
        return bytes(self._spool.read())

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> ProgramSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open(path: Path) -> tuple[int, os.stat_result]:
    """Open without ever blocking: a FIFO with no writer opens at once (it is polled later)."""
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise ProgramReadError(f"{path}: is a directory, not a program file")
        flags = os.O_RDONLY | os.O_CLOEXEC | (0 if stat.S_ISREG(info.st_mode) else os.O_NONBLOCK)
        fd = os.open(path, flags)
        return fd, os.fstat(fd)
    except FileNotFoundError:
        raise ProgramReadError(f"{path}: no such file") from None
    except PermissionError:
        raise ProgramReadError(f"{path}: permission denied") from None
    except OSError as exc:
        raise ProgramReadError(f"{path}: cannot read: {exc.strerror or exc}") from None
