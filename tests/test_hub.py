"""The websocket hub on its own: coalescing, rate limit, slow and dead clients, heartbeats.

Clients here are in-memory senders (the hub's seam towards the socket); the real
websocket path is covered by the API and browser tests and bench/ws_fanout.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from labbridge.model import MachineState, Status
from labbridge.server.hub import Hub


class Sink:
    """A client that receives into a list; ``gate`` can stall it."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.closed: tuple[int, str] | None = None
        self.got = asyncio.Event()

    async def send(self, text: str) -> None:
        await self.gate.wait()
        self.messages.append(json.loads(text))
        self.got.set()

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]


async def until(predicate: Any, timeout: float = 10.0) -> None:
    async def loop() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(loop(), timeout)


def merged(sink: Sink, machine: str = "m") -> dict[str, Any]:
    state: dict[str, Any] = {}
    for msg in sink.messages:
        if msg.get("machine") != machine:
            continue
        if msg["type"] == "snapshot":
            state = dict(msg["state"])
        elif msg["type"] == "state":
            state.update(msg["changes"])
    return state


_HUBS: list[Hub] = []


async def make(hub_kw: dict[str, Any] | None = None) -> tuple[Hub, MachineState]:
    state = MachineState("m")
    hub = Hub(**(hub_kw or {}))
    hub.start({"m": state})
    _HUBS.append(hub)
    return hub, state


@pytest.fixture(autouse=True)
async def _stop_hubs() -> Any:
    yield
    while _HUBS:
        await _HUBS.pop().stop()


async def test_snapshot_then_changes() -> None:
    hub, state = await make()
    sink = Sink()
    client = hub.connect(sink.send, sink.close, "u", "viewer", "t1")
    hub.subscribe(client, ["m"])
    await until(lambda: sink.of("snapshot"))
    state.update(connected=True, state=Status.IDLE, position_machine={"X": 1.0, "Y": 2.0, "Z": 3.0})
    await until(lambda: sink.of("state"))
    change = sink.of("state")[0]["changes"]
    assert change["state"] == "Idle" and change["position"]["machine"] == {"X": 1.0, "Y": 2.0, "Z": 3.0}
    assert "spindle" not in change  # only what changed
    await hub.stop()


async def test_burst_is_coalesced_to_latest_state() -> None:
    hub, state = await make()
    sink = Sink()
    client = hub.connect(sink.send, sink.close, "u", "viewer", "t1")
    hub.subscribe(client, ["m"])
    await until(lambda: sink.of("snapshot"))
    for i in range(500):  # a driver firing far faster than 10 Hz
        state.update(position_machine={"X": float(i), "Y": 0.0, "Z": 0.0})
    await until(lambda: ((merged(sink).get("position") or {}).get("machine") or {}).get("X") == 499.0)
    assert len(sink.of("state")) <= 3  # 500 changes, a handful of messages
    assert hub.flushes <= 3
    await hub.stop()


async def test_stalled_client_gets_latest_state_and_does_not_block_others() -> None:
    hub, state = await make({"send_timeout": 30.0})
    slow, fast = Sink(), Sink()
    c_slow = hub.connect(slow.send, slow.close, "slow", "viewer", "t1")
    c_fast = hub.connect(fast.send, fast.close, "fast", "viewer", "t2")
    hub.subscribe(c_slow, ["m"])
    hub.subscribe(c_fast, ["m"])
    await until(lambda: slow.of("snapshot") and fast.of("snapshot"))
    slow.gate.clear()  # stop reading
    for i in range(30):
        state.update(position_machine={"X": float(i), "Y": 0.0, "Z": 0.0}, feed=float(i))
        await until(lambda i=i: merged(fast).get("feed") == float(i))  # the fast client keeps up
    assert len(fast.of("state")) >= 20
    # the stalled client's mailbox holds one merged update, not a backlog
    assert len(c_slow._pending) == 1 and len(c_slow._events) == 0
    slow.gate.set()
    await until(lambda: merged(slow).get("feed") == 29.0)
    assert len(slow.of("state")) <= 3
    assert merged(slow)["position"]["machine"]["X"] == 29.0
    await hub.stop()


