"""One owner per machine: a lock file per machine (and per serial port) in the data directory.

Two programs talking to one controller at once cut parts twice: a second
``labbridge stream`` once reset the controller, re-homed it and ran the whole
program again. So a process that talks to a machine first takes its lock, and
whoever finds it taken is told who holds it (pid, command, since when) before
anything touches the port.

The lock is an ``flock`` on ``<data dir>/locks/machine-<id>.lock``: the kernel
drops it when its process dies, even by SIGKILL, so a crash never leaves a
machine locked. The file's text (JSON) only names the owner; the flock is the
truth. A second lock on the serial device itself (``port-<device>.lock``) stops
two machine ids that name the same port.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labbridge.errors import LabbridgeError

LOCK_DIR = "locks"


@dataclass(frozen=True)
class Owner:
    """Who holds a machine: enough for a person to find and ask them."""

    pid: int
    command: str
    since: float
    host: str = ""

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"pid {self.pid} ({self.command}) since {since}"

    @classmethod
    def from_text(cls, text: str) -> Owner | None:
        try:
            data: dict[str, Any] = json.loads(text)
            return cls(int(data["pid"]), str(data["command"]), float(data["since"]), str(data.get("host", "")))
        except (ValueError, KeyError, TypeError):
            return None


class MachineBusy(LabbridgeError):
    """Another process owns the machine; the message names it (CLI exit code 3)."""

    def __init__(self, message: str, owner: Owner | None) -> None:
        super().__init__(message)
        self.owner = owner


def this_command() -> str:
    """How a person would name this process: ``labbridge stream part.nc -m mill-1``."""
    argv = list(sys.argv)
    if argv and (argv[0].endswith(("labbridge", "main.py", "__main__.py")) or argv[0] == "-m"):
        argv = ["labbridge", *argv[1:]]
    return " ".join(argv) or "labbridge"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"


def port_key(port: str) -> str:
    """One name per device: symlinks (the simulator's link, /dev/serial/by-id) resolve to the device."""
    if "://" in port:
        return _slug(port)
    return _slug(os.path.realpath(port))


class _LockFile:
    """One flock'ed file; ``take`` raises MachineBusy naming the holder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def take(self, owner: Owner, what: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_owner(self.path)
            os.close(fd)
            who = holder.describe() if holder else "another labbridge process"
            raise MachineBusy(f"{what} is in use by {who}", holder) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner.__dict__).encode(), 0)
        self.fd = fd

    def drop(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
            os.close(fd)  # closing releases the flock


def read_owner(path: Path) -> Owner | None:
    try:
        return Owner.from_text(path.read_text(encoding="utf-8"))
    except OSError:
        return None


class MachineLock:
    """The claim of this process on one machine (and its port). Use as a context manager or take/release."""

    def __init__(self, data_dir: str | os.PathLike[str], machine_id: str, port: str | None = None, *,
                 command: str | None = None) -> None:
        self.machine_id = machine_id
        self.port = port
        self.command = command or this_command()
        base = Path(data_dir) / LOCK_DIR
        self._machine = _LockFile(base / f"machine-{_slug(machine_id)}.lock")
        self._port = _LockFile(base / f"port-{port_key(port)}.lock") if port else None
        self.owner: Owner | None = None

    @property
    def held(self) -> bool:
        return self._machine.fd is not None

    def take(self) -> MachineLock:
        """Claim the machine, then its port; raises MachineBusy (holding nothing) if either is taken."""
        if self.held:
            return self
        owner = Owner(os.getpid(), self.command, time.time(), socket.gethostname())
        try:
            self._machine.take(owner, self.machine_id)
        except OSError as exc:
            raise MachineBusy(f"{self.machine_id}: cannot create its lock in {self._machine.path.parent}: "
                              f"{exc.strerror or exc}", None) from None
        if self._port is not None:
            try:
                self._port.take(owner, f"{self.machine_id}'s port {self.port}")
            except (MachineBusy, OSError):
                self._machine.drop()
                raise
        self.owner = owner
        return self

    def release(self) -> None:
        if self._port is not None:
            self._port.drop()
        self._machine.drop()
        self.owner = None

    def holder(self) -> Owner | None:
        """Who holds the machine now (None when nobody, or when it is this lock)."""
        if self.held:
            return None
        probe = _LockFile(self._machine.path)
        try:
            probe.take(Owner(os.getpid(), "probe", time.time()), self.machine_id)
        except MachineBusy as exc:
            return exc.owner or Owner(0, "another labbridge process", time.time())
        except OSError:
            return None
        probe.drop()
        return None

    def __enter__(self) -> MachineLock:
        return self.take()

    def __exit__(self, *exc: object) -> None:
        self.release()
