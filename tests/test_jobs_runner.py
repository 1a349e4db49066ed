"""The job runner over a real pty: the real GRBL driver streaming into the GRBL simulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from labbridge.protocols.grbl import clean_line
from labbridge.errors import InterlockError
from labbridge.model import Status
from labbridge.streaming.runner import GateRejected, JobState
from tests.jobs_support import close_rig, long_program, make_rig, mill, write_program

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def cleaned(lines: list[str]) -> list[str]:
    return [c for c in (clean_line(t) for t in lines) if c and c != "%"]


async def test_full_job_every_line_acknowledged_and_recorded(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path)
    try:
        program = EXAMPLES / "mill-1-nameplate.nc"
        progress: list[int] = []
        runner = rig.runner(progress_interval=0)
        job = await runner.start(program, on_progress=lambda j: progress.append(j.lines_acked))
        assert job.state == JobState.RUNNING
        job = await runner.wait()
        source = program.read_text().splitlines()
        assert job.state == JobState.COMPLETED, job.message
        assert job.lines_acked == job.lines_total == len(cleaned(source))
        assert job.last_acked_line == len(source)
        assert rig.received.program_lines() == cleaned(source)  # every line, once, in order
        assert progress == sorted(progress) and progress[-1] == job.lines_total
        assert rig.sim.snapshot()["state"] == "Idle" and rig.sim.snapshot()["planner"] == 0
        stored = rig.store.get(job.id)
        assert stored is not None and stored.state == JobState.COMPLETED and stored.user == "tester"
        assert stored.program_sha256 == __import__("hashlib").sha256(program.read_bytes()).hexdigest()
        events = [e["event"] for e in rig.store.events(job.id)]
        assert events[0] == "job_created" and "gate_checked" in events and events[-1] == "job_completed"
        assert rig.driver.state.job is not None and rig.driver.state.job.state == "completed"
    finally:
        await close_rig(rig)


@pytest.mark.slow
async def test_hold_sends_nothing_until_resume_then_completes(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path, time_scale=10.0)
    try:
        program = write_program(tmp_path, "long.nc", long_program(120))
        runner = rig.runner()
        await runner.start(program)
        await rig.until(lambda: rig.driver.state.state == Status.RUN, what="Run")
        await runner.hold()
        assert runner.job.state == JobState.HOLDING
        await rig.until(lambda: rig.driver.state.state == Status.HOLD and rig.driver.state.substate == 0,
                        what="Hold:0")
        held_at = len(rig.received.program_lines())
        acked = runner.job.lines_acked
        # a few more status reports while held: the controller stays put and no line is sent
        await rig.reports(5)
        assert len(rig.received.program_lines()) == held_at
        assert rig.sim.snapshot()["state"] == "Hold:0"
        await runner.resume()
        job = await runner.wait()
        assert job.state == JobState.COMPLETED, job.message
        assert job.lines_acked == job.lines_total > acked
        events = [e["event"] for e in rig.store.events(job.id)]
        assert events.index("job_held") < events.index("job_resumed") < events.index("job_completed")
    finally:
        await close_rig(rig)


async def test_cancel_holds_resets_and_sends_nothing_more(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path, time_scale=10.0)
    try:
        program = write_program(tmp_path, "long.nc", long_program(200))
        runner = rig.runner()
        await runner.start(program)
        await rig.until(lambda: runner.job.lines_acked > 20, what="20 lines acknowledged")
        job = await runner.cancel()
        assert job is not None and job.state == JobState.CANCELLED, job.message
        assert "soft reset" in job.message
        sent = len(rig.received.program_lines())
        assert sent == job.lines_sent < job.lines_total
        assert b"!" in rig.received.realtime and b"\x18" in rig.received.realtime
        assert rig.received.realtime.index(b"!") < rig.received.realtime.index(b"\x18")  # hold before reset
        await rig.until(lambda: rig.driver.state.state == Status.IDLE, what="Idle after cancel")
        snap = rig.sim.snapshot()
        assert snap["state"] == "Idle" and snap["planner"] == 0 and snap["rx"] == 0
        await rig.reports(3)
        assert len(rig.received.program_lines()) == sent
        assert rig.store.get(job.id).state == JobState.CANCELLED
    finally:
        await close_rig(rig)


async def test_error_mid_job_stops_at_the_failing_line(tmp_path: Path) -> None:
    # The config believes in a 120-character line buffer; the controller has GRBL's 79: error:11.
    machine = mill(line_buffer=120)
    rig = await make_rig(tmp_path, machine=machine, sim_machine=mill(), time_scale=20.0)
    try:
        lines = long_program(40)
        bad = "G1 X1.0000000000 Y1.0000000000 Z-1.0000000000 F600.0000000000 (padding) S8000.0000000000000000000"
        assert len(clean_line(bad)) > 79
        lines.insert(20, bad)
        program = write_program(tmp_path, "bad.nc", lines)
        runner = rig.runner()
        await runner.start(program)
        job = await runner.wait()
        assert job.state == JobState.FAILED
        assert job.error_code == "error:11" and job.error_line == 21
        assert "line 21" in job.message and "error:11" in job.message and "line overflow" in job.message
        failing = [e for e in rig.store.events(job.id) if e["event"] == "job_line_error"][0]
        received = rig.received.program_lines()
        # nothing after the failing line was sent beyond what was already in flight when error:11 came back
        assert len(received) == failing["lines_sent"] == job.lines_sent
        assert received == cleaned(lines)[: len(received)]
        assert job.lines_sent - 21 < 128 // 4  # only what fitted GRBL's 128-byte RX buffer
        assert b"!" in rig.received.realtime  # feed hold went out
        await rig.until(lambda: rig.sim.snapshot()["planner"] == 0, what="planner flushed")
        await rig.reports(3)
        assert len(rig.received.program_lines()) == len(received)
    finally:
        await close_rig(rig)


async def test_alarm_mid_job_fails_with_its_meaning_and_sends_nothing_more(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path, time_scale=20.0)
    try:
        lines = long_program(30)
        lines.insert(10, "G38.2 Z-5 F100")  # the probe never touches: ALARM:5
        program = write_program(tmp_path, "probe.nc", lines)
        runner = rig.runner()
        await runner.start(program)
        job = await runner.wait()
        assert job.state == JobState.FAILED, job.message
        assert job.error_code == "ALARM:5"
        assert "ALARM:5" in job.message and "probe" in job.message.lower()
        sent = len(rig.received.program_lines())
        assert sent == job.lines_sent
        await rig.reports(3)
        assert len(rig.received.program_lines()) == sent
        assert rig.driver.state.state == Status.ALARM
    finally:
        await close_rig(rig)


async def test_port_closed_mid_job_interrupts_and_records_the_last_acked_line(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path, time_scale=10.0)
    try:
        program = write_program(tmp_path, "long.nc", long_program(200))
        runner = rig.runner()
        await runner.start(program)
        await rig.until(lambda: runner.job.lines_acked > 10, what="10 lines acknowledged")
        rig.sim.unplug()
        job = await asyncio.wait_for(runner.wait(), 30)
        assert job.state == JobState.INTERRUPTED
        assert job.last_acked_line is not None and job.last_acked_line >= 10
        assert job.error_code == "disconnected"
        assert f"line {job.last_acked_line}" in job.message
        stored = rig.store.get(job.id)
        assert stored.state == JobState.INTERRUPTED and stored.last_acked_line == job.last_acked_line
        assert stored.lines_acked == job.lines_acked
    finally:
        await close_rig(rig)


async def test_resume_from_line_restores_state_and_ends_where_the_full_run_ends(tmp_path: Path) -> None:
    program = EXAMPLES / "mill-1-nameplate.nc"
    source = program.read_text().splitlines()
    full = await make_rig(tmp_path / "a")
    try:
        job = await (r := full.runner()).start(program)
        job = await r.wait()
        assert job.state == JobState.COMPLETED
        end_full = full.sim.snapshot()["position"]
    finally:
        await close_rig(full)
    rig = await make_rig(tmp_path / "b")
    try:
        runner = rig.runner()
        job = await runner.start(program, from_line=20)
        job = await runner.wait()
        assert job.state == JobState.COMPLETED, job.message
        received = rig.received.program_lines()
        remainder = cleaned(source[19:])
        assert received[-len(remainder):] == remainder  # the program from line 20 on, after the preamble
        preamble = received[: -len(remainder)]
        assert preamble[1] == "G53G0Z-1" and preamble[2].startswith("G53G0X")  # up first, then over
        assert any(p.startswith("M3S9000") for p in preamble) and any(p.startswith("G4P") for p in preamble)
        assert job.from_line == 20 and job.last_acked_line == len(source)
        assert rig.sim.snapshot()["position"] == pytest.approx(end_full)
        events = {e["event"]: e for e in rig.store.events(job.id)}
        assert events["resume_preamble"]["from_line"] == 20
    finally:
        await close_rig(rig)


async def test_check_mode_streams_without_motion_and_leaves_check_mode(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path, time_scale=1.0)
    try:
        runner = rig.runner()
        job = await runner.start(EXAMPLES / "mill-1-nameplate.nc", check_mode=True)
        job = await runner.wait()
        assert job.state == JobState.COMPLETED and "check mode" in job.message
        lines = rig.received.lines()
        assert lines.count("$C") == 2 and lines.index("$C") < lines.index("G21G90G94G17G54")
        assert rig.sim.snapshot()["position"] == (0.0, 0.0, 0.0)
        await rig.until(lambda: rig.driver.state.state == Status.IDLE, what="Idle after $C off")
    finally:
        await close_rig(rig)


async def test_interlocks_refuse_by_name_and_send_nothing(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path, machine=mill(homing_required=True))
    try:
        program = EXAMPLES / "mill-1-nameplate.nc"
        await rig.until(lambda: rig.driver.state.state == Status.ALARM, what="homing lock")
        with pytest.raises(InterlockError) as info:
            await rig.runner().start(program)
        assert info.value.interlock == "alarm"
        await rig.driver.unlock()
        await rig.until(lambda: rig.driver.state.state == Status.IDLE, what="Idle after $X")
        with pytest.raises(InterlockError) as info:
            await rig.runner().start(program)
        assert info.value.interlock == "homed"
        await rig.driver.home()
        rig.sim.set_pin("D", True)
        await rig.until(lambda: "D" in rig.driver.state.pins, what="door pin")
        with pytest.raises(InterlockError) as info:
            await rig.runner().start(program)
        assert info.value.interlock == "door"
        rig.sim.set_pin("D", False)
        await rig.until(lambda: "D" not in rig.driver.state.pins, what="door closed")
        await rig.driver.cycle_start()  # GRBL leaves the door state on cycle start once it is closed
        await rig.until(lambda: rig.driver.state.state == Status.IDLE, what="Idle after door")
        assert rig.received.program_lines() == []
        first = rig.runner()
        await first.start(write_program(tmp_path, "long.nc", long_program(100)))
        with pytest.raises(InterlockError) as info:
            await rig.runner().start(program)
        assert info.value.interlock == "busy"
        await first.cancel()
    finally:
        await close_rig(rig)


async def test_gate_rejection_with_live_offsets_sends_nothing(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path)
    try:
        program = EXAMPLES / "mill-1-nameplate.nc"
        # Someone zeroed G54 near the back-right corner at the machine: the plate no longer fits the envelope.
        await rig.driver.mdi("G10 L2 P1 X-20 Y-20 Z-10")
        with pytest.raises(GateRejected) as info:
            await rig.runner().start(program)
        assert not info.value.report.ok and "envelope" in {d.code for d in info.value.report.errors}
        assert "Nothing was sent" in str(info.value)
        assert rig.received.program_lines() == ["G10L2P1X-20Y-20Z-10"]  # only the MDI line
        job = rig.store.list_jobs("mill-1")[0]
        assert job.state == JobState.FAILED and "safety gate" in job.message
    finally:
        await close_rig(rig)


async def test_eeprom_writing_line_goes_alone_and_no_byte_is_lost(tmp_path: Path) -> None:
    # G10 L20 writes GRBL's EEPROM: the AVR drops serial bytes meanwhile, so it must travel alone.
    lines = ["G21 G90 G94 G17 G54", "G0 X10 Y10 Z5"] + [f"G1 X{10 + i % 5} Y{10 + i % 3} F800" for i in range(20)]
    lines += ["G10 L20 P1 X0 Y0"] + [f"G1 X{i % 4} Y{i % 6} F800" for i in range(30)] + ["G0 Z5", "M30"]
    rig = await make_rig(tmp_path)
    try:
        runner = rig.runner()
        await runner.start(write_program(tmp_path, "g10.nc", lines))
        job = await runner.wait()
        assert job.state == JobState.COMPLETED, job.message
        assert rig.received.program_lines() == cleaned(lines)  # nothing lost, nothing garbled
        offsets = rig.sim.snapshot()["offsets"]["G54"]
        assert offsets[0] != -240.0 and offsets[1] != -150.0  # the new G54 reached the EEPROM
    finally:
        await close_rig(rig)
