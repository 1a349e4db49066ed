"""The simulated mill's OPC UA server (asyncua): a subset of OPC 40501 Machine Tools and 40502 CNC.

Instance nodes live in the simulator's own namespace with string ids; their browse
names come from the companion specifications' namespaces, which is what the
driver's default map browses for. Values follow :class:`SimControl` ten times a second.
As on a real 40501 server, the ``Messages`` object emits events: an ``AlarmConditionType``
event (ActiveState true, retained for ConditionRefresh) when the control alarms, and one with
ActiveState false when it is reset; :meth:`OpcUaSimServer.notify` emits a plain message
(``BaseEventType``). With ``events=False`` only the ``ActiveAlarm`` variable is published,
like a server without event support.

Address space (``MT`` = http://opcfoundation.org/UA/MachineTool/, ``CNC`` = http://opcfoundation.org/UA/CNC)::

    Objects/MT:Machines/<machine>/MT:Monitoring/MT:MachineTool/MT:OperationMode
                                 /MT:Monitoring/<Channel1>/MT:ChannelState, MT:FeedOverride
                                 /MT:Monitoring/<Spindle1>/MT:IsRotating, MT:Override
                                 /MT:Production/MT:ActiveProgram/MT:Name, MT:State/CurrentState
                                 /MT:Notification/MT:Messages/<ActiveAlarm>   (Messages is an event notifier)
    Objects/CNC:CncInterface/CNC:CncAxisList/<X|Y|Z>/CNC:ActPos
                            /CNC:CncSpindleList/<S1>/CNC:ActSpeed, CNC:CmdSpeed, CNC:ActLoad, CNC:ActTurnDirection
                            /CNC:CncChannelList/<Channel1>/CNC:ActProgramName, CNC:ActFeedrate, CNC:ActStatus
"""

from __future__ import annotations

import asyncio
import copy
import logging
import socket
from typing import Any

from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole

from labbridge.config import OpcUaConnection
from labbridge.sim.fanuc.control import SimControl
from labbridge.model import Status

MT_NS = "http://opcfoundation.org/UA/MachineTool/"
CNC_NS = "http://opcfoundation.org/UA/CNC"

# OPC 40501 ChannelState: 0 Active, 1 Interrupted, 2 Reset. 40502 CncChannelStatus: 0 Reset, 1 Interrupted, 2 Active.
CHANNEL_STATE = {Status.RUN: 0, Status.HOLD: 1, Status.ALARM: 1}
CNC_CHANNEL_STATUS = {Status.RUN: 2, Status.HOLD: 1, Status.ALARM: 1}
TURN_DIRECTION = {"off": 0, "cw": 1, "ccw": 2}  # CncSpindleTurnDirection: 0 None, 1 CW, 2 CCW

