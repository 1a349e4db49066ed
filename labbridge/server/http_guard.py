"""Slow and hoarding clients: read timeouts for the request head and body, and a connection limit.

uvicorn reads a request head for as long as the client cares to send it, and a
client that opens thousands of connections and sends half a request line on each
starves everyone else of sign-in. This is uvicorn's h11 protocol with three rules:

- the request head (request line and headers) must arrive within ``head_timeout``
  seconds of the connection opening or of the previous response;
- a request body must keep coming: no ``body_idle`` seconds without a byte, and on
  average at least ``body_min_rate`` bytes/s after a grace period;
- at most ``max_connections`` connections (``max_per_client`` from one address).
  When full, the oldest connection that has never completed a request is closed to
  make room (else the oldest keep-alive connection waiting idle for its next
  request, which its client simply reopens), so a flood of half-open connections
  cannot keep a real one, such as an operator's HOLD, out.

A timed-out head is answered ``408`` and closed; a connection refused for the limit
is closed at once.
"""

from __future__ import annotations

import asyncio
import resource
import time
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from labbridge.log import get_logger

log = get_logger()


@dataclass
class GuardLimits:
    head_timeout: float = 10.0
    body_idle: float = 15.0
    body_grace: float = 30.0
    body_min_rate: float = 16 * 1024.0
    max_connections: int = 1000
    max_per_client: int = 500


def fd_headroom(wanted: int) -> int:
    """``wanted`` connections, or fewer if the process may not open that many files (keep 64 for the rest)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(16, min(wanted, soft - 64))


@dataclass
class _Entry:
    client: str
    opened: float
    served: bool = False  # completed at least one request head (or upgraded to a websocket)
    idle: bool = True  # waiting for a request head (a keep-alive connection between requests)


class ConnectionGuard:
    """The server-wide count of open connections, by transport, with eviction of never-served ones."""

    def __init__(self, limits: GuardLimits) -> None:
        self.limits = limits
        self.entries: dict[Any, _Entry] = {}
        self.evicted = 0
        self.refused = 0

    def _prune(self) -> None:
        for transport in [t for t in self.entries if t.is_closing()]:
            del self.entries[transport]

    def admit(self, transport: Any, client: str) -> bool:
        """Register a new connection; False if it must be closed (the limit is reached by served ones)."""
        limits = self.limits
        if len(self.entries) >= limits.max_connections:
            self._prune()
        same = [t for t, e in self.entries.items() if e.client == client]
        if len(same) >= limits.max_per_client:
            same = [t for t in same if not t.is_closing()]
        if len(same) >= limits.max_per_client and not self._evict(same):
            self.refused += 1
            return False
        if len(self.entries) >= limits.max_connections and not self._evict(list(self.entries)):
            self.refused += 1
            return False
        self.entries[transport] = _Entry(client, time.monotonic())
        return True

    def _evict(self, candidates: list[Any]) -> bool:
        for wanted in (lambda e: not e.served, lambda e: e.idle):
            for transport in candidates:  # oldest first (dicts keep insertion order)
                entry = self.entries.get(transport)
                if entry is not None and wanted(entry):
                    del self.entries[transport]
                    transport.close()
                    self.evicted += 1
                    return True
        return False

    def served(self, transport: Any, idle: bool = False) -> None:
        entry = self.entries.get(transport)
        if entry is not None:
            entry.served = True
            entry.idle = idle

    def waiting(self, transport: Any) -> None:
        """The connection waits for its next request head (evictable once it has been served)."""
        entry = self.entries.get(transport)
        if entry is not None:
            entry.idle = True

    def closed(self, transport: Any) -> None:
        self.entries.pop(transport, None)

    def stats(self) -> dict[str, int]:
        self._prune()
        return {"open": len(self.entries), "evicted": self.evicted, "refused": self.refused,
                "max_connections": self.limits.max_connections}


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with head/body read timeouts and the connection guard."""

    guard: ConnectionGuard  # set on the per-server subclass made by guarded_protocol()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._timer: asyncio.TimerHandle | None = None
        self._phase = ""
        self._body_started = 0.0
        self._body_bytes = 0
        client = self.client[0] if self.client else "unknown"
        if not self.guard.admit(transport, client):
            log.warning("connection refused: too many open", client=client)
            transport.abort()
            return
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self.guard.closed(self.transport)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == "body":
            self._body_bytes += len(data)
        super().data_received(data)
        if not self.transport.is_closing():
            self._watch(progress=True)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._watch()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._cancel()
        self.guard.served(self.transport)
        self._phase = "websocket"
        super().handle_websocket_upgrade(event)

    # timers --------------------------------------------------------------------
    def _cancel(self) -> None:
        if getattr(self, "_timer", None) is not None:
            self._timer.cancel()  # type: ignore[union-attr]
            self._timer = None

    def _watch(self, progress: bool = False) -> None:
        """Arm the timer that fits the connection's phase (waiting for a head, reading a body, or neither)."""
        if self._phase == "websocket":
            return
        state = self.conn.their_state
        limits = self.guard.limits
        if state is h11.IDLE:
            if self._phase != "head":  # a head deadline is fixed: partial data does not extend it
                self._phase = "head"
                self.guard.waiting(self.transport)
                self._arm(limits.head_timeout)
        elif state is h11.SEND_BODY:
            if self._phase != "body":
                self.guard.served(self.transport)
                self._phase, self._body_started, self._body_bytes = "body", time.monotonic(), 0
                self._arm(limits.body_idle)
            elif progress:
                self._arm(limits.body_idle)
        else:
            if self._phase == "head":
                self.guard.served(self.transport)
            self._phase = "app"
            self._cancel()

    def _arm(self, seconds: float) -> None:
        self._cancel()
        self._timer = self.loop.call_later(seconds, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._phase == "head":
            self._close_408("the request head did not arrive in time")
        elif self._phase == "body":
            limits = self.guard.limits
            if self.flow.read_paused:  # we are the slow side (the app has not read yet): not the client's fault
                self._arm(limits.body_idle)
                return
            elapsed = time.monotonic() - self._body_started
            if elapsed > limits.body_grace and self._body_bytes < limits.body_min_rate * (elapsed - limits.body_grace):
                self._close_408("the request body arrives too slowly")
            elif self._timer is None:
                self._close_408("the request body stopped arriving")

    def _close_408(self, reason: str) -> None:
        """Answer 408 if the client sent part of a request and no response has begun, then close."""
        client = self.client[0] if self.client else "unknown"
        log.info("slow client closed", client=client, reason=reason, phase=self._phase)
        if self._phase == "head":
            answer = bool(self.conn.trailing_data[0])  # silent keep-alive connections are just closed
        else:
            answer = self.cycle is not None and not self.cycle.response_started
        if answer:
            body = f"{reason}; send the whole request at once\n".encode()
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                                 b"connection: close\r\ncontent-length: " + str(len(body)).encode()
                                 + b"\r\n\r\n" + body)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app's reads end and its writes are dropped
            self.cycle.message_event.set()
        self.transport.close()


def guarded_protocol(limits: GuardLimits) -> tuple[type[GuardedH11Protocol], ConnectionGuard]:
    """A protocol class for ``uvicorn.Config(http=...)`` bound to its own guard."""
    guard = ConnectionGuard(limits)
    return type("LabbridgeH11Protocol", (GuardedH11Protocol,), {"guard": guard}), guard
