"""FanucDriver end to end on the simulated lathe: DNC job in (the DNC runner), Modbus state out, feed hold written."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from labbridge.config import Machine, load_config
from labbridge.drivers.base import Driver, Unsupported
from labbridge.drivers.factory import create_driver
from labbridge.drivers.fanuc import FanucDriver
from labbridge.sim.fanuc.launch import start_fanuc_sim
from labbridge.model import Status
from labbridge.streaming.dnc_runner import DncRunner
from labbridge.streaming.job import JobState
from labbridge.streaming.records import JobStore
from tests.conftest import wait_for as _wait_for

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = "\n".join(
    ["%", "O0500 (FACE AND TURN)", "G21 G18 G99", "T0101", "G50 S2000", "G96 S150 M3", "G0 X60 Z2"]
    + [f"G1 Z-{5 + i} F0.15" if i % 2 == 0 else f"G0 X{60 - i} Z2" for i in range(30)]
    + ["G0 X150 Z50", "M5", "M30", "%"]
)


async def wait_for(condition, timeout: float = 30.0) -> None:
    """The fanuc job moves at scaled real time: give it longer than the shared default."""
    await _wait_for(condition, timeout)


@pytest.fixture
def lathe() -> Machine:
    machine = load_config(ROOT / "config" / "machines.yaml").machine("lathe-1")
    modbus = machine.connection.modbus
    assert modbus is not None
    stop = {"feed_hold": {"table": "coil", "address": 0, "write_value": 1}}
    modbus = modbus.model_copy(update={"map": {**modbus.map, **{k: type(next(iter(modbus.map.values())))
                                                                .model_validate(v) for k, v in stop.items()}},
                                       "writable": True, "poll_hz": 20})
    dnc = machine.connection.dnc.model_copy(update={"baudrate": 38400})  # type: ignore[union-attr]
    return machine.model_copy(update={"connection": machine.connection.model_copy(update={"modbus": modbus,
                                                                                            "dnc": dnc})})


async def test_program_runs_state_follows_and_feed_hold_stops_it(lathe: Machine, tmp_path: Path) -> None:
    program = tmp_path / "o0500.nc"
    program.write_text(PROGRAM)
    async with await start_fanuc_sim("lathe-1", lathe, time_scale=40, buffer_bytes=64) as sim:
        driver = create_driver("lathe-1", sim.machine)
        assert isinstance(driver, FanucDriver) and isinstance(driver, Driver)
        await driver.connect()
        try:
            state = driver.state
            assert state.connected and state.state == Status.IDLE
            assert state.position_machine == {"X": 160.0, "Z": 0.0}
            seen: set[Status] = set()
            state.subscribe(lambda s, names: seen.add(s.state))
            store = JobStore(tmp_path / "data")
            runner = DncRunner(driver, "lathe-1", sim.machine, store, user="tester")
            job = await runner.start(program)
            assert job.protocol == "dnc" and job.state == JobState.RUNNING
            await wait_for(lambda: state.state == Status.RUN and (state.spindle_rpm or 0) > 0)
            await runner.hold()
            assert job.state == JobState.HOLDING
            await wait_for(lambda: state.state == Status.HOLD)
            assert sim.sim.status == Status.HOLD
            held_at = dict(state.position_machine or {})
            await asyncio.sleep(0.3)
            assert sim.sim.snapshot()["position.machine.Z"] == pytest.approx(held_at["Z"], abs=0.01)
            sim.sim.cycle_start()
            await wait_for(lambda: job.state == JobState.RUNNING)  # the record follows the control's resume
            ended = await asyncio.wait_for(runner.wait(), 60)
            assert ended.state == JobState.COMPLETED and ended.lines_acked == PROGRAM.count("\n") - 1
            await wait_for(lambda: state.state == Status.IDLE and state.position_machine == {"X": 150.0, "Z": -130.0})
            assert {Status.RUN, Status.HOLD, Status.IDLE} <= seen
            recorded = store.get(job.id)
            assert recorded is not None and recorded.state == JobState.COMPLETED and recorded.protocol == "dnc"
            events = [e["event"] for e in store.events(job.id)]
            assert events[:3] == ["job_created", "gate_checked", "job_started"]
            assert {"job_held", "job_resumed"} <= set(events) and events[-1] == "job_completed"
            store.close()
        finally:
            await driver.close()
        assert driver.state.state == Status.DISCONNECTED and not driver.state.connected


async def test_feed_hold_without_a_declared_register_is_unsupported(tmp_path: Path) -> None:
    machine = load_config(ROOT / "config" / "machines.yaml").machine("lathe-1")
    async with await start_fanuc_sim("lathe-1", machine) as sim:
        driver = FanucDriver("lathe-1", sim.machine)
        await driver.connect()
        try:
            with pytest.raises(Unsupported, match="FEED HOLD button"):
                await driver.feed_hold()
        finally:
            await driver.close()


async def test_a_machine_with_only_dnc_reports_that_it_has_no_status_source() -> None:
    machine = load_config(ROOT / "config" / "machines.yaml").machine("lathe-1")
    dnc_only = machine.model_copy(update={"connection": machine.connection.model_copy(update={"modbus": None})})
    driver = FanucDriver("lathe-1", dnc_only)
    await driver.connect()
    assert not driver.state.connected and "no live status source" in (driver.state.fault or "")
    await driver.close()