async def test_client_that_never_reads_is_dropped_after_send_timeout() -> None:
    hub, state = await make({"send_timeout": 0.2})
    stuck, ok = Sink(), Sink()
    c_stuck = hub.connect(stuck.send, stuck.close, "stuck", "viewer", "t1")
    c_ok = hub.connect(ok.send, ok.close, "ok", "viewer", "t2")
    stuck.gate.clear()
    hub.subscribe(c_stuck, ["m"])
    hub.subscribe(c_ok, ["m"])
    await until(lambda: stuck.closed is not None)
    assert stuck.closed[0] == 1008 and c_stuck not in hub.clients
    state.update(feed=123.0)
    await until(lambda: merged(ok).get("feed") == 123.0)
    assert c_ok in hub.clients
    await hub.stop()


async def test_event_overflow_turns_into_resync() -> None:
    hub, state = await make({"send_timeout": 30.0})
    sink = Sink()
    client = hub.connect(sink.send, sink.close, "u", "viewer", "t1")
    hub.subscribe(client, ["m"])
    await until(lambda: sink.of("snapshot"))
    sink.gate.clear()
    await asyncio.sleep(0.05)
    for i in range(200):
        hub.broadcast({"type": "queue", "n": i})
    assert len(client._events) <= 64
    sink.gate.set()
    await until(lambda: any(m.get("n") == 199 for m in sink.messages))
    assert sink.of("resync") and len(sink.of("snapshot")) == 2
    await hub.stop()


async def test_silent_clients_are_dropped_and_live_ones_pinged() -> None:
    hub, _state = await make({"heartbeat": 0.05, "idle_timeout": 0.3})
    silent, live = Sink(), Sink()
    c_silent = hub.connect(silent.send, silent.close, "silent", "viewer", "t1")
    c_live = hub.connect(live.send, live.close, "live", "viewer", "t2")

    async def answer() -> None:
        while True:
            await asyncio.sleep(0.05)
            c_live.last_seen = time.monotonic()

    task = asyncio.create_task(answer())
    await until(lambda: silent.closed is not None)
    assert c_silent not in hub.clients and c_live in hub.clients
    assert live.of("ping")
    task.cancel()
    await hub.stop()


async def test_new_alarms_are_sent_as_events() -> None:
    hub, state = await make()
    sink = Sink()
    client = hub.connect(sink.send, sink.close, "u", "viewer", "t1")
    hub.subscribe(client, ["m"])
    await until(lambda: sink.of("snapshot"))
    state.raise_alarm("ALARM:1", "Hard limit triggered", source="grbl")
    await until(lambda: sink.of("alarm"))
    assert sink.of("alarm")[0]["alarm"]["code"] == "ALARM:1"
    await hub.stop()


async def test_updates_from_another_thread_are_safe() -> None:
    hub, state = await make()
    sink = Sink()
    client = hub.connect(sink.send, sink.close, "u", "viewer", "t1")
    hub.subscribe(client, ["m"])
    await until(lambda: sink.of("snapshot"))
    await asyncio.to_thread(state.update, feed=77.0)
    await until(lambda: merged(sink).get("feed") == 77.0)
    await hub.stop()


async def test_never_more_than_max_rate_messages_in_any_second() -> None:
    hub, state = await make({"max_rate": 10.0})
    sink = Sink()
    client = hub.connect(sink.send, sink.close, "u", "viewer", "t1")
    hub.subscribe(client, ["m"])
    await until(lambda: sink.of("snapshot"))
    loop = asyncio.get_running_loop()
    end = loop.time() + 1.5
    i = 0
    while loop.time() < end:  # a driver updating every few milliseconds
        i += 1
        state.update(feed=float(i))
        await asyncio.sleep(0.003)
    await until(lambda: merged(sink).get("feed") == float(i))
    sent = [m["sent"] for m in sink.of("state")]
    assert len(sent) >= 2
    # a load-slowed machine only spreads messages further apart, so this bound cannot flake
    assert all(sent[k + 10] - sent[k] >= 0.999 for k in range(len(sent) - 10))
