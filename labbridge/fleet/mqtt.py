"""Connecting to the broker: the ``fleet:`` config turned into an aiomqtt client, and failures into one line.

Both sides speak MQTT 5 (response topic and correlation data for requests). A lab or headquarters
that cannot reach the broker keeps working; the reason is logged as one line such as
``cannot reach the broker at hq.example.org:8883: connection refused`` — never a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from labbridge.config import FleetLink
from labbridge.errors import ConfigError
from labbridge.log import get_logger

RETRY_FIRST = 1.0
RETRY_MAX = 60.0

log = get_logger()


@dataclass
class LinkStatus:
    """What a dashboard shows about a broker connection."""

    state: str = "starting"  # starting | connecting | connected | waiting | stopped
    since: float = field(default_factory=time.time)
    last_error: str | None = None
    retry_at: float | None = None
    connects: int = 0
    connected_at: float | None = None
    events_sent: int = 0
    states_sent: int = 0

    def set(self, state: str, error: str | None = None, retry_at: float | None = None) -> None:
        if state != self.state:
            self.since = time.time()
        self.state, self.retry_at = state, retry_at
        if error is not None:
            self.last_error = error

    def connected(self) -> None:
        self.connects += 1
        self.connected_at = time.time()
        self.set("connected")


async def keep_connected(session: Callable[[], Awaitable[None]], cfg: FleetLink, status: LinkStatus,
                         **context: Any) -> None:
    """Run ``session`` (one connection) again and again, waiting longer after each failure.

    A failure is logged as one line with its reason; a connection that stayed up for a minute
    starts the back-off again from one second.
    """
    delay = 0.0
    while True:
        status.set("connecting")
        status.connected_at = None
        try:
            await session()
            error = "the broker closed the connection"
        except asyncio.CancelledError:
            raise
        except ConfigError as exc:
            error = str(exc)
        except Exception as exc:
            try:
                error = describe_failure(exc, cfg)
            except Exception:  # never let the wording of a failure end the retries
                error = f"{type(exc).__name__}: {exc}"
        up = time.time() - status.connected_at if status.connected_at else 0.0
        delay = RETRY_FIRST if up > 60 else backoff(delay)
        status.set("waiting", error, time.time() + delay)
        log.warning("fleet link down", reason=error, retry_in=round(delay, 1), **context)
        await asyncio.sleep(delay)


def broker_address(cfg: FleetLink) -> tuple[str, int, bool]:
    """(host, port, tls) from ``mqtt://host:1883`` or ``mqtts://host:8883``."""
    url = urlsplit(cfg.broker)
    tls = url.scheme == "mqtts"
    return url.hostname or "localhost", url.port or (8883 if tls else 1883), tls


def _resolve(path: str, base_dir: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else base_dir / p


def read_password(cfg: FleetLink, base_dir: Path) -> str | None:
    """The password, from ``password`` or ``password_file`` (relative to the config file's folder)."""
    if cfg.password_file is None:
        return cfg.password
    path = _resolve(cfg.password_file, base_dir)
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"fleet.password_file: cannot read {path}: {exc.strerror or exc}") from None


def tls_context(cfg: FleetLink, base_dir: Path) -> ssl.SSLContext | None:
    """For ``mqtts://``: verify the broker against ``ca_file`` (or the system's CAs), host name included."""
    if not broker_address(cfg)[2]:
        return None
    cafile = str(_resolve(cfg.ca_file, base_dir)) if cfg.ca_file else None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"fleet.ca_file: cannot load {cafile}: {exc}") from None


