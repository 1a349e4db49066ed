"""The CLI's claim on a machine: refuse (exit 3) naming the owner before any port is touched."""

from __future__ import annotations

from labbridge.cli.common import EXIT_CONTROLLER, fail
from labbridge.streaming.ownership import MachineBusy, MachineLock
from labbridge.config import default_data_dir


def claim(machine_id: str, port: str | None) -> MachineLock:
    """Take the machine's lock (and its port's) in the data dir, or exit 3 saying who has it."""
    lock = MachineLock(default_data_dir(), machine_id, port)
    try:
        return lock.take()
    except MachineBusy as exc:
        fail(f"{exc}; nothing was sent: wait until it ends, or stop it there", EXIT_CONTROLLER)
