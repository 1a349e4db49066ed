"""The OPC UA status source against the simulated mill's asyncua server (one server per module: it is slow to start)."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_asyncio

from labbridge.config import Machine, OpcUaConnection, load_config
from labbridge.drivers.fanuc import FanucDriver
from labbridge.sim.fanuc.launch import FanucSimHandle, start_fanuc_sim
from labbridge.drivers.sources.opcua import OpcUaSource
from labbridge.model import MachineState, Status
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[1]
NS = "urn:labbridge:sim:mill-2"
USERS = {"operator": "s3cret"}
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def mill() -> Machine:
    return load_config(ROOT / "config" / "machines.yaml").machine("mill-2")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim(mill: Machine):
    handle = await start_fanuc_sim("mill-2", mill, time_scale=20, opcua_users=USERS)
    yield handle
    await handle.close()


def opcua(sim: FanucSimHandle, **changes: object) -> OpcUaConnection:
    return sim.machine.connection.opcua.model_copy(update=changes)  # type: ignore[union-attr]


async def test_default_map_follows_the_machine_as_it_runs(sim: FanucSimHandle) -> None:
    driver = FanucDriver("mill-2", sim.machine)
    await driver.connect()
    try:
        state = driver.state
        assert state.connected and state.fault is None
        assert state.state == Status.IDLE
        assert state.position_machine == {"X": 0.0, "Y": 0.0, "Z": 0.0}
        assert state.spindle_rpm == 0.0 and state.spindle_direction == "off"
        for i, block in enumerate(["O0007", "G21 G90 G54", "S3000 M3", "G0 X10 Y10 Z5",
                                   "G1 X60 Y10 Z-2 F600", "G1 X60 Y60", "G0 Z50", "M5", "M30"], start=1):
            from labbridge.protocols import dnc as dp

            sim.sim.queue.append(dp.Block(block, i))
        await wait_for(lambda: state.state == Status.RUN and (state.feed or 0) > 0)
        assert state.spindle_rpm == pytest.approx(3000.0) and state.spindle_direction == "cw"
        assert state.program_name == "O0007" and state.override_feed == 100
        await wait_for(lambda: state.state == Status.IDLE and state.spindle_rpm == 0.0)
        assert state.position_machine["Z"] == pytest.approx(-250.0)  # G54 Z -300 + 50
        assert state.position_machine["X"] == pytest.approx(-240.0)
    finally:
        await driver.close()
    assert driver.state.state == Status.DISCONNECTED


async def test_alarm_message_becomes_an_alarm_state(sim: FanucSimHandle) -> None:
    state = MachineState("mill-2")
    src = OpcUaSource("mill-2", opcua(sim), state)
    await src.start()
    try:
        sim.sim.raise_alarm(10, "block 3 'G1 X1': test alarm")
        await wait_for(lambda: state.state == Status.ALARM and state.alarms)
        assert state.alarms[0].code == "10" and "test alarm" in state.alarms[0].message
        sim.sim.reset()
        await wait_for(lambda: state.state == Status.IDLE and not state.alarms)
    finally:
        await src.stop()


async def test_configured_nodes_are_resolved_by_namespace_uri(sim: FanucSimHandle) -> None:
    nodes = {
        "spindle.load": f"nsu={NS};s=mill-2.CncSpindleList.S1.ActLoad",
        "position.work.X": f"nsu={NS};s=mill-2.CncAxisList.X.ActPos",
        "program_name": f"nsu={NS};s=mill-2.Production.ActiveProgram.Name",
    }
    state = MachineState("mill-2")
    src = OpcUaSource("mill-2", opcua(sim, nodes=nodes, use_default_map=False), state)
    await src.start()
    try:
        assert src.up and src.fault is None
        assert set(src.paths.values()) == set(nodes)
        assert state.spindle_load is not None and state.position_work is not None
        assert state.position_machine is None, "only the configured nodes are read"
    finally:
        await src.stop()


async def test_unknown_namespace_is_a_fault_that_names_it(sim: FanucSimHandle) -> None:
    state = MachineState("mill-2")
    src = OpcUaSource("mill-2", opcua(sim, nodes={"feed": "nsu=urn:nowhere;s=Feed"}), state)
    await src.start()
    try:
        assert src.fault is not None and "urn:nowhere" in src.fault
        assert state.spindle_rpm is not None, "the default map still works"
    finally:
        await src.stop()


async def test_wrong_password_is_refused_with_a_clear_fault(sim: FanucSimHandle) -> None:
    state = MachineState("mill-2")
    src = OpcUaSource("mill-2", opcua(sim, password="wrong"), state)
    await src.start()
    try:
        assert not src.up
        assert "login refused" in (src.fault or "") or "Bad" in (src.fault or ""), src.fault
    finally:
        await src.stop()


@pytest.mark.slow
async def test_server_restart_marks_disconnected_then_recovers(sim: FanucSimHandle) -> None:
    load = {"spindle.load": f"nsu={NS};s=mill-2.CncSpindleList.S1.ActLoad"}
    machine = sim.machine.model_copy(update={"connection": sim.machine.connection.model_copy(
        update={"opcua": opcua(sim, nodes=load)})})
    driver = FanucDriver("mill-2", machine)
    opc = driver.sources[0]
    opc.keepalive = 0.5
    await driver.connect()
    try:
        assert driver.state.connected
        server = sim.servers[-1]
        await server.stop()
        await wait_for(lambda: not driver.state.connected, timeout=30)
        assert driver.state.state == Status.DISCONNECTED and "OPC UA server" in (driver.state.fault or "")
        before = {p: nid.NamespaceIndex for nid, p in opc.paths.items()}
        server.extra_namespaces = ["urn:labbridge:test:shift", "urn:labbridge:test:shift2"]
        await server.start()  # every namespace index moved by two
        await wait_for(lambda: driver.state.connected and driver.state.state == Status.IDLE, timeout=30)
        after = {p: nid.NamespaceIndex for nid, p in opc.paths.items()}
        assert after["spindle.load"] == before["spindle.load"] + 2
        assert after["position.machine.X"] == before["position.machine.X"] + 2
        sim.sim.feed_override = 50
        await wait_for(lambda: driver.state.override_feed == 50)
        assert opc.fault is None
    finally:
        sim.sim.feed_override = 100
        await driver.close()