class Direct:
    """An incoming "queue" that hands each message to ``deliver`` at once, in the event loop.

    aiomqtt puts every message it receives into its queue from paho's read callback, which runs in
    the event loop; its message iterator then costs a task per message. Headquarters receives
    hundreds a second and handles each in microseconds, so it takes them as they come. The
    iterator (which never yields here) still ends when the connection drops.
    """

    def __init__(self, deliver: Callable[[aiomqtt.Message], None], maxsize: int = 0) -> None:
        self.deliver = deliver

    def put_nowait(self, message: aiomqtt.Message) -> None:
        try:
            self.deliver(message)
        except Exception as exc:  # an error here would reach paho and drop the connection
            log.warning("fleet message not handled", topic=str(message.topic), error=repr(exc))

    def qsize(self) -> int:
        return 0

    async def get(self) -> aiomqtt.Message:
        await asyncio.get_running_loop().create_future()  # never: messages do not wait here
        raise AssertionError("unreachable")


def client(cfg: FleetLink, base_dir: Path, identifier: str, *, will: aiomqtt.Will | None = None,
           persistent: bool = False, deliver: Callable[[aiomqtt.Message], None] | None = None,
           timeout: float = 15.0) -> aiomqtt.Client:
    """A fresh aiomqtt client for one connection attempt.

    A lab speaks MQTT 5 (it answers requests on their response topic with their correlation data).
    ``persistent`` is headquarters' subscriber: the broker keeps its session (subscriptions, and the
    QoS 1 events that arrive meanwhile) while it is away, so no lab event is lost while it restarts.
    It speaks MQTT 3.1.1: paho decodes an MQTT 5 property set for every message, which at
    hundreds of machine states a second was the larger part of headquarters' CPU, and it needs no
    properties (requests carry ``reply_to`` in their payload).
    """
    host, port, _tls = broker_address(cfg)
    common: dict[str, Any] = {
        "username": cfg.username, "password": read_password(cfg, base_dir), "identifier": identifier,
        "keepalive": cfg.keepalive, "tls_context": tls_context(cfg, base_dir), "timeout": timeout,
        "max_inflight_messages": 100, "will": will,
    }
    if deliver is not None:
        common["queue_type"] = functools.partial(Direct, deliver)
    if persistent:
        return aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V311, clean_session=False, **common)
    return aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V5, **common)


def describe_failure(exc: BaseException, cfg: FleetLink) -> str:
    """One line a person can act on, for any failure to connect or stay connected."""
    host, port, _tls = broker_address(cfg)
    where = f"the broker at {host}:{port}"
    text = str(exc) or type(exc).__name__
    rc = getattr(exc, "rc", None)
    if isinstance(exc, MqttConnectError) or (rc is not None and "code:" in text):
        code = getattr(rc, "value", rc)
        if code in (4, 134, 135, 5):
            return (f"{where} refused user {cfg.username!r}: wrong user name or password, or not allowed; "
                    "check fleet.username and fleet.password")
        return f"{where} refused the connection: {text}"
    lowered = text.lower()
    if "certificate" in lowered or "ssl" in lowered or "tls" in lowered:
        return f"TLS with {where} failed: {text}; check fleet.ca_file and the broker's certificate"
    if "refused" in lowered:
        return f"cannot reach {where}: connection refused (is the broker running?)"
    if "name or service" in lowered or "nodename" in lowered or "resolution" in lowered:
        return f"cannot reach {where}: the host name does not resolve (offline?)"
    if "timed out" in lowered:
        return f"no answer from {where} (timed out)"
    if "disconnected" in lowered or "unexpected" in lowered:
        return f"lost the connection to {where}"
    return f"{where}: {text}"


def backoff(previous: float) -> float:
    """The next wait before reconnecting: doubling from 1 s up to a minute."""
    return RETRY_FIRST if previous <= 0 else min(previous * 2, RETRY_MAX)


def reply_properties(correlation: bytes | None) -> Properties | None:
    """Properties for an answer that carries the request's MQTT 5 correlation data back."""
    if correlation is None:
        return None
    props = Properties(PacketTypes.PUBLISH)
    props.CorrelationData = correlation
    return props


def message_property(message: Any, name: str) -> Any:
    """An MQTT 5 property of a received message, or None."""
    props = getattr(message, "properties", None)
    return getattr(props, name, None) if props is not None else None
