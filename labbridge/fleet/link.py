"""The lab's connection to the broker: birth and last will, retained machine state, events, requests.

Offline first: the link runs beside the lab and never holds it up. It connects out, and on any
failure logs one line saying why, waits (1 s doubling to a minute) and tries again; the dashboard
shows its state. On each connection it publishes, in this order: the retained ``status`` birth
(its MQTT last will is the same message with ``online: false``, retained too), every machine's
retained state, then the outbox's stored events. While connected it publishes state changes
(at most ``state_rate`` a second per machine, the latest state wins), new events as they are
stored, and answers requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiomqtt

from labbridge import __version__
from labbridge.config import FleetLink, LabIdentity
from labbridge.errors import ConfigError
from labbridge.fleet import mqtt, topics
from labbridge.fleet.mqtt import LinkStatus
from labbridge.fleet.outbox import Outbox
from labbridge.log import get_logger
from labbridge.model import MachineState

log = get_logger()

Handler = Callable[[str, topics.Request], Awaitable[Any]]
BATCH = 100
MAX_WAITING_REQUESTS = 16


class LabLink:
    """One lab's MQTT client, reconnecting for as long as the lab runs."""

    def __init__(self, cfg: FleetLink, identity: LabIdentity, states: dict[str, MachineState], outbox: Outbox,
                 handler: Handler, base_dir: Path | None = None) -> None:
        for machine in states:
            if not topics.topic_safe(machine):
                raise ConfigError(f"machines.{machine}: this id cannot be an MQTT topic level; use letters, "
                                  "digits, '-', '_' or '.'")
        self.cfg = cfg
        self.lab = identity
        self.states = states
        self.outbox = outbox
        self.handler = handler
        self.base_dir = base_dir or Path.cwd()
        self.status = LinkStatus()
        self.burst = max(1.0, cfg.state_rate)
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._bucket: dict[str, tuple[float, float]] = {}  # machine -> (tokens, when counted)
        self._scheduled: set[str] = set()
        self._requests = asyncio.Semaphore(2)
        self._waiting = 0
        self._unsubscribe: list[Callable[[], None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    # lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.outbox.listeners.append(self._outbox_grew)
        for state in self.states.values():
            self._unsubscribe.append(state.subscribe(self._state_changed))
        self._task = self._loop.create_task(self._run(), name=f"fleet-link-{self.lab.id}")

    async def stop(self) -> None:
        """Clean shutdown: publish ``online: false`` (retained) and disconnect, so the will is not needed."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        with contextlib.suppress(ValueError):
            self.outbox.listeners.remove(self._outbox_grew)
        client = self._client
        if client is not None:
            with contextlib.suppress(Exception):
                await client.publish(topics.status_topic(self.lab.id), self._status(False, time.time()),
                                     qos=1, retain=True, timeout=3)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._task, 5)
        self.status.set("stopped")

    def _identifier(self) -> str:
        return f"labbridge-lab-{self.lab.id}"

    def _status(self, online: bool, since: float) -> bytes:
        return topics.dumps({"online": online, "lab": self.lab.id, "name": self.lab.name, "version": __version__,
                             "machines": list(self.states), "since": since})

    # the connection loop ------------------------------------------------------------
    async def _run(self) -> None:
        await mqtt.keep_connected(self._session, self.cfg, self.status, lab=self.lab.id)

    async def _session(self) -> None:
        """One connection, from CONNECT until it fails."""
        since = time.time()
        will = aiomqtt.Will(topics.status_topic(self.lab.id), self._status(False, since), qos=1, retain=True)
        try:
            async with mqtt.client(self.cfg, self.base_dir, self._identifier(), will=will) as client:
                self._client = client
                await client.publish(topics.status_topic(self.lab.id), self._status(True, since), qos=1, retain=True)
                await client.subscribe(topics.requests_filter(self.lab.id), qos=1)
                self.status.connected()
                log.info("fleet link up", lab=self.lab.id, broker=self.cfg.broker)
                for machine in self.states:
                    self._schedule_state(machine, at_once=True)
                await first_failure(self._read(client), self._send_events(client))
        finally:
            self._client = None
            self.outbox.released()

    # events --------------------------------------------------------------------------
    def _in_loop(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback`` in the link's event loop: listeners may be called from a driver's or request's thread."""
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            callback(*args)
        else:
            loop.call_soon_threadsafe(callback, *args)

    def _outbox_grew(self) -> None:
        self._in_loop(self._wake.set)

    async def _send_events(self, client: aiomqtt.Client) -> None:
        """Publish stored events oldest first, QoS 1, a batch at a time; forget them once acknowledged."""
        topic = topics.events_topic(self.lab.id)
        while True:
            self._wake.clear()
            batch = self.outbox.oldest(BATCH)
            if not batch:
                await self._wake.wait()
                continue
            results = await asyncio.gather(*(client.publish(topic, topics.dumps(e.payload), qos=1) for e in batch),
                                           return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                raise failed[0]
            self.outbox.acknowledged(batch[-1].seq)
            self.status.events_sent += len(batch)

    # state ---------------------------------------------------------------------------
    def _state_changed(self, state: MachineState, _fields: frozenset[str]) -> None:
        self._in_loop(self._schedule_state, state.machine)

    def _schedule_state(self, machine: str, at_once: bool = False) -> None:
        """Publish the machine's state now, or as soon as the rate limit allows (latest state wins).

        A token bucket per machine: ``state_rate`` tokens a second, at most ``state_rate`` saved up.
        Not a fixed gap after the last send: a machine changing exactly at the limit's rate would
        then be sent a little later every time and drift a whole period behind. The full state sent
        on each (re)connection is not counted.
        """
        if self._client is None or self._loop is None or (machine in self._scheduled and not at_once):
            return  # offline: the state is published whole on the next connection
        self._scheduled.add(machine)
        wait = 0.0
        if not at_once:
            now = time.monotonic()
            tokens, then = self._bucket.get(machine, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.cfg.state_rate) - 1.0
            self._bucket[machine] = (tokens, now)
            wait = max(0.0, -tokens / self.cfg.state_rate)
        self._loop.call_later(wait, self._publish_state, machine)

    def _publish_state(self, machine: str) -> None:
        self._scheduled.discard(machine)
        client, state = self._client, self.states.get(machine)
        if client is None or state is None:
            return
        payload = topics.dumps(state.to_dict())
        task = asyncio.get_running_loop().create_task(
            client.publish(topics.state_topic(self.lab.id, machine), payload, qos=0, retain=True))
        self._tasks.add(task)
        task.add_done_callback(self._state_sent)

    def _state_sent(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is None:
            self.status.states_sent += 1

    # requests ------------------------------------------------------------------------
    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            where = topics.parse_topic(str(message.topic))
            if where is None or where.kind != "request" or where.lab != self.lab.id or where.machine is None:
                continue
            if self._waiting >= MAX_WAITING_REQUESTS:
                log.warning("fleet request dropped: too many waiting", lab=self.lab.id, machine=where.machine)
                continue
            self._waiting += 1
            task = asyncio.get_running_loop().create_task(self._answer(client, where.machine, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, client: aiomqtt.Client, machine: str, message: aiomqtt.Message) -> None:
        try:
            async with self._requests:
                await self._answer_one(client, machine, message)
        except Exception as exc:  # a lost connection while answering: the requester times out
            log.info("fleet reply not sent", lab=self.lab.id, machine=machine, reason=str(exc) or type(exc).__name__)
        finally:
            self._waiting -= 1

    async def _answer_one(self, client: aiomqtt.Client, machine: str, message: aiomqtt.Message) -> None:
        correlation = mqtt.message_property(message, "CorrelationData")
        response_topic = mqtt.message_property(message, "ResponseTopic")
        try:
            request = topics.validate(topics.Request, topics.decode_object(bytes(message.payload)))
        except topics.PayloadError as exc:
            log.warning("fleet request refused", lab=self.lab.id, machine=machine, reason=str(exc))
            if response_topic and self._may_reply(response_topic):
                await client.publish(response_topic, topics.dumps({"id": None, "ok": False, "error": str(exc)}),
                                     qos=1, properties=mqtt.reply_properties(correlation))
            return
        reply_to = request.reply_to or response_topic
        answer = await self.handler(machine, request)
        if not reply_to:
            return
        if not self._may_reply(reply_to):
            log.warning("fleet reply not sent", lab=self.lab.id, request=request.id,
                        reason=f"reply_to {reply_to!r} is outside {topics.lab_prefix(self.lab.id)}/replies/")
            return
        payload = topics.dumps(answer.reply(request.id))
        if len(payload) > topics.MAX_PAYLOAD:
            payload = topics.dumps({"id": request.id, "ok": False,
                                    "error": f"the answer is {len(payload) // 1024} KB, over the link's limit; "
                                             "ask for less (args.limit)"})
        await client.publish(reply_to, payload, qos=1, properties=mqtt.reply_properties(correlation))

    def _may_reply(self, topic: str) -> bool:
        """Replies go only under this lab's own ``replies/`` (the only place its broker account may write)."""
        where = topics.parse_topic(topic)
        return where is not None and where.kind == "reply" and where.lab == self.lab.id

    # dashboard -----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        s = self.status
        return {"configured": True, "lab": self.lab.id, "name": self.lab.name, "broker": self.cfg.broker,
                "state": s.state, "since": s.since, "last_error": s.last_error,
                "retry_in": None if s.retry_at is None else max(0.0, round(s.retry_at - time.time(), 1)),
                "connects": s.connects, "events_waiting": len(self.outbox), "events_sent": s.events_sent,
                "events_dropped": self.outbox.dropped_total, "states_sent": s.states_sent,
                "last_seq": self.outbox.last_seq()}


async def first_failure(*coroutines: Awaitable[Any]) -> None:
    """Run the coroutines together until one ends; cancel the rest and raise its error, if any."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
