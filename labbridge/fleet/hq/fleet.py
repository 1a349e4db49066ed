"""Headquarters' live picture of every lab, fed by the broker and shown by the API and the websocket.

Each message from a lab is validated (``topics``) before it changes anything; one that is not
what a lab sends is dropped and logged (at most once a minute per lab and kind). States are kept in
memory and written to SQLite once a second (only the machines that changed); statuses and events are
written as they come. Browsers are told through the hub: a machine's state is offered to each client
as "latest wins" (a slow client gets fewer, never older, updates), statuses and events as events.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from labbridge.fleet import topics
from labbridge.fleet.hq.store import FleetStore
from labbridge.log import get_logger
from labbridge.server.hub import Hub, _dumps

log = get_logger()


class FleetHub(Hub):
    """The server's websocket hub, carrying fleet messages: state updates are keyed ``lab/machine``."""

    def state_message(self, machine: str, changes: dict[str, Any], lang: str = "en") -> str:
        """A lab's machine state as headquarters shows it (its words are the lab's own: not localized)."""
        lab, _, machine_id = machine.partition("/")
        return _dumps({"type": "fleet.state", "lab": lab, "machine": machine_id, "state": changes.get("state"),
                       "sent": time.time()})


@dataclass
class LabView:
    id: str
    name: str = ""
    online: bool = False
    since: float | None = None
    last_seen: float | None = None
    version: str = ""
    machines: list[str] = field(default_factory=list)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """The ``GET /api/fleet/labs`` shape."""
        order = self.machines + sorted(m for m in self.states if m not in self.machines)
        return {"id": self.id, "name": self.name, "online": self.online, "last_seen": self.last_seen,
                "machines": [self.states[m] for m in order if m in self.states]}


class Fleet:
    """Every lab headquarters has heard of."""

    def __init__(self, store: FleetStore, hub: FleetHub) -> None:
        self.store = store
        self.hub = hub
        self.labs: dict[str, LabView] = {}
        self._dirty: dict[tuple[str, str], float] = {}
        self._complaints: dict[tuple[str, str], float] = {}
        self.received = 0
        self.rejected = 0
        self.replays = 0
        self.lags: deque[float] = deque(maxlen=2000)
        """Seconds from a lab's state change to its arrival here, for the latest states (how stale HQ is)."""
        for row in store.labs():
            self.labs[row["id"]] = LabView(row["id"], row["name"], row["online"], row["since"], row["last_seen"],
                                           row["version"], list(row["machines"]))
        for lab, machine, state, _at in store.states():
            self._lab(lab).states[machine] = state

    def _lab(self, lab: str) -> LabView:
        view = self.labs.get(lab)
        if view is None:
            view = self.labs[lab] = LabView(lab)
        return view

    # messages from the broker ---------------------------------------------------------
    def receive(self, topic: str, payload: bytes) -> None:
        """One message from ``labbridge/v1/+/#``; anything that is not a lab's status, state or event is ignored."""
        where = topics.parse_topic(topic)
        if where is None or where.kind not in ("status", "state", "events") or not payload:
            return
        self.received += 1
        try:
            data = topics.decode_object(payload)
            if where.kind == "status":
                self._status(where.lab, topics.validate(topics.Status, data))
            elif where.kind == "state":
                self._state(where.lab, str(where.machine), topics.validate(topics.State, data), data)
            else:
                self._event(where.lab, topics.validate(topics.Event, data))
        except topics.PayloadError as exc:
            self.rejected += 1
            self._complain(where.lab, where.kind, str(exc))

    def _complain(self, lab: str, kind: str, reason: str) -> None:
        now = time.monotonic()
        if now - self._complaints.get((lab, kind), -1e9) >= 60:
            self._complaints[(lab, kind)] = now
            log.warning("fleet message dropped", lab=lab, topic_kind=kind, reason=reason)

    def _status(self, lab: str, status: topics.Status) -> None:
        if status.lab != lab:
            raise topics.PayloadError(f"status names lab {status.lab!r} on lab {lab!r}'s topic")
        view = self._lab(lab)
        now = time.time()
        if status.online != view.online or view.since is None:
            view.since = status.since if status.online and status.since else now
        view.online, view.name, view.version = status.online, status.name, status.version
        view.machines, view.last_seen = list(status.machines), now
        self.store.save_lab(lab, view.name, view.online, view.since, now, view.version, view.machines)
        self.hub.broadcast({"type": "fleet.status", "lab": lab, "online": view.online, "since": view.since,
                            "name": view.name, "last_seen": now})

    def _state(self, lab: str, machine: str, state: topics.State, data: dict[str, Any]) -> None:
        if state.machine != machine:
            raise topics.PayloadError(f"state of {state.machine!r} on {machine!r}'s topic")
        view = self._lab(lab)
        now = time.time()
        if state.updated_at > 0:
            self.lags.append(now - state.updated_at)
        view.states[machine] = data
        view.last_seen = now
        self._dirty[(lab, machine)] = now
        if self.hub.clients:
            key = f"{lab}/{machine}"
            message = self.hub.state_message(key, {"state": data})
            for client in self.hub.clients:
                client.offer_state(key, {"state": data}, message)

    def _event(self, lab: str, event: topics.Event) -> None:
        body = event.model_dump()
        view = self._lab(lab)
        view.last_seen = time.time()
        if not self.store.add_event(lab, body):
            self.replays += 1
            return
        self.hub.broadcast({"type": "fleet.event", "lab": lab, "event": body})

    # persistence -----------------------------------------------------------------------
    async def flush_forever(self, interval: float = 1.0) -> None:
        """Write changed states (and labs' last-seen times) once a second, off the event loop."""
        while True:
            await asyncio.sleep(interval)
            await self.flush()

    async def flush(self) -> None:
        dirty, self._dirty = self._dirty, {}
        if not dirty:
            return
        rows = [(lab, m, self.labs[lab].states[m], at) for (lab, m), at in dirty.items()]
        labs = [self.labs[lab] for lab in {lab for lab, _ in dirty}]
        await asyncio.to_thread(self._save, rows, labs)

    def _save(self, rows: list[tuple[str, str, dict[str, Any], float]], labs: list[LabView]) -> None:
        self.store.save_states(rows)
        for v in labs:
            self.store.save_lab(v.id, v.name, v.online, v.since, v.last_seen or time.time(), v.version, v.machines)

    # reading ---------------------------------------------------------------------------
    def public(self) -> list[dict[str, Any]]:
        return [self.labs[lab].public() for lab in sorted(self.labs)]

    def detail(self, lab: str) -> dict[str, Any] | None:
        view = self.labs.get(lab)
        if view is None:
            return None
        alarms = [{"machine": m, **a} for m, s in view.states.items() for a in (s.get("alarms") or [])]
        return {**view.public(), "since": view.since, "version": view.version, "alarms": alarms,
                "events": self.store.events(lab, limit=50), "jobs": self.store.jobs(lab, limit=30)}

    def stats(self) -> dict[str, Any]:
        lags = sorted(self.lags)
        lag = {f"p{q}": round(1000 * lags[min(len(lags) - 1, int(q / 100 * len(lags)))], 1) for q in (50, 99)} \
            if lags else None
        return {"labs": len(self.labs), "online": sum(v.online for v in self.labs.values()),
                "received": self.received, "rejected": self.rejected, "replays": self.replays, "state_lag_ms": lag}