for _name in ("asyncua", "asyncua.server", "asyncua.server.uaprocessor", "asyncua.server.binary_server_asyncio"):
    logging.getLogger(_name).setLevel(logging.ERROR)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _Users:
    """Username/password check for the simulator (the real control has its own user list)."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username is not None and self.users.get(username) == password:
            return User(role=UserRole.User)
        return None


class OpcUaSimServer:
    """One asyncua server publishing a SimControl; ``stop()``/``start()`` keep the same port."""

    def __init__(self, sim: SimControl, *, port: int = 0, users: dict[str, str] | None = None,
                 namespace_uri: str | None = None, period: float = 0.1,
                 certificate: tuple[str, str] | None = None, events: bool = True) -> None:
        self.sim = sim
        self.events = events
        self.port = port or free_port()
        self.users = users
        self.namespace_uri = namespace_uri or f"urn:labbridge:sim:{sim.machine_id}"
        self.period = period
        self.certificate = certificate  # (cert.der, key.pem): offer Basic256Sha256 SignAndEncrypt only
        self.extra_namespaces: list[str] = []  # registered first: shifts every index (as a reconfigured server does)
        self.server: Server | None = None
        self.vars: dict[str, Any] = {}
        self._last: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._alarm_gen: Any = None
        self._message_gen: Any = None
        self._alarm_template: Any = None
        self._ns = 0
        self._pending: list[tuple[str, int, str]] = []  # ("raise" | "clear" | "message", code/severity, text)
        self._active: tuple[int, str] | None = None  # the condition the server reports active
        self._wake = asyncio.Event()
        sim.on_alarm.append(lambda code, message: self._queue("raise", code, message))
        sim.on_reset.append(lambda code, message: self._queue("clear", code, message))

    def _queue(self, kind: str, number: int, text: str) -> None:
        if self.server is not None and self.events:
            self._pending.append((kind, number, text))
            self._wake.set()

    def notify(self, text: str, severity: int = 300) -> None:
        """Emit a plain 40501 message event (BaseEventType) from the Messages object."""
        self._queue("message", severity, text)

    @property
    def url(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/labbridge/{self.sim.machine_id}"

    async def start(self) -> None:
        server = Server(user_manager=_Users(self.users) if self.users else None)  # type: ignore[arg-type]
        server.iserver.bind_condition_methods = self.events  # ConditionRefresh resends the retained alarm
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name(f"labbridge simulator {self.sim.machine_id}")
        if self.certificate:
            await server.load_certificate(self.certificate[0])
            await server.load_private_key(self.certificate[1])
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        if self.users:
            server.set_identity_tokens([ua.UserNameIdentityToken])
        await self._build(server)
        await server.start()
        self.server = server
        self._last.clear()
        self._pending.clear()
        self._active = None
        if self.sim.alarm:  # a restarted server knows the control's active alarm (ConditionRefresh finds it)
            self._queue("raise", self.sim.alarm, self.sim.alarm_message)
        self._task = asyncio.create_task(self._publish())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        if self.server is not None:
            await self.server.stop()
            self.server = None

    async def _build(self, server: Server) -> None:
        for uri in self.extra_namespaces:
            await server.register_namespace(uri)
        mt = await server.register_namespace(MT_NS)
        cnc = await server.register_namespace(CNC_NS)
        ns = await server.register_namespace(self.namespace_uri)
        mid = self.sim.machine_id

        def nid(path: str) -> ua.NodeId:
            return ua.NodeId(f"{mid}.{path}", ns)

        async def obj(parent: Any, path: str, name: str, name_ns: int) -> Any:
            return await parent.add_object(nid(path), ua.QualifiedName(name, name_ns))

        async def var(parent: Any, path: str, name: str, name_ns: int, value: Any, vtype: ua.VariantType,
                      key: str) -> None:
            node = await parent.add_variable(nid(path), ua.QualifiedName(name, name_ns), ua.Variant(value, vtype))
            self.vars[key] = (node, vtype)

        objects = server.nodes.objects
        machines = await obj(objects, "Machines", "Machines", mt)
        machine = await obj(machines, "Machine", mid, ns)
        monitoring = await obj(machine, "Monitoring", "Monitoring", mt)
        tool = await obj(monitoring, "Monitoring.MachineTool", "MachineTool", mt)
        await var(tool, "Monitoring.MachineTool.OperationMode", "OperationMode", mt, 2, ua.VariantType.Int32, "opmode")
        channel = await obj(monitoring, "Monitoring.Channel1", "Channel1", ns)
        await var(channel, "Monitoring.Channel1.ChannelState", "ChannelState", mt, 2, ua.VariantType.Int32, "chstate")
        await var(channel, "Monitoring.Channel1.FeedOverride", "FeedOverride", mt, 100.0, ua.VariantType.Double,
                  "overrides.feed")
        spindle = await obj(monitoring, "Monitoring.Spindle1", "Spindle1", ns)
        await var(spindle, "Monitoring.Spindle1.IsRotating", "IsRotating", mt, False, ua.VariantType.Boolean,
                  "spindle.rotating")
        await var(spindle, "Monitoring.Spindle1.Override", "Override", mt, 100.0, ua.VariantType.Double,
                  "overrides.spindle")
        production = await obj(machine, "Production", "Production", mt)
        active = await obj(production, "Production.ActiveProgram", "ActiveProgram", mt)
        await var(active, "Production.ActiveProgram.Name", "Name", mt, "", ua.VariantType.String, "program_name")
        state = await obj(active, "Production.ActiveProgram.State", "State", mt)
        await var(state, "Production.ActiveProgram.State.CurrentState", "CurrentState", 0,
                  ua.LocalizedText("Ended"), ua.VariantType.LocalizedText, "progstate")
        notification = await obj(machine, "Notification", "Notification", mt)
        messages = await obj(notification, "Notification.Messages", "Messages", mt)
        await var(messages, "Notification.Messages.ActiveAlarm", "ActiveAlarm", ns, "", ua.VariantType.String, "alarm")
        self._ns = ns
        if self.events:
            self._alarm_gen = await server.get_event_generator(ua.ObjectIds.AlarmConditionType, messages)
            self._alarm_template = copy.copy(self._alarm_gen.event)
            self._message_gen = await server.get_event_generator(ua.ObjectIds.BaseEventType, messages)

        cnc_if = await obj(objects, "CncInterface", "CncInterface", cnc)
        axes = await obj(cnc_if, "CncAxisList", "CncAxisList", cnc)
        for axis in self.sim.machine.axes:
            node = await obj(axes, f"CncAxisList.{axis}", axis, ns)
            await var(node, f"CncAxisList.{axis}.ActPos", "ActPos", cnc, 0.0, ua.VariantType.Double,
                      f"position.machine.{axis}")
        spindles = await obj(cnc_if, "CncSpindleList", "CncSpindleList", cnc)
        s1 = await obj(spindles, "CncSpindleList.S1", "S1", ns)
        await var(s1, "CncSpindleList.S1.ActSpeed", "ActSpeed", cnc, 0.0, ua.VariantType.Double, "spindle.rpm")
        await var(s1, "CncSpindleList.S1.CmdSpeed", "CmdSpeed", cnc, 0.0, ua.VariantType.Double, "cmd_speed")
        await var(s1, "CncSpindleList.S1.ActLoad", "ActLoad", cnc, 0.0, ua.VariantType.Double, "spindle.load")
        await var(s1, "CncSpindleList.S1.ActTurnDirection", "ActTurnDirection", cnc, 0, ua.VariantType.Int32,
                  "spindle.direction")
        channels = await obj(cnc_if, "CncChannelList", "CncChannelList", cnc)
        c1 = await obj(channels, "CncChannelList.Channel1", "Channel1", ns)
        await var(c1, "CncChannelList.Channel1.ActProgramName", "ActProgramName", cnc, "", ua.VariantType.String,
                  "cnc_program_name")
        await var(c1, "CncChannelList.Channel1.ActFeedrate", "ActFeedrate", cnc, 0.0, ua.VariantType.Double, "feed")
        await var(c1, "CncChannelList.Channel1.ActStatus", "ActStatus", cnc, 0, ua.VariantType.Int32, "cncstatus")

    def _values(self) -> dict[str, Any]:
        snap = self.sim.snapshot()
        status = self.sim.status
        program_state = {Status.RUN: "Running", Status.HOLD: "Interrupted", Status.ALARM: "Aborted"}.get(
            status, "Ended")
        values = {key: snap.get(key) for key in self.vars if key in snap}
        modal = self.sim.interp.modal
        cmd_rpm = float(modal.rpm) if modal.spindle in (3, 4) else 0.0
        values.update({
            "opmode": 2,
            "chstate": CHANNEL_STATE.get(status, 2),
            "cncstatus": CNC_CHANNEL_STATUS.get(status, 0),
            "progstate": ua.LocalizedText(program_state),
            "spindle.direction": TURN_DIRECTION.get(snap["spindle.direction"], 0),
            "cmd_speed": cmd_rpm,
            "cnc_program_name": snap["program_name"],
            "alarm": f"{self.sim.alarm} {self.sim.alarm_message}".strip() if self.sim.alarm else "",
            "overrides.feed": float(snap["overrides.feed"]),
            "overrides.spindle": float(snap["overrides.spindle"]),
        })
        return values

    async def _emit(self, kind: str, number: int, text: str) -> None:
        """One event from the Messages object; a condition event gets a fresh copy (the server retains it)."""
        if kind == "message":
            self._message_gen.event.Severity = number
            await self._message_gen.trigger(message=text)
            return
        if kind == "raise" and self._active is not None and self._active[0] != number:
            await self._emit("clear", *self._active)  # a new alarm replaces the old one on this control
        active = kind == "raise"
        event = copy.copy(self._alarm_template)
        event.NodeId = ua.NodeId(f"{self.sim.machine_id}.Notification.Messages.Alarm{number}", self._ns)
        event.ConditionName = str(number)
        event.Severity = 800
        event.Retain = active
        setattr(event, "ActiveState/Id", active)
        event.ActiveState = ua.LocalizedText("Active" if active else "Inactive")
        setattr(event, "EnabledState/Id", True)
        event.EnabledState = ua.LocalizedText("Enabled")
        self._alarm_gen.event = event
        await self._alarm_gen.trigger(message=text if active else f"{text} (reset)")
        self._active = (number, text) if active else None

    async def _publish(self) -> None:
        while True:
            while self._pending:
                try:
                    await self._emit(*self._pending.pop(0))
                except Exception:  # a failed event never stops the values
                    logging.getLogger(__name__).exception("sim event not emitted")
            for key, value in self._values().items():
                if key not in self.vars or self._last.get(key) == value:
                    continue
                node, vtype = self.vars[key]
                if vtype == ua.VariantType.Double:
                    value = float(value)
                await node.write_value(ua.Variant(value, vtype))
                self._last[key] = value
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.period)
            except asyncio.TimeoutError:
                pass


async def start_opcua_server(
    sim: SimControl, config: OpcUaConnection | None, *, port: int = 0, users: dict[str, str] | None = None
) -> tuple[OpcUaSimServer, OpcUaConnection]:
    """Serve the sim on 127.0.0.1; returns the server and an OpcUaConnection that reaches it."""
    server = OpcUaSimServer(sim, port=port, users=users)
    await server.start()
    base = config or OpcUaConnection(url=server.url)
    update: dict[str, Any] = {"url": server.url, "security": None, "server_certificate": None}
    if users:
        name, password = next(iter(users.items()))
        update.update(username=name, password=password)
    return server, base.model_copy(update=update)
