"""OPC 40501 notifications as events: the simulated mill's Messages object against the OPC UA source.

Real asyncua server and client on 127.0.0.1; one simulator per module (it is slow to start).
The sim's alarms never reset themselves here (alarm_hold=0): each test resets what it raised.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import pytest_asyncio

from labbridge.config import Machine, OpcUaConnection, load_config
from labbridge.drivers.fanuc import FanucDriver
from labbridge.sim.fanuc.launch import FanucSimHandle, start_fanuc_sim
from labbridge.sim.fanuc.opcua_server import OpcUaSimServer
from labbridge.drivers.sources.opcua import OpcUaSource
from labbridge.errors import ConfigError
from labbridge.model import MachineState, Status
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[1]
NS = "urn:labbridge:sim:mill-2"
MESSAGES = f"nsu={NS};s=mill-2.Notification.Messages"
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]


@pytest.fixture(scope="module")
def mill() -> Machine:
    return load_config(ROOT / "config" / "machines.yaml").machine("mill-2")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim(mill: Machine):
    handle = await start_fanuc_sim("mill-2", mill, time_scale=20, alarm_hold=0)
    yield handle
    await handle.close()


@pytest.fixture(autouse=True)
def reset_after(sim: FanucSimHandle):
    yield
    sim.sim.reset()


def opcua(sim: FanucSimHandle, **changes: object) -> OpcUaConnection:
    return sim.machine.connection.opcua.model_copy(update=changes)  # type: ignore[union-attr]


def server(sim: FanucSimHandle) -> OpcUaSimServer:
    return sim.servers[-1]


async def test_alarm_arrives_as_an_event_and_reset_clears_it(sim: FanucSimHandle) -> None:
    state = MachineState("mill-2")
    src = OpcUaSource("mill-2", opcua(sim), state)
    await src.start()
    try:
        assert src.up and src.fault is None
        assert src.events_from is not None and src.events_from.Identifier == "mill-2.Notification.Messages"
        assert "_message" not in src.paths.values(), "with events the message variable is not read as well"
        assert state.alarms == ()
        sim.sim.raise_alarm(10, "block 3 'G1 X1': test alarm")
        await wait_for(lambda: state.state == Status.ALARM and state.alarms)
        assert len(state.alarms) == 1
        alarm = state.alarms[0]
        assert (alarm.code, alarm.message, alarm.source) == ("10", "block 3 'G1 X1': test alarm", "opcua")
        sim.sim.reset()
        await wait_for(lambda: not state.alarms and state.state == Status.IDLE)
    finally:
        await src.stop()


async def test_a_new_alarm_replaces_the_one_the_control_dropped(sim: FanucSimHandle) -> None:
    state = MachineState("mill-2")
    src = OpcUaSource("mill-2", opcua(sim), state)
    await src.start()
    try:
        sim.sim.raise_alarm(10, "first")
        await wait_for(lambda: [a.code for a in state.alarms] == ["10"])
        sim.sim.raise_alarm(11, "second")
        await wait_for(lambda: [a.code for a in state.alarms] == ["11"])
        assert state.alarms[0].message == "second" and state.state == Status.ALARM
    finally:
        await src.stop()


async def test_alarm_active_before_connecting_is_shown_by_condition_refresh(sim: FanucSimHandle) -> None:
    sim.sim.raise_alarm(12, "raised while nobody watched")
    await asyncio.sleep(0.3)  # the sim emits the event within one publish period; no subscriber sees it
    state = MachineState("mill-2")
    src = OpcUaSource("mill-2", opcua(sim), state)
    await src.start()
    try:
        await wait_for(lambda: state.alarms)
        assert [(a.code, a.message) for a in state.alarms] == [("12", "raised while nobody watched")]
        assert state.state == Status.ALARM
        sim.sim.reset()
        await wait_for(lambda: not state.alarms)
    finally:
        await src.stop()


async def test_plain_message_event_is_shown_until_the_control_is_reset(sim: FanucSimHandle) -> None:
    state = MachineState("mill-2")
    src = OpcUaSource("mill-2", opcua(sim), state)
    await src.start()
    try:
        server(sim).notify("TOOL 3 WORN: replace before next job", severity=400)
        await wait_for(lambda: state.alarms)
        assert [(a.code, a.message) for a in state.alarms] == [("400", "TOOL 3 WORN: replace before next job")]
        assert state.state != Status.ALARM, "a message is not an alarm state"
        server(sim).notify("TOOL 3 WORN: replace before next job", severity=400)
        sim.sim.raise_alarm(10, "spindle overload")
        await wait_for(lambda: len(state.alarms) == 2)
        assert [a.code for a in state.alarms] == ["400", "10"], "the repeated message is not shown twice"
        sim.sim.reset()
        await wait_for(lambda: not state.alarms)
    finally:
        await src.stop()


async def test_configured_notifier_without_default_map(sim: FanucSimHandle) -> None:
    nodes = {"alarm_events": MESSAGES, "spindle.load": f"nsu={NS};s=mill-2.CncSpindleList.S1.ActLoad"}
    state = MachineState("mill-2")
    src = OpcUaSource("mill-2", opcua(sim, nodes=nodes, use_default_map=False), state)
    await src.start()
    try:
        assert src.up and src.fault is None and src.events_from is not None
        assert set(src.paths.values()) == {"spindle.load"}
        sim.sim.raise_alarm(10, "configured notifier")
        await wait_for(lambda: state.alarms)
        assert state.alarms[0].message == "configured notifier"
        sim.sim.reset()
        await wait_for(lambda: not state.alarms)
    finally:
        await src.stop()


async def test_configured_notifier_in_an_unknown_namespace_is_a_fault(sim: FanucSimHandle) -> None:
    state = MachineState("mill-2")
    src = OpcUaSource("mill-2", opcua(sim, nodes={"alarm_events": "nsu=urn:nowhere;s=Messages"}), state)
    await src.start()
    try:
        assert src.fault is not None and "alarm_events" in src.fault and "urn:nowhere" in src.fault
        assert src.events_from is None and "_message" in src.paths.values(), "falls back to the variable"
        sim.sim.raise_alarm(10, "via the variable")
        await wait_for(lambda: state.alarms)
        assert state.alarms[0].message == "via the variable"
    finally:
        await src.stop()


async def test_alarm_events_node_named_by_index_is_refused(sim: FanucSimHandle) -> None:
    with pytest.raises(ConfigError, match="alarm_events.*namespace"):
        OpcUaSource("mill-2", opcua(sim, nodes={"alarm_events": "ns=4;s=mill-2.Notification.Messages"}),
                    MachineState("mill-2"))


async def test_server_without_events_falls_back_to_the_message_variable(sim: FanucSimHandle) -> None:
    plain_server = OpcUaSimServer(sim.sim, events=False)
    await plain_server.start()
    state = MachineState("mill-2")
    src = OpcUaSource("mill-2", opcua(sim, url=plain_server.url), state)
    try:
        await src.start()
        assert src.up and src.fault is None
        assert src.events_from is None and "_message" in src.paths.values()
        sim.sim.raise_alarm(10, "block 3: no events here")
        await wait_for(lambda: state.state == Status.ALARM and state.alarms)
        assert (state.alarms[0].code, state.alarms[0].message) == ("10", "block 3: no events here")
        sim.sim.reset()
        await wait_for(lambda: not state.alarms and state.state == Status.IDLE)
    finally:
        await src.stop()
        await plain_server.stop()


async def test_driver_shows_event_alarms_in_its_state_json(sim: FanucSimHandle) -> None:
    driver = FanucDriver("mill-2", sim.machine)
    await driver.connect()
    try:
        sim.sim.raise_alarm(10, "door interlock")
        await wait_for(lambda: driver.state.to_dict()["alarms"])
        shown = driver.state.to_dict()
        assert shown["state"] == "Alarm"
        assert [(a["code"], a["message"], a["source"]) for a in shown["alarms"]] == [("10", "door interlock", "opcua")]
        sim.sim.reset()
        await wait_for(lambda: driver.state.to_dict()["alarms"] == [])
    finally:
        await driver.close()


async def test_alarm_still_shown_after_the_server_restarts(sim: FanucSimHandle) -> None:
    state = MachineState("mill-2")
    src = OpcUaSource("mill-2", opcua(sim), state, keepalive=0.5)
    await src.start()
    try:
        sim.sim.raise_alarm(10, "across a restart")
        await wait_for(lambda: state.alarms)
        await server(sim).stop()
        await wait_for(lambda: not src.up, timeout=30)
        await server(sim).start()
        await wait_for(lambda: src.up, timeout=30)
        await wait_for(lambda: [(a.code, a.message) for a in state.alarms] == [("10", "across a restart")])
        assert state.state == Status.ALARM
        sim.sim.reset()
        await wait_for(lambda: not state.alarms)
    finally:
        await src.stop()
