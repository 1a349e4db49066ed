"""The line a machine really executed (not the last acknowledged), and stream stalls that starve it."""

from __future__ import annotations

import math
from pathlib import Path

from labbridge.config import WORK_OFFSET_CODES
from labbridge.protocols.grbl import clean_line
from labbridge.safety import Interpreter
from labbridge.safety.geometry import distance_to_motion
from labbridge.safety.motion import Motion
from labbridge.streaming.execution import ExecutionTracker
from labbridge.streaming.job import JobState
from labbridge.streaming.starvation import StallWatch
from tests.conftest import make_machine
from tests.jobs_support import close_rig, long_program, make_rig, mill, write_program

BAD = "G1 X1.0000000000 Y1.0000000000 Z-1.0000000000 F600.0000000000 (padding) S8000.0000000000000000000"


def motions_by_line(machine, lines: list[str], offsets, start) -> dict[int, list[Motion]]:
    interp = Interpreter(machine, work_offsets=offsets, start=start, machine_id="mill-1")
    return {n: interp.execute(text, n).motions for n, text in enumerate(lines, 1)}


def test_tracker_follows_position_through_lines_arcs_and_idle() -> None:
    machine = make_machine()
    tracker = ExecutionTracker(machine, "t", start=(0.0, 0.0, 0.0))
    program = ["G21 G90 G17", "G1 X10 Y0 F500", "G1 X10 Y10", "G2 X20 Y10 I5 J0", "G1 X20 Y0", "M5"]
    for n, text in enumerate(program, 1):
        tracker.sent(n, clean_line(text))
    assert tracker.report((5.0, 0.0, 0.0)) == 2
    assert tracker.report((10.0, 4.0, 0.0)) == 3
    top = (15.0 + 5.0 * math.cos(math.radians(135)), 10.0 + 5.0 * math.sin(math.radians(135)), 0.0)
    assert tracker.report(top) == 4  # on the arc, not on its chord
    assert tracker.report((3.0, 3.0, 0.0)) == 4  # nowhere on the remaining path: unchanged
    assert tracker.report((20.0, 5.0, 0.0)) == 5
    assert tracker.report((20.0, 0.0, 0.0), idle=True) == 6  # idle with everything run


def test_tracker_takes_the_firmware_line_number_where_reported() -> None:
    tracker = ExecutionTracker(make_machine(), "t", start=(0.0, 0.0, 0.0))
    for n, text in enumerate(["N10 G1 X10 F500", "N20 G1 X0", "N30 G1 X10"], 1):
        tracker.sent(n, clean_line(text))
    assert tracker.report((5.0, 0.0, 0.0), line_word=30) == 3  # the same spot is on all three lines


def test_stall_watch_judges_by_the_reports_that_follow() -> None:
    watch = StallWatch(stall_after=1.5, judge_seconds=0.3)
    assert not watch.beat(0.0) and not watch.beat(1.0)
    assert watch.beat(10.2) and watch.judging and not watch.beat(10.25)
    watch.status(idle=False, line=791)  # a stale report from before the stall
    watch.status(idle=True, line=792)
    assert watch.due(10.5)
    starved = watch.conclude()
    assert starved is not None and starved.line == 792 and round(starved.seconds, 1) == 9.2
    assert starved.message() == "no data for 9.2 s at line 792 — check the surface there"
    assert watch.beat(13.0) and watch.conclude() is None  # a stall where the machine never ran dry


async def test_after_error_the_record_names_the_line_the_machine_really_reached(tmp_path: Path) -> None:
    # The config believes in a 120-character line buffer; the controller has GRBL's 79: error:11 on line 40,
    # answered only once the planner takes line 40 — with ~15 acknowledged blocks still ahead of the tool.
    rig = await make_rig(tmp_path, machine=mill(line_buffer=120), sim_machine=mill(), time_scale=4.0)
    try:
        lines = long_program(60)
        lines.insert(39, BAD)
        program = write_program(tmp_path, "bad.nc", lines)
        offsets = {k: tuple(v) for k, v in rig.driver.parameters.items() if k in WORK_OFFSET_CODES}
        pos = rig.driver.state.position_machine
        start = (pos["X"], pos["Y"], pos["Z"])
        runner = rig.runner()
        await runner.start(program)
        job = await runner.wait()
        assert job.state == JobState.FAILED and job.error_line == 40 and job.last_acked_line == 39
        assert job.last_sent_line is not None and job.last_sent_line >= 40
        assert job.executed_line is not None and 20 <= job.executed_line < 36, job.executed_line
        final = rig.sim.snapshot()["position"]
        motions = motions_by_line(rig.machine, lines, offsets, start)[job.executed_line]
        assert min(distance_to_motion(m, final) for m in motions) < 0.05  # the tool stands on that line
        assert (f"the machine stopped on line {job.executed_line}; lines {job.executed_line + 1} to 39 were "
                "acknowledged but never ran") in job.message
        saved = rig.store.get(job.id)
        assert saved is not None and saved.executed_line == job.executed_line
    finally:
        await close_rig(rig)
