"""Headquarters' connection to the broker: one subscription to every lab, and requests with their replies.

Headquarters keeps a persistent MQTT session (a fixed client id, no clean session), so events
that labs publish while headquarters restarts wait for it at the broker. It subscribes to
``labbridge/v1/+/#`` (QoS 1) and publishes only ``machines/<id>/request``. A request carries
``reply_to`` (under the lab's own ``replies/``) in its payload; the answer resolves the waiting call.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from pathlib import Path
from typing import Any

import aiomqtt

from labbridge.config import FleetLink
from labbridge.fleet import mqtt, topics
from labbridge.fleet.hq.fleet import Fleet
from labbridge.fleet.mqtt import LinkStatus
from labbridge.i18n import _
from labbridge.log import get_logger

log = get_logger()


class RequestFailed(Exception):
    """A request could not be sent or was not answered; the text says why (HTTP 409/504)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class HqLink:
    """The broker connection of ``labbridge fleet``, reconnecting in the background."""

    def __init__(self, cfg: FleetLink, fleet: Fleet, base_dir: Path | None = None, name: str | None = None) -> None:
        self.cfg = cfg
        self.fleet = fleet
        self.base_dir = base_dir or Path.cwd()
        self.name = re.sub(r"[^A-Za-z0-9_.-]", "-", name or cfg.username or "hq")[:40]
        self.status = LinkStatus()
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}

    @property
    def client_id(self) -> str:
        return f"labbridge-hq-{self.name}"

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="fleet-hq-link")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._task, 5)
        self.status.set("stopped")

    async def _run(self) -> None:
        await mqtt.keep_connected(self._session, self.cfg, self.status, client=self.client_id)

    async def _session(self) -> None:
        try:
            async with mqtt.client(self.cfg, self.base_dir, self.client_id, persistent=True,
                                   deliver=self._deliver) as client:
                self._client = client
                await client.subscribe(topics.ALL_LABS, qos=1)
                self.status.connected()
                log.info("fleet link up", broker=self.cfg.broker, client=self.client_id)
                async for _ in client.messages:  # every message went to _deliver; this ends on disconnect
                    pass
        finally:
            self._client = None

    def _deliver(self, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        payload = bytes(message.payload) if message.payload is not None else b""
        if "/replies/" in topic:
            self._reply(topic, payload)
        else:
            self.fleet.receive(topic, payload)

    def _reply(self, topic: str, payload: bytes) -> None:
        where = topics.parse_topic(topic)
        if where is None or where.kind != "reply" or where.client != self.client_id:
            return
        try:
            reply = topics.validate(topics.Reply, topics.decode_object(payload))
        except topics.PayloadError as exc:
            log.warning("fleet reply dropped", lab=where.lab, reason=str(exc))
            return
        waiting = self._pending.get(reply.id)
        if waiting is not None and not waiting.done():
            answer = {"id": reply.id, "ok": reply.ok}
            answer.update({"result": reply.result} if reply.ok else {"error": reply.error})
            waiting.set_result({"lab": where.lab, **answer})

    async def request(self, lab: str, machine: str, kind: str, args: dict[str, Any], user: str,
                      timeout: float = 20.0) -> dict[str, Any]:
        """Send a request to a lab's machine and wait for its answer ({"id", "ok", "result" | "error"})."""
        client = self._client
        if client is None:
            raise RequestFailed(_("headquarters is not connected to the broker ({reason})").format(
                reason=self.status.last_error or _("starting")))
        view = self.fleet.labs.get(lab)
        if view is None or not view.online:
            raise RequestFailed(_("lab {lab} is offline; ask again when it is back").format(lab=repr(lab)))
        request_id = secrets.token_hex(8)
        reply_to = topics.reply_topic(lab, self.client_id)
        body = {"id": request_id, "kind": kind, "args": args, "reply_to": reply_to, "user": user}
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await client.publish(topics.request_topic(lab, machine), topics.dumps(body), qos=1)
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise RequestFailed(_("lab {lab} did not answer within {seconds} s").format(
                lab=repr(lab), seconds=f"{timeout:.0f}"), 504) from None
        except aiomqtt.MqttError as exc:
            raise RequestFailed(_("the request was not sent: {reason}").format(
                reason=mqtt.describe_failure(exc, self.cfg))) from None
        finally:
            self._pending.pop(request_id, None)

    def snapshot(self) -> dict[str, Any]:
        s = self.status
        return {"broker": self.cfg.broker, "client": self.client_id, "state": s.state, "since": s.since,
                "last_error": s.last_error, "connects": s.connects, **self.fleet.stats()}
