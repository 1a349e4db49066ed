"""When a serial port is taken: who has it (the link opens devices with pyserial ``exclusive=True``, an ``flock``).

Two senders on one controller interleave their bytes and reset each other; the
data directory's machine lock refuses a second labbridge, and this refuses
anything else (another labbridge with another data dir, a terminal program).
When the port is taken, :func:`holders` names who has it open, from ``/proc``.
"""

from __future__ import annotations

import os
from pathlib import Path

import serial


def is_lock_failure(exc: BaseException) -> bool:
    """True when pyserial could open the device but not lock it: someone else has it."""
    return isinstance(exc, serial.SerialException) and "exclusively lock" in str(exc)


def holders(port: str) -> list[str]:
    """``pid N (command)`` for every process that has ``port`` open (those this user may inspect)."""
    if "://" in port:
        return []
    try:
        target = os.path.realpath(port)
    except OSError:
        return []
    found = []
    me = os.getpid()
    for proc in Path("/proc").glob("[0-9]*"):
        pid = int(proc.name)
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        if not any(_links_to(fd, target) for fd in fds):
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            cmd = "?"
        found.append(f"pid {pid} ({'this process' if pid == me else cmd or '?'})")
    return found


def _links_to(fd: Path, target: str) -> bool:
    try:
        return os.readlink(fd) == target
    except OSError:
        return False


def busy_message(port: str) -> str:
    """Why an exclusive open failed, naming the holders when they can be seen."""
    who = holders(port)
    named = "; ".join(who) if who else "it could not be identified"
    return f"it is in use by another program ({named}): a serial port has one owner; stop it first"
