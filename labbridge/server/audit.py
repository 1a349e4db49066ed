"""Repeated refusals as one audit row per source and minute, so a flood cannot bury the audit log.

A guesser can make hundreds of failed sign-ins a second and a misconfigured page
can knock on the websocket as often; one row each made the log unreadable (and
filled the disk). Here each (action, outcome, source) gets one row per minute whose
``count`` grows, with the user names tried listed in its detail.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from labbridge.log import get_logger
from labbridge.server.store import Store

MAX_NAMES = 10


@dataclass
class _Tally:
    count: int = 0
    names: list[str] = field(default_factory=list)


class AuditTrail:
    """Aggregates repeated audit events into per-minute rows of the store's audit log."""

    def __init__(self, store: Store, period: float = 60.0) -> None:
        self.store = store
        self.period = period
        self._tallies: dict[str, _Tally] = {}
        self._lock = threading.Lock()

    def repeated(self, action: str, outcome: str, source: str, username: str | None, detail: str) -> int:
        """Count one more ``action``/``outcome`` from ``source``; returns the count in this minute's row."""
        window = int(time.time() // self.period)
        key = f"{action}|{outcome}|{source}|{window}"
        with self._lock:
            tally = self._tallies.get(key)
            if tally is None:
                self._forget_before(window)
                tally = self._tallies[key] = _Tally()
            tally.count += 1
            name = (username or "")[:64]
            if name and name not in tally.names and len(tally.names) < MAX_NAMES:
                tally.names.append(name)
            count, names = tally.count, list(tally.names)
        if count == 1:
            get_logger(user=username).info("audit", action=action, outcome=outcome, detail=detail)
        text = detail if count == 1 else f"{detail}; {count} times this minute"
        if len(names) > 1:
            text += f"; names tried: {', '.join(names)}{' …' if len(names) == MAX_NAMES else ''}"
        self.store.audit(names[0] if names else username, None, action, outcome, text, agg_key=key, count=count)
        return count

    def _forget_before(self, window: int) -> None:
        stale = [k for k in self._tallies if int(k.rsplit("|", 1)[1]) < window - 1]
        for key in stale:
            del self._tallies[key]
