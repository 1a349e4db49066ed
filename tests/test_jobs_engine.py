"""The sans-IO stream engine, the interlocks, the resume preamble and the job store: no port, no clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labbridge.protocols import grbl as gp
from labbridge.errors import InterlockError
from labbridge.model import AlarmRecord, MachineState, Status
from labbridge.safety import Interpreter, check_program
from labbridge.streaming.interlocks import check_interlocks
from labbridge.streaming.job import Job, JobState
from labbridge.streaming.records import JobStore
from labbridge.streaming.resume import ResumeError, build_resume
from labbridge.protocols.grbl_stream import (
    Acked, Alarmed, Completed, ControllerReset, EngineState, Rejected, StreamEngine, Stray, program_lines,
)
from tests.conftest import make_machine

OK = gp.Ok()


def lines_of(*texts: str) -> list:
    return program_lines(enumerate(texts, 1))


def sent_lines(data: bytes) -> list[str]:
    return data.decode().splitlines()


# ---------------------------------------------------------------- program lines


def test_program_lines_are_cleaned_and_keep_their_numbers() -> None:
    out = program_lines(enumerate(["%", "(header)", "g21 g90 ; mm", "", "  G0 X1 (go) Y2", "%"], 1))
    assert [(ln.number, ln.text) for ln in out] == [(3, "G21G90"), (5, "G0X1Y2")]
    assert out[0].where == "line 3"


# ---------------------------------------------------------------- the window


def test_character_counting_fills_the_rx_buffer_and_no_more() -> None:
    lines = lines_of(*[f"G1 X{i}.123 Y{i}.456 F100" for i in range(40)])
    engine = StreamEngine(lines, rx_buffer=128, mode="cc")
    first = engine.data_to_send()
    assert len(first) <= 128
    assert len(first) + len(lines[engine.lines_sent].text) + 1 > 128  # the next line would overflow
    assert engine.data_to_send() == b""  # nothing more until an ok
    n = engine.lines_sent
    assert engine.receive(OK) == [Acked(lines[0], 0)]
    more = engine.data_to_send()
    assert sent_lines(more) == [lines[n].text]  # exactly the room one answered line freed
    assert engine.window.in_flight <= 128


def test_send_response_keeps_one_line_in_flight() -> None:
    lines = lines_of("G0 X1", "G0 X2", "G0 X3")
    engine = StreamEngine(lines, mode="sr")
    assert sent_lines(engine.data_to_send()) == ["G0X1"]
    assert engine.data_to_send() == b""
    engine.receive(OK)
    assert sent_lines(engine.data_to_send()) == ["G0X2"]


def test_eeprom_line_waits_for_an_empty_window_goes_alone_and_blocks_until_answered() -> None:
    lines = lines_of("G0 X1", "G0 X2", "G10 L20 P1 X0", "G0 X3", "G0 X4")
    engine = StreamEngine(lines, mode="cc")
    assert sent_lines(engine.data_to_send()) == ["G0X1", "G0X2"]  # stops before the EEPROM line
    engine.receive(OK)
    assert engine.data_to_send() == b""  # the window is not empty yet
    engine.receive(OK)
    assert sent_lines(engine.data_to_send()) == ["G10L20P1X0"]  # alone
    assert engine.data_to_send() == b""  # nothing while GRBL writes EEPROM
    engine.receive(OK)
    assert sent_lines(engine.data_to_send()) == ["G0X3", "G0X4"]


def test_completed_only_after_every_line_is_answered_ok() -> None:
    lines = lines_of("G0 X1", "G0 X2")
    engine = StreamEngine(lines)
    engine.data_to_send()
    assert engine.receive(OK) == [Acked(lines[0], 0)]
    assert engine.state == EngineState.STREAMING
    assert engine.receive(OK) == [Acked(lines[1], 1), Completed(2)]
    assert engine.state == EngineState.COMPLETED and engine.finished


# ---------------------------------------------------------------- failures


def test_error_stops_sending_at_once_and_names_the_line() -> None:
    lines = lines_of(*[f"G1 X{i} F100" for i in range(30)])
    engine = StreamEngine(lines, rx_buffer=64)
    engine.data_to_send()
    sent_before = engine.lines_sent
    engine.receive(OK)
    out = engine.receive(gp.Error(22, "undefined feed rate"))
    assert out == [Rejected(lines[1], 1, 22, "undefined feed rate")]
    assert out[0].words == "error:22"
    assert engine.state == EngineState.FAILED
    assert engine.data_to_send() == b""  # not a byte more, although the window has room
    assert engine.lines_sent == sent_before
    # lines GRBL had already buffered are still answered and counted
    assert engine.receive(OK) == [Acked(lines[2], 2)]
    assert engine.state == EngineState.FAILED and isinstance(engine.failure, Rejected)


def test_alarm_stops_sending_and_remembers_the_last_acked_line() -> None:
    lines = lines_of("G0 X1", "G0 X2", "G0 X3")
    engine = StreamEngine(lines, mode="sr")
    engine.data_to_send()
    engine.receive(OK)
    engine.data_to_send()
    out = engine.receive(gp.Alarm(2, "soft limit"))
    assert out == [Alarmed(2, "soft limit", lines[0])]
    assert engine.data_to_send() == b""
    assert engine.failure == out[0]


def test_unexpected_reset_fails_the_stream_and_forgets_the_window() -> None:
    lines = lines_of("G0 X1", "G0 X2", "G0 X3")
    engine = StreamEngine(lines)
    engine.data_to_send()
    out = engine.receive(gp.Banner("1.1h", "Grbl 1.1h ['$' for help]"))
    assert out == [ControllerReset(3, False)]
    assert engine.state == EngineState.FAILED and engine.in_flight == 0


def test_expected_reset_after_stop_is_no_failure() -> None:
    lines = lines_of("G0 X1", "G0 X2", "G0 X3")
    engine = StreamEngine(lines, mode="sr")
    engine.data_to_send()
    engine.stop()
    assert engine.data_to_send() == b""
    engine.expect_reset()
    assert engine.receive(gp.Banner("1.1h", "")) == [ControllerReset(1, True)]
    assert engine.state == EngineState.STOPPED and engine.failure is None and engine.finished


def test_pause_holds_back_new_lines_until_resume() -> None:
    lines = lines_of("G0 X1", "G0 X2")
    engine = StreamEngine(lines, mode="sr")
    engine.data_to_send()
    engine.pause()
    engine.receive(OK)
    assert engine.data_to_send() == b""
    engine.resume()
    assert sent_lines(engine.data_to_send()) == ["G0X2"]


def test_answers_with_nothing_in_flight_are_stray_and_change_nothing() -> None:
    engine = StreamEngine(lines_of("G0 X1"))
    assert engine.receive(OK) == [Stray(OK)]
    assert engine.acked == 0
    assert engine.receive(gp.Status("Idle", None, None, None, None, 15, 128, None, None, None, None,
                                    frozenset(), frozenset(), "<Idle>")) == []


def test_max_bytes_splits_writes_without_changing_the_window() -> None:
    engine = StreamEngine(lines_of("G0 X1", "G0 X2", "G0 X3"))
    assert sent_lines(engine.data_to_send(max_bytes=6)) == ["G0X1"]
    assert sent_lines(engine.data_to_send()) == ["G0X2", "G0X3"]


# ---------------------------------------------------------------- interlocks


def _state(**kw: object) -> MachineState:
    s = MachineState("m")
    s.update(connected=True, state=Status.IDLE, homed=True)
    s.update(**kw)
    return s


@pytest.mark.parametrize(
    ("changes", "interlock"),
    [
        ({"connected": False, "state": Status.DISCONNECTED}, "connected"),
        ({"state": Status.ALARM, "alarms": (AlarmRecord("ALARM:1", "hard limit"),)}, "alarm"),
        ({"pins": frozenset("D")}, "door"),
        ({"state": Status.DOOR, "substate": 0}, "door"),
        ({"homed": False}, "homed"),
        ({"homed": None}, "homed"),
        ({"state": Status.RUN}, "idle"),
        ({"state": Status.HOLD, "substate": 0}, "idle"),
    ],
)
def test_each_interlock_refuses_by_name(changes: dict, interlock: str) -> None:
    machine = make_machine(homing_required=True)
    with pytest.raises(InterlockError) as info:
        check_interlocks("m", machine, _state(**changes))
    assert info.value.interlock == interlock
    assert "m" in str(info.value)


def test_interlocks_pass_and_busy_and_check_mode_rules() -> None:
    machine = make_machine(homing_required=True)
    check_interlocks("m", machine, _state())
    check_interlocks("m", machine, _state(homed=False), check_mode=True)  # $C moves nothing
    with pytest.raises(InterlockError) as info:
        check_interlocks("m", machine, _state(), busy_with="job abc")
    assert info.value.interlock == "busy" and "job abc" in str(info.value)
    alarm = _state(state=Status.ALARM, alarms=(AlarmRecord("ALARM:2", "soft limit"),))
    with pytest.raises(InterlockError, match="ALARM:2"):
        check_interlocks("m", machine, alarm)


# ---------------------------------------------------------------- resume preamble


PROGRAM = """G21 G90 G94 G17 G55
G0 Z5
M4 S8000
M8
G0 X10 Y10
G1 Z-2 F150
G1 X40 F400
G1 Y30
G1 X10
G0 Z5
M5 M9
M30""".splitlines()


def _mill():
    return make_machine(
        envelope={"X": [-200, 0], "Y": [-200, 0], "Z": [-60, 0]},
        work_offsets={"G54": {"X": -190, "Y": -190, "Z": -50}, "G55": {"X": -150, "Y": -150, "Z": -40}},
        max_feed=2000,
    )


def _state_after(source: list[str], machine, from_line: int) -> Interpreter:
    interp = Interpreter(machine)
    for n, text in enumerate(source[: from_line - 1], 1):
        assert interp.execute(text, n).ok
    return interp


def _run(lines: list[str], machine) -> Interpreter:
    interp = Interpreter(machine)
    for n, text in enumerate(lines, 1):
        result = interp.execute(text, n)
        assert result.ok, (text, result.diagnostics)
    return interp


def test_resume_preamble_restores_modal_state_and_position() -> None:
    machine = _mill()
    plan = build_resume(PROGRAM, machine, 8)
    expected = _state_after(PROGRAM, machine, 8)
    after = _run(plan.preamble, machine)
    assert tuple(after.position) == pytest.approx(tuple(expected.position))
    m, e = after.modal, expected.modal
    assert (m.units, m.distance, m.plane, m.wcs, m.feed, m.spindle, m.rpm, m.flood, m.mist, m.motion) == (
        e.units, e.distance, e.plane, e.wcs, e.feed, e.spindle, e.rpm, e.flood, e.mist, e.motion)
    assert after.modal_words() == plan.modal


def test_resume_approaches_from_a_safe_z_with_the_spindle_up_to_speed() -> None:
    machine = _mill()
    plan = build_resume(PROGRAM, machine, 8)
    pre = plan.preamble
    retract = pre.index("G53 G0 Z-1")
    xy = next(i for i, t in enumerate(pre) if t.startswith("G53 G0 X"))
    spindle = pre.index("M4 S8000")
    dwell = next(i for i, t in enumerate(pre) if t.startswith("G4 P"))
    plunge = next(i for i, t in enumerate(pre) if t.startswith("G53 G1 Z"))
    assert retract < xy < spindle < dwell < plunge
    assert pre[plunge] == "G53 G1 Z-42 F400"  # G55 Z-40, work Z-2, at the program's feed
    motions = []
    interp = Interpreter(machine)
    for n, text in enumerate(pre, 1):
        motions += interp.execute(text, n).motions
    moves = [mv for mv in motions if mv.kind != "dwell"]
    assert moves[0].end[2] == -1.0 and moves[0].start[:2] == moves[0].end[:2]  # straight up first
    assert all(mv.end[2] >= -1.0 for mv in moves[:2])  # X/Y move at the safe height
    assert moves[-1].kind == "feed"


def test_resume_plus_remainder_passes_the_gate() -> None:
    machine = _mill()
    plan = build_resume(PROGRAM, machine, 8)
    report = check_program(plan.preamble + PROGRAM[7:], machine, program_name="resumed")
    assert report.ok, [d.message for d in report.diagnostics]
    assert not [d for d in report.warnings if d.code == "spindle-off-cut"]


def test_resume_in_inches_and_incremental_restores_both() -> None:
    machine = _mill()
    src = ["G20 G91 G54", "G0 Z0.1", "G1 X1 Y1 F10", "X1", "X1"]
    plan = build_resume(src, machine, 4)
    expected = _state_after(src, machine, 4)
    after = _run(plan.preamble, machine)
    assert (after.modal.units, after.modal.distance) == (200, 910)
    assert after.modal.feed == pytest.approx(expected.modal.feed)
    assert tuple(after.position) == pytest.approx(tuple(expected.position))
    assert plan.preamble[-1].startswith("G20 G91 F10")


def test_resume_refuses_what_it_cannot_restore() -> None:
    machine = _mill()
    with pytest.raises(ResumeError, match="arc"):
        build_resume(["G0 X0 Y0 Z-1", "G2 X10 Y0 I5 J0 F100", "X0 Y0 I-5 J0"], machine, 3)
    with pytest.raises(ResumeError, match="lines 1 to"):
        build_resume(PROGRAM, machine, 99)
    with pytest.raises(ResumeError, match="GRBL mills"):
        build_resume(PROGRAM, make_machine(controller="fanuc-mill"), 3)


# ---------------------------------------------------------------- job store


def test_job_store_round_trip_and_events_shared_by_two_connections(tmp_path) -> None:
    a = JobStore(tmp_path)  # a directory: labbridge.sqlite inside
    b = JobStore(tmp_path / "labbridge.sqlite")
    job = Job("j1", "mill-1", "/p/x.nc", "x.nc", "ab" * 32, "ana", JobState.RUNNING, lines_total=10)
    a.create(job)
    job.lines_acked, job.last_acked_line, job.state = 4, 7, JobState.INTERRUPTED
    job.error_code, job.message = "disconnected", "connection lost"
    a.save(job)
    a.add_event("j1", "job_started", lines=10)
    assert a.db.flush()  # records are written behind (a hold never waits for the disk): land them now
    got = b.get("j1")
    assert got == job
    assert [j.id for j in b.list_jobs("mill-1", states=(JobState.INTERRUPTED,))] == ["j1"]
    assert b.list_jobs("mill-2") == []
    assert b.events("j1")[0]["event"] == "job_started" and b.events("j1")[0]["lines"] == 10
    assert got.to_dict()["state"] == "interrupted" and got.to_dict()["fraction"] == 0.4
    a.close()
    b.close()


def test_job_store_brings_an_older_database_up_to_date(tmp_path) -> None:
    import sqlite3

    old = sqlite3.connect(tmp_path / "labbridge.sqlite")  # the jobs table as the first release wrote it
    old.executescript("""CREATE TABLE jobs (id TEXT PRIMARY KEY, machine TEXT NOT NULL, program_path TEXT NOT NULL,
        program_name TEXT NOT NULL, program_sha256 TEXT NOT NULL, user TEXT, state TEXT NOT NULL,
        check_mode INTEGER NOT NULL DEFAULT 0, from_line INTEGER, lines_total INTEGER NOT NULL DEFAULT 0,
        lines_sent INTEGER NOT NULL DEFAULT 0, lines_acked INTEGER NOT NULL DEFAULT 0, last_acked_line INTEGER,
        error_code TEXT, error_message TEXT, error_line INTEGER, error_block TEXT, message TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL, started_at REAL, ended_at REAL, estimated_seconds REAL, eta_seconds REAL);
        INSERT INTO jobs(id, machine, program_path, program_name, program_sha256, state, created_at)
        VALUES ('old1', 'mill-1', '/p/a.nc', 'a.nc', 'cd', 'completed', 1.0);""")
    old.close()
    with JobStore(tmp_path) as store:
        assert store.get("old1").protocol == "grbl"  # jobs recorded before DNC jobs were kept were GRBL jobs
        dnc = Job("d1", "lathe-1", "/p/b.nc", "b.nc", "ef", "ana", JobState.COMPLETED, protocol="dnc")
        store.create(dnc)
        assert [(j.id, j.protocol) for j in store.list_jobs()] == [("d1", "dnc"), ("old1", "grbl")]


# ---------------------------------------------------------------- properties

@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(st.sampled_from(["G0 X1", "G1 X12.345 Y67.891 F100", "M3 S1000", "G10 L2 P1 X1", "G4 P0.1",
                                    "G1 X1.123456789012345678901234567890 Y2.12345678901234567890"]),
                   min_size=1, max_size=60),
    acks_per_round=st.lists(st.integers(1, 5), min_size=1, max_size=200),
    rx=st.sampled_from([64, 128, 256]),
)
def test_window_never_overflows_and_every_line_goes_once_in_order(texts, acks_per_round, rx) -> None:
    lines = lines_of(*texts)
    engine = StreamEngine(lines, rx_buffer=rx)
    wire: list[str] = []
    rounds = iter(acks_per_round * 100)
    while engine.state != EngineState.COMPLETED:
        wire += sent_lines(engine.data_to_send())
        in_flight = engine.window.in_flight
        assert in_flight <= rx or engine.window.pending == 1  # one over-long line may go alone
        if any(gp.writes_eeprom(ln.text) for ln in lines[engine.acked:engine.lines_sent]):
            assert engine.window.pending == 1  # an EEPROM line is never in flight with another
        for _ in range(next(rounds)):
            if engine.window.pending:
                engine.receive(OK)
    assert wire == [ln.text for ln in lines]
    assert engine.acked == len(lines) and engine.last_acked == lines[-1]


def test_ok_of_the_block_our_reset_interrupts_is_no_acknowledgement() -> None:
    # protocol.c: a block waiting in mc_line when the reset comes returns on sys.abort and gc_execute_line still
    # answers ok before the banner; that block never ran to its end.
    lines = lines_of("G1 X1 F100", "G1 X2", "G1 X3")
    engine = StreamEngine(lines, mode="cc")
    engine.data_to_send()
    assert engine.receive(OK) == [Acked(lines[0], 0)]
    engine.stop()
    engine.expect_reset()
    assert engine.receive(OK) == []
    assert engine.last_acked == lines[0] and engine.acked == 1
    assert engine.receive(gp.Banner("1.1h", "Grbl 1.1h ['$' for help]")) == [ControllerReset(1, True)]
