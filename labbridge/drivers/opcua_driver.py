"""Subscribe to a control's OPC UA server (asyncua) and keep a MachineState current.

Nodes are named by namespace URI (``nsu=urn:…;s=…`` or ``;i=…``), never by
namespace index: the index of a URI can change when the server restarts. With
``use_default_map`` the driver browses the OPC 40501 Machine Tools and OPC 40502
CNC structures for the values it knows (see firmware-notes/opcua.md); configured
``nodes`` override them. A lost keep-alive marks the source down; it reconnects
with backoff and subscribes again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asyncua import Client, Node, ua

from labbridge.config import OpcUaConnection
from labbridge.drivers import field_map
from labbridge.errors import ConfigError
from labbridge.log import get_logger
from labbridge.model import MachineState, Status

MT_NS = "http://opcfoundation.org/UA/MachineTool/"
CNC_NS = "http://opcfoundation.org/UA/CNC"
_NSU = re.compile(r"^nsu=(?P<uri>[^;]+);(?P<kind>[sigb])=(?P<ident>.+)$")
LinkCallback = Callable[[str, bool, str | None], None]
# asyncua warns on stderr about routine things (revised session timeout, reconnect attempts);
# labbridge reports link changes itself, once, with the machine named.
for _name in ("asyncua.client.client", "asyncua.client.ua_client", "asyncua.common.subscription"):
    logging.getLogger(_name).setLevel(logging.ERROR)


@dataclass(frozen=True)
class NodeRef:
    uri: str
    kind: str  # s, i, g, b
    ident: str


def parse_node(text: str, where: str = "") -> NodeRef:
    """``nsu=URI;s=Name`` → NodeRef; ``ns=2;…`` is refused (indexes are not stable)."""
    m = _NSU.match(text.strip())
    if m is None:
        hint = " (namespace indexes change between server restarts; name the namespace by URI)" \
            if text.strip().startswith("ns=") else ""
        raise ConfigError(f"{where}OPC UA node {text!r} must look like nsu=<namespace URI>;s=<id> or ;i=<n>{hint}")
    return NodeRef(m.group("uri"), m.group("kind"), m.group("ident"))


def to_node_id(ref: NodeRef, namespaces: list[str]) -> ua.NodeId:
    if ref.uri not in namespaces:
        raise LookupError(f"namespace {ref.uri!r} is not on the server (it has: {', '.join(namespaces[1:])})")
    index = namespaces.index(ref.uri)
    if ref.kind == "i":
        return ua.NodeId(int(ref.ident), index)
    if ref.kind == "g":
        import uuid

        return ua.NodeId(uuid.UUID(ref.ident), index, ua.NodeIdType.Guid)
    if ref.kind == "b":
        import base64

        return ua.NodeId(base64.b64decode(ref.ident), index, ua.NodeIdType.ByteString)
    return ua.NodeId(ref.ident, index)


def plain(value: Any) -> Any:
    """OPC UA values as Python scalars (LocalizedText → its text, enums → int)."""
    if isinstance(value, ua.LocalizedText):
        return value.Text
    if hasattr(value, "value") and isinstance(getattr(value, "value"), int):
        return value.value
    return value


# Raw default-map keys → how they become MachineState values (see _derive).
CHANNEL_STATE = {0: Status.RUN, 1: Status.HOLD, 2: Status.IDLE}  # OPC 40501 ChannelState
CNC_CHANNEL_STATUS = {0: Status.IDLE, 1: Status.HOLD, 2: Status.RUN}  # OPC 40502 CncChannelStatus
TURN_DIRECTION = {0: "off", 1: "cw", 2: "ccw"}  # OPC 40502 CncSpindleTurnDirection


class _Handler:
    def __init__(self, source: OpcUaSource) -> None:
        self.source = source

    def datachange_notification(self, node: Node, value: Any, data: Any) -> None:
        self.source._on_value(node.nodeid, value)

    def status_change_notification(self, status: Any) -> None:
        self.source._on_status(status)

    def event_notification(self, event: Any) -> None:  # not subscribed; required by asyncua's protocol
        pass


class OpcUaSource:
    """One OPC UA server feeding one MachineState; ``start()`` returns after the first attempt."""

    name = "opcua"

    def __init__(
        self,
        machine_id: str,
        conn: OpcUaConnection,
        state: MachineState,
        *,
        on_link: LinkCallback | None = None,
        publish_ms: int = 100,
        keepalive: float = 1.0,
        timeout: float = 4.0,
        max_backoff: float = 10.0,
    ) -> None:
        self.machine_id = machine_id
        self.conn = conn
        self.state = state
        self.on_link = on_link
        self.publish_ms = publish_ms
        self.keepalive = keepalive
        self.timeout = timeout
        self.max_backoff = max_backoff
        where = f"machines.{machine_id}.connection.opcua.nodes: "
        self.configured = {path: parse_node(text, where) for path, text in conn.nodes.items()}
        for path in self.configured:
            try:
                field_map.check_path(path)
            except ValueError as exc:
                raise ConfigError(f"{where}{exc}") from None
        self.log = get_logger(machine=machine_id).bind(source="opcua", url=conn.url)
        self.client: Client | None = None
        self.up = False
        self.fault: str | None = None
        self.last_update: float | None = None
        self.raw: dict[str, Any] = {}
        self.paths: dict[ua.NodeId, str] = {}
        self._lost = asyncio.Event()
        self._first = asyncio.Event()
        self._filled = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle
    async def start(self, first_timeout: float | None = None) -> None:
        self._task = asyncio.create_task(self._run(), name=f"opcua-{self.machine_id}")
        try:
            await asyncio.wait_for(self._first.wait(), first_timeout or self.timeout * 2 + 2)
            if self.up:  # subscribed: wait for the initial values, which come with the first publish
                await asyncio.wait_for(self._filled.wait(), self.publish_ms / 1000 * 5 + 2)
        except asyncio.TimeoutError:
            pass

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        await self._disconnect()

    def _set_link(self, up: bool, fault: str | None) -> None:
        changed = (up, fault) != (self.up, self.fault)
        self.up, self.fault = up, fault
        if changed:
            (self.log.info if up else self.log.warning)("opcua_link", up=up, fault=fault)
            if self.on_link is not None:
                self.on_link(self.name, up, fault)

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self._connect_and_subscribe()
                backoff = 0.5
                self._set_link(True, self.fault if self.fault and "node" in self.fault else None)
                self._first.set()
                await self._lost.wait()
                raise ConnectionError("keep-alive lost")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = _describe(exc)
                self._set_link(False, f"OPC UA server {self.conn.url}: {reason}; reconnecting")
                self._first.set()
                await self._disconnect()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    async def _disconnect(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                await asyncio.wait_for(client.disconnect(), 2.0)
            except Exception:
                pass

    async def _connect_and_subscribe(self) -> None:
        self._lost = asyncio.Event()
        client = Client(self.conn.url, timeout=self.timeout, watchdog_intervall=self.keepalive)
        if self.conn.username:
            client.set_user(self.conn.username)
        if self.conn.password:
            client.set_password(self.conn.password)
        if self.conn.security:
            security = self.conn.security
            if self.conn.server_certificate and security.count(",") < 4:
                security += "," + self.conn.server_certificate
            await client.set_security_string(security)

        async def lost(exc: Exception) -> None:
            self._lost.set()

        client.connection_lost_callback = lost
        self.client = client
        await asyncio.wait_for(client.connect(), self.timeout * 2)
        namespaces = await client.get_namespace_array()
        nodes: dict[str, ua.NodeId] = {}
        problems: list[str] = []
        if self.conn.use_default_map:
            nodes.update(await self._default_nodes(client, namespaces))
        for path, ref in self.configured.items():
            try:
                nodes[path] = to_node_id(ref, namespaces)
            except LookupError as exc:
                problems.append(f"node for {path}: {exc}")
        if not nodes:
            problems.append("no nodes to read (set nodes: or use_default_map: true)")
        self.paths = {nid: path for path, nid in nodes.items()}
        self.raw = {}
        sub = await client.create_subscription(self.publish_ms, _Handler(self))
        handles = await sub.subscribe_data_change([client.get_node(n) for n in nodes.values()])
        for (path, _nid), handle in zip(nodes.items(), handles):
            if isinstance(handle, ua.StatusCode) or isinstance(handle, Exception):
                problems.append(f"node for {path} cannot be subscribed: {handle}")
        self.fault = "; ".join(problems) or None
        if problems:
            self.log.warning("opcua_nodes", problems=problems)

    async def _default_nodes(self, client: Client, namespaces: list[str]) -> dict[str, ua.NodeId]:
        """Browse the 40501/40502 structures for the values labbridge shows."""
        found: dict[str, ua.NodeId] = {}
        mt = namespaces.index(MT_NS) if MT_NS in namespaces else None
        cnc = namespaces.index(CNC_NS) if CNC_NS in namespaces else None
        objects = client.nodes.objects

        async def child(node: Node | None, name: str, ns: int | None) -> Node | None:
            if node is None or ns is None:
                return None
            try:
                return await node.get_child(ua.QualifiedName(name, ns))
            except Exception:
                return None

        async def put(key: str, node: Node | None) -> None:
            if node is not None:
                found[key] = node.nodeid

        machines = await child(objects, "Machines", mt)
        machine_list = await machines.get_children() if machines is not None else []
        machine = machine_list[0] if machine_list else None
        monitoring = await child(machine, "Monitoring", mt)
        await put("_operation_mode", await child(await child(monitoring, "MachineTool", mt), "OperationMode", mt))
        if monitoring is not None:
            for comp in await monitoring.get_children():
                if "_channel_state" not in found and (n := await child(comp, "ChannelState", mt)) is not None:
                    await put("_channel_state", n)
                    await put("overrides.feed", await child(comp, "FeedOverride", mt))
                elif "spindle.rotating" not in found and (n := await child(comp, "IsRotating", mt)) is not None:
                    await put("spindle.rotating", n)
                    await put("overrides.spindle", await child(comp, "Override", mt))
        active = await child(await child(machine, "Production", mt), "ActiveProgram", mt)
        await put("program_name", await child(active, "Name", mt))
        await put("_program_state", await child(await child(active, "State", mt), "CurrentState", 0))
        messages = await child(await child(machine, "Notification", mt), "Messages", mt)
        if messages is not None:
            for node in await messages.get_children():
                if await node.read_node_class() == ua.NodeClass.Variable:
                    await put("_message", node)
                    break
        cnc_if = await child(objects, "CncInterface", cnc)
        axis_list = await child(cnc_if, "CncAxisList", cnc)
        if axis_list is not None:
            for axis in await axis_list.get_children():
                name = (await axis.read_browse_name()).Name.upper()
                if name in ("X", "Y", "Z"):
                    await put(f"position.machine.{name}", await child(axis, "ActPos", cnc))
        spindles = await child(cnc_if, "CncSpindleList", cnc)
        first = (await spindles.get_children())[:1] if spindles is not None else []
        for spindle in first:
            await put("spindle.rpm", await child(spindle, "ActSpeed", cnc))
            await put("spindle.load", await child(spindle, "ActLoad", cnc))
            await put("_turn_direction", await child(spindle, "ActTurnDirection", cnc))
        channels = await child(cnc_if, "CncChannelList", cnc)
        first = (await channels.get_children())[:1] if channels is not None else []
        for channel in first:
            if "program_name" not in found:
                await put("program_name", await child(channel, "ActProgramName", cnc))
            await put("feed", await child(channel, "ActFeedrate", cnc))
            await put("_cnc_status", await child(channel, "ActStatus", cnc))
        return found

    # -- notifications (called by asyncua in the event loop)
    def _on_value(self, node_id: ua.NodeId, value: Any) -> None:
        path = self.paths.get(node_id)
        if path is None:
            return
        try:
            self.raw[path] = plain(value)
            if len(self.raw) >= len(self.paths):
                self._filled.set()
            field_map.apply(self.state, self._derive(), self.name)
            self.last_update = time.monotonic()
        except Exception:  # a value of an unexpected type never stops the subscription
            self.log.exception("opcua_value_rejected", path=path, value=repr(value))

    def _on_status(self, status: Any) -> None:
        self.log.warning("opcua_subscription_status", status=str(status))
        self._lost.set()

    def _derive(self) -> dict[str, Any]:
        """Raw 40501/40502 values → MachineState paths (alarm beats channel state)."""
        values = {k: v for k, v in self.raw.items() if not k.startswith("_")}
        message = self.raw.get("_message")
        if "_message" in self.raw:
            values["alarm"] = str(message or "")
        if "state" not in values:
            status = None
            if "_channel_state" in self.raw:
                status = CHANNEL_STATE.get(int(self.raw["_channel_state"]))
            elif "_cnc_status" in self.raw:
                status = CNC_CHANNEL_STATUS.get(int(self.raw["_cnc_status"]))
            if message:
                status = Status.ALARM
            if status is not None:
                values["state"] = status
        if "_turn_direction" in self.raw and "spindle.direction" not in values:
            values["spindle.direction"] = TURN_DIRECTION.get(int(self.raw["_turn_direction"]), None)
        return values


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ua.UaStatusCodeError):
        name = getattr(exc, "code_as_name", lambda: "")() or type(exc).__name__
        if "Identity" in name or "User" in name:
            return f"login refused ({name}): check username/password in machines.yaml"
        return f"server error {name}"
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer (timeout)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (server not running?)"
    return str(exc) or type(exc).__name__


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel until the task ends: a library that swallows one CancelledError must not keep it alive."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
