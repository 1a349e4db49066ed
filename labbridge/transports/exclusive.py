"""Serial ports opened by one process only (pyserial ``exclusive=True``: an ``flock`` on the device).

Two senders on one controller interleave their bytes and reset each other; the
data directory's machine lock refuses a second labbridge, and this refuses
anything else (another labbridge with another data dir, a terminal program).
When the port is taken, :func:`holders` names who has it open, from ``/proc``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import serial


def serial_for_url(port: str, **kwargs: Any) -> Any:
    """``serial.serial_for_url`` with exclusive access where the platform has it (POSIX device paths)."""
    if os.name == "posix" and "://" not in port:
        kwargs.setdefault("exclusive", True)
    return serial.serial_for_url(port, **kwargs)


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
        if pid == me:
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    break
            except OSError:
                continue
        else:
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            cmd = "?"
        found.append(f"pid {pid} ({cmd or '?'})")
    return found


def busy_message(port: str) -> str:
    """Why an exclusive open failed, naming the holders when they can be seen."""
    who = holders(port)
    named = "; ".join(who) if who else "another program (it could not be identified)"
    return f"{port} is already open by {named}: a serial port has one owner; stop it first"
