"""Subscribe to a control's OPC UA server (asyncua) and keep a MachineState current.

Nodes are named by namespace URI (``nsu=urn:…;s=…`` or ``;i=…``), never by
namespace index: the index of a URI can change when the server restarts. With
``use_default_map`` the driver browses the OPC 40501 Machine Tools and OPC 40502
CNC structures for the values it knows (see firmware-notes/opcua.md); configured
``nodes`` override them. Alarms and messages come as events from the 40501
``Notification/Messages`` object (or the notifier named by ``nodes: {alarm_events: …}``);
a server whose Messages object emits no events is read through its message variable
instead. A lost keep-alive marks the source down; it reconnects with backoff and
subscribes again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from asyncua import Client, Node, ua

from labbridge.config import OpcUaConnection
from labbridge.drivers import field_map
from labbridge.drivers.sources.link_state import LinkCallback, LinkState
from labbridge.errors import ConfigError
from labbridge.log import get_logger
from labbridge.model import AlarmRecord, MachineState, Status

MT_NS = "http://opcfoundation.org/UA/MachineTool/"
CNC_NS = "http://opcfoundation.org/UA/CNC"
_NSU = re.compile(r"^nsu=(?P<uri>[^;]+);(?P<kind>[sigb])=(?P<ident>.+)$")
EVENTS_KEY = "alarm_events"  # the ``nodes`` key naming the event notifier (not a MachineState path)
MAX_MESSAGES = 10  # plain message events kept as alarm records (oldest dropped)
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

    def event_notification(self, event: Any) -> None:
        self.source._on_event(event)


def _operand(type_id: int, *path: str, attribute: ua.AttributeIds = ua.AttributeIds.Value) -> ua.SimpleAttributeOperand:
    op = ua.SimpleAttributeOperand()
    op.TypeDefinitionId = ua.NodeId(type_id)
    op.BrowsePath = [ua.QualifiedName(name, 0) for name in path]
    op.AttributeId = attribute
    return op


def event_filter() -> ua.EventFilter:
    """The fields labbridge reads from 40501 message and alarm events; no where clause (all events).

    Written out rather than browsed from the type nodes: one round trip less per connect,
    and the same fields whatever the server's type tree looks like.
    """
    base, cond, alarm = ua.ObjectIds.BaseEventType, ua.ObjectIds.ConditionType, ua.ObjectIds.AlarmConditionType
    evfilter = ua.EventFilter()
    evfilter.SelectClauses = [
        _operand(base, "EventId"), _operand(base, "EventType"), _operand(base, "SourceName"),
        _operand(base, "Time"), _operand(base, "Message"), _operand(base, "Severity"),
        _operand(cond, "ConditionName"), _operand(cond, "Retain"), _operand(alarm, "ActiveState", "Id"),
        _operand(cond, attribute=ua.AttributeIds.NodeId),  # the ConditionId
    ]
    return evfilter


REFRESH_EVENTS = {ua.NodeId(ua.ObjectIds.RefreshStartEventType), ua.NodeId(ua.ObjectIds.RefreshEndEventType)}


class OpcUaSource(LinkState):
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
        self.configured = {path: parse_node(text, f"{where}{path}: ") for path, text in conn.nodes.items()
                           if path != EVENTS_KEY}
        self.events_ref = parse_node(conn.nodes[EVENTS_KEY], f"{where}{EVENTS_KEY}: ") \
            if EVENTS_KEY in conn.nodes else None
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
        self.events_from: ua.NodeId | None = None  # the notifier whose events are subscribed (None: no events)
        self._default_notifier: ua.NodeId | None = None
        self._conditions: dict[str, AlarmRecord] = {}  # ConditionId → its record in state.alarms
        self._messages: deque[AlarmRecord] = deque()
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
        self._forget_events()  # the server resends what is still active (ConditionRefresh)
        self._default_notifier = None
        if self.conn.use_default_map:
            nodes.update(await self._default_nodes(client, namespaces))
        for path, ref in self.configured.items():
            try:
                nodes[path] = to_node_id(ref, namespaces)
            except LookupError as exc:
                problems.append(f"node for {path}: {exc}")
        self.raw = {}
        sub = await client.create_subscription(self.publish_ms, _Handler(self))
        self.events_from = await self._subscribe_events(client, sub, namespaces, problems)
        if self.events_from is not None:
            nodes.pop("_message", None)  # the events carry the alarms; the variable would duplicate them
        if not nodes and self.events_from is None:
            problems.append("no nodes to read (set nodes: or use_default_map: true)")
        self.paths = {nid: path for path, nid in nodes.items()}
        if not nodes:
            self._filled.set()
        handles = await sub.subscribe_data_change([client.get_node(n) for n in nodes.values()]) if nodes else []
        for (path, _nid), handle in zip(nodes.items(), handles):
            if isinstance(handle, ua.StatusCode) or isinstance(handle, Exception):
                problems.append(f"node for {path} cannot be subscribed: {handle}")
        self.fault = "; ".join(problems) or None
        if problems:
            self.log.warning("opcua_nodes", problems=problems)

    async def _subscribe_events(self, client: Client, sub: Any, namespaces: list[str],
                                problems: list[str]) -> ua.NodeId | None:
        """Subscribe to the notifier's events; None when there is none (the message variable is read instead)."""
        if self.events_ref is not None:
            try:
                notifier = to_node_id(self.events_ref, namespaces)
            except LookupError as exc:
                problems.append(f"node for {EVENTS_KEY}: {exc}")
                return None
        elif self._default_notifier is not None:
            notifier = self._default_notifier
            try:
                flags = await client.get_node(notifier).read_event_notifier()
            except Exception:
                flags = set()
            if ua.EventNotifier.SubscribeToEvents not in flags:
                return None  # a server without events: the message variable is the fallback
        else:
            return None
        try:
            await sub.subscribe_events(client.get_node(notifier), evfilter=event_filter(), queuesize=100)
        except Exception as exc:
            problems.append(f"events of {notifier.to_string()} cannot be subscribed: {_describe(exc)}")
            return None
        try:  # have the server resend the conditions that are active now (alarms raised before we connected)
            await client.get_node(ua.ObjectIds.ConditionType).call_method(
                ua.NodeId(ua.ObjectIds.ConditionType_ConditionRefresh),
                ua.Variant(sub.subscription_id, ua.VariantType.UInt32))
        except Exception as exc:
            self.log.info("opcua_condition_refresh_unsupported", reason=_describe(exc))
        return notifier

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
            self._default_notifier = messages.nodeid
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

    def _on_event(self, event: Any) -> None:
        """A 40501 message or alarm event → an AlarmRecord (an alarm whose ActiveState goes false is cleared)."""
        try:
            fields = vars(event)
            if fields.get("EventType") in REFRESH_EVENTS:
                return
            message = plain(fields.get("Message")) or ""
            name = fields.get("ConditionName")
            active = fields.get("ActiveState/Id")
            condition = fields.get("NodeId")
            severity = fields.get("Severity")
            if name or active is not None or condition is not None:
                key = condition.to_string() if isinstance(condition, ua.NodeId) \
                    else f"{fields.get('SourceName')}/{name}"
                if active is None:  # a condition without ActiveState: Retain says whether it still matters
                    active = fields.get("Retain") is not False
                self._on_condition(key, str(name or severity or "alarm"), str(message or name), bool(active))
            else:
                self._on_message(str(severity if severity is not None else "message"), str(message))
            field_map.apply(self.state, self._derive(), self.name)
            self.last_update = time.monotonic()
        except Exception:  # a malformed event never stops the subscription
            self.log.exception("opcua_event_rejected", event=repr(event))

    def _on_condition(self, key: str, code: str, message: str, active: bool) -> None:
        old = self._conditions.pop(key, None)
        if active:
            if old is not None and (old.code, old.message) == (code, message) and old in self.state.alarms:
                self._conditions[key] = old  # the same alarm again (acknowledged, re-sent): keep its time
                return
            self._drop(old)
            self.state.raise_alarm(code, message, source=self.name)
            self._conditions[key] = self.state.alarms[-1]
            self.log.warning("opcua_alarm", code=code, message=message)
        else:
            # the control was reset: its alarm and the messages shown with it are gone
            self._drop(old, *self._messages)
            self._messages.clear()
            if old is not None:
                self.log.info("opcua_alarm_cleared", code=old.code)

    def _on_message(self, code: str, message: str) -> None:
        for existing in self._messages:
            if (existing.code, existing.message) == (code, message):
                return
        self.state.raise_alarm(code, message, source=self.name)
        self._messages.append(self.state.alarms[-1])
        if len(self._messages) > MAX_MESSAGES:
            self._drop(self._messages.popleft())

    def _drop(self, *records: AlarmRecord | None) -> None:
        gone = [r for r in records if r is not None]
        if gone:
            self.state.update(alarms=tuple(a for a in self.state.alarms if not any(a is r for r in gone)))

    def _forget_events(self) -> None:
        self._drop(*self._conditions.values(), *self._messages)
        self._conditions.clear()
        self._messages.clear()

    def _on_status(self, status: Any) -> None:
        self.log.warning("opcua_subscription_status", status=str(status))
        self._lost.set()

    def _derive(self) -> dict[str, Any]:
        """Raw 40501/40502 values → MachineState paths (alarm beats channel state)."""
        values = {k: v for k, v in self.raw.items() if not k.startswith("_")}
        message = self.raw.get("_message")
        if "_message" in self.raw:
            values["alarm"] = str(message or "")
        if self.events_from is not None:
            values.pop("alarm", None)  # the events own this source's alarms (field_map would replace them)
            message = bool(self._conditions)
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
