"""The websocket hub: many clients watch many machines without ever slowing a driver.

Drivers call ``MachineState.update`` from their own task; the hub's listener only
marks the machine dirty. A per-machine flush runs at most ``max_rate`` times a
second, computes which top-level fields of ``MachineState.to_dict()`` changed, and
offers that change to every subscribed client. Each client has its own mailbox:
state changes for a machine are merged into one pending update (latest state
wins), events go into a short bounded queue (on overflow the client is sent a full
snapshot instead). A client's sender task drains its mailbox; a client that cannot
keep up only falls behind itself, and one that stops reading for ``send_timeout``
seconds or stops answering heartbeats is dropped.

Job messages are stored in English; each client reads them in its own language
(``Client.language``, from its handshake's ``Accept-Language``): a message is
serialized once per language present, not once per client.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from labbridge.i18n import DEFAULT, current
from labbridge.log import get_logger
from labbridge.model import MachineState
from labbridge.streaming.texts import localize_record, localize_state

Sender = Callable[[str], Awaitable[None]]
Closer = Callable[[int, str], Awaitable[None]]

log = get_logger()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str)


class Client:
    """One websocket connection's mailbox and sender task."""

    def __init__(self, hub: Hub, send: Sender, close: Closer, username: str, role: str, token_id: str,
                 max_events: int = 64) -> None:
        self.hub = hub
        self._send = send
        self._close = close
        self.username = username
        self.role = role
        self.token_id = token_id
        self.language = current()
        self.subscriptions: set[str] = set()
        self._pending: dict[str, tuple[dict[str, Any], str | None]] = {}
        self._snapshots: set[str] = set()
        self._events: deque[str] = deque()
        self._max_events = max_events
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.closed = False
        self.last_seen = time.monotonic()
        self.sent = 0
        self.coalesced = 0

    # producers (called in the event loop, never block) ----------------------
    def offer_state(self, machine: str, changes: dict[str, Any], message: str) -> None:
        if machine in self._snapshots:
            return  # a full snapshot is already on its way
        pending = self._pending.get(machine)
        if pending is None:
            self._pending[machine] = (changes, message)
        else:
            merged = dict(pending[0])
            merged.update(changes)
            self._pending[machine] = (merged, None)
            self.coalesced += 1
        self._wakeup.set()

    def offer_snapshot(self, machine: str) -> None:
        self._pending.pop(machine, None)
        self._snapshots.add(machine)
        self._wakeup.set()

    def offer_event(self, message: str) -> None:
        if len(self._events) >= self._max_events:
            # Too far behind on events: drop them and resend full state instead.
            self._events.clear()
            for machine in self.subscriptions:
                self.offer_snapshot(machine)
            self._events.append(_dumps({"type": "resync", "reason": "client fell behind"}))
        self._events.append(message)
        self._wakeup.set()

    # sender ------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"ws-send-{self.username}")

    async def _run(self) -> None:
        try:
            while not self.closed:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._events:
                    await self._deliver(self._events.popleft())
                for machine in list(self._snapshots):
                    self._snapshots.discard(machine)
                    snap = self.hub.snapshot_message(machine, self.language)
                    if snap is not None:
                        await self._deliver(snap)
                while self._pending:
                    machine = next(iter(self._pending))
                    changes, message = self._pending.pop(machine)
                    if message is None:
                        message = self.hub.state_message(machine, changes, self.language)
                    await self._deliver(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the socket went away under us
            log.info("ws client dropped", user=self.username, reason=str(exc) or type(exc).__name__)
            await self.hub.drop(self, 1011, "send failed")

    async def _deliver(self, message: str) -> None:
        try:
            await asyncio.wait_for(self._send(message), timeout=self.hub.send_timeout)
        except asyncio.TimeoutError:
            log.warning("ws client too slow, dropped", user=self.username, timeout=self.hub.send_timeout)
            self.closed = True
            asyncio.get_running_loop().create_task(self.hub.drop(self, 1008, "too slow"))
            raise asyncio.CancelledError from None
        self.sent += 1

    async def close(self, code: int, reason: str) -> None:
        self.closed = True
        self._wakeup.set()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        try:
            await asyncio.wait_for(self._close(code, reason), timeout=2.0)
        except Exception:
            pass


class Hub:
    """Machine states in, coalesced rate-limited messages out."""

    def __init__(self, max_rate: float = 10.0, send_timeout: float = 10.0, heartbeat: float = 15.0,
                 idle_timeout: float = 60.0) -> None:
        self.min_interval = 1.0 / max_rate
        self.max_rate = max(1, int(max_rate))
        self.min_gap = min(0.02, self.min_interval)
        self.send_timeout = send_timeout
        self.heartbeat = heartbeat
        self.idle_timeout = idle_timeout
        self.states: dict[str, MachineState] = {}
        self.clients: set[Client] = set()
        self._last_sent: dict[str, dict[str, Any]] = {}
        self._flush_times: dict[str, deque[float]] = {}
        self._scheduled: set[str] = set()
        self._unsubscribe: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self.flushes = 0

    # lifecycle ---------------------------------------------------------------
    def start(self, states: dict[str, MachineState]) -> None:
        self._loop = asyncio.get_running_loop()
        for machine, state in states.items():
            self.add_machine(machine, state)
        self._heartbeat_task = self._loop.create_task(self._heartbeats(), name="ws-heartbeat")

    def add_machine(self, machine: str, state: MachineState) -> None:
        """Watch ``state`` (again, if a driver replaced it)."""
        self.states[machine] = state
        self._last_sent[machine] = state.to_dict()
        self._unsubscribe.append(state.subscribe(self._on_change))
        for client in self.clients:
            if machine in client.subscriptions:
                client.offer_snapshot(machine)

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
        for client in list(self.clients):
            await self.drop(client, 1001, "server shutting down")

    # producers -----------------------------------------------------------------
    def _on_change(self, state: MachineState, _fields: frozenset[str]) -> None:
        loop = self._loop
        if loop is None:
            return
        machine = state.machine
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._schedule(machine)
        else:
            loop.call_soon_threadsafe(self._schedule, machine)

    def _schedule(self, machine: str) -> None:
        if machine in self._scheduled or self._loop is None:
            return
        self._scheduled.add(machine)
        # At most max_rate flushes in any one-second window (and min_gap apart). A window rather than a
        # fixed 1/max_rate spacing: a driver polling at exactly max_rate would otherwise be pushed a little
        # later every cycle by the fan-out itself, and its updates would drift up to a whole period late.
        times = self._flush_times.setdefault(machine, deque(maxlen=self.max_rate))
        now = time.monotonic()
        wait = (times[-1] + self.min_gap - now) if times else 0.0
        if len(times) == self.max_rate:
            wait = max(wait, times[0] + 1.0 - now)
        if wait <= 0:
            self._loop.call_soon(self._flush, machine)
        else:
            self._loop.call_later(wait, self._flush, machine)

    def _flush(self, machine: str) -> None:
        self._scheduled.discard(machine)
        state = self.states.get(machine)
        if state is None:
            return
        self._flush_times.setdefault(machine, deque(maxlen=self.max_rate)).append(time.monotonic())
        current = state.to_dict()
        last = self._last_sent.get(machine, {})
        changes = {k: v for k, v in current.items() if last.get(k) != v}
        self._last_sent[machine] = current
        if set(changes) <= {"updated_at"}:
            return
        self.flushes += 1
        messages: dict[str, str] = {}
        new_alarms = self._new_alarms(last.get("alarms") or [], current.get("alarms") or [])
        for client in self.clients:
            if machine in client.subscriptions:
                lang = client.language
                if lang not in messages:
                    messages[lang] = self.state_message(machine, changes, lang)
                client.offer_state(machine, changes, messages[lang])
                for alarm in new_alarms:
                    client.offer_event(_dumps({"type": "alarm", "machine": machine, "alarm": alarm}))

    @staticmethod
    def _new_alarms(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen = {(a.get("code"), a.get("time")) for a in before}
        return [a for a in after if (a.get("code"), a.get("time")) not in seen]

    def state_message(self, machine: str, changes: dict[str, Any], lang: str = DEFAULT) -> str:
        changes = localize_state(changes, lang)
        return _dumps({"type": "state", "machine": machine, "changes": changes, "sent": time.time()})

    def snapshot_message(self, machine: str, lang: str = DEFAULT) -> str | None:
        state = self.states.get(machine)
        if state is None:
            return None
        return _dumps({"type": "snapshot", "machine": machine, "state": localize_state(state.to_dict(), lang),
                       "sent": time.time()})

    def broadcast(self, event: dict[str, Any], machine: str | None = None,
                  roles: frozenset[str] | None = None) -> None:
        """An event (job finished, queue changed) for everyone watching ``machine`` (or everyone), or only
        for clients of ``roles``."""
        messages: dict[str, str] = {}
        for client in self.clients:
            if (machine is None or machine in client.subscriptions) and (roles is None or client.role in roles):
                lang = client.language
                if lang not in messages:
                    messages[lang] = _dumps(localize_record(event, lang))
                client.offer_event(messages[lang])

    def send_to(self, event: dict[str, Any], usernames: set[str], roles: frozenset[str] = frozenset()) -> None:
        """An event for some users only (a class's trainer, the admins): no other client receives it."""
        message = _dumps(event)
        for client in self.clients:
            if client.username in usernames or client.role in roles:
                client.offer_event(message)

    # clients -------------------------------------------------------------------
    def connect(self, send: Sender, close: Closer, username: str, role: str, token_id: str) -> Client:
        client = Client(self, send, close, username, role, token_id)
        self.clients.add(client)
        client.start()
        return client

    def subscribe(self, client: Client, machines: list[str]) -> list[str]:
        unknown = [m for m in machines if m not in self.states]
        for machine in machines:
            if machine in self.states and machine not in client.subscriptions:
                client.subscriptions.add(machine)
                client.offer_snapshot(machine)
        return unknown

    def unsubscribe(self, client: Client, machines: list[str]) -> None:
        for machine in machines:
            client.subscriptions.discard(machine)

    async def drop(self, client: Client, code: int = 1000, reason: str = "") -> None:
        if client in self.clients:
            self.clients.discard(client)
            await client.close(code, reason)

    async def drop_token(self, token_id: str, reason: str = "token revoked") -> int:
        victims = [c for c in self.clients if c.token_id == token_id]
        for client in victims:
            await self.drop(client, 4001, reason)
        return len(victims)

    async def drop_user(self, username: str, reason: str) -> int:
        victims = [c for c in self.clients if c.username == username]
        for client in victims:
            await self.drop(client, 4001, reason)
        return len(victims)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            now = time.monotonic()
            ping = _dumps({"type": "ping", "t": time.time()})
            for client in list(self.clients):
                if now - client.last_seen > self.idle_timeout:
                    log.info("ws client silent, dropped", user=client.username)
                    await self.drop(client, 1001, "no heartbeat reply")
                else:
                    client.offer_event(ping)

    def stats(self) -> dict[str, Any]:
        """For technicians and the fan-out benchmark: who is connected and who is falling behind."""
        return {
            "clients": len(self.clients),
            "flushes": self.flushes,
            "coalesced": sum(c.coalesced for c in self.clients),
            "max_rate": self.max_rate,
            "per_client": [
                {"user": c.username, "machines": sorted(c.subscriptions), "sent": c.sent, "coalesced": c.coalesced,
                 "pending": len(c._pending), "events_queued": len(c._events),
                 "idle_seconds": round(time.monotonic() - c.last_seen, 1)}
                for c in self.clients
            ],
        }
