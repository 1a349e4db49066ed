"""The GRBL simulator over a real pty, held to the recorded GRBL 1.1h session (tests/traces)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

from labbridge.config import load_config
from labbridge.protocols.grbl import GrblParser, Status
from labbridge.sim.grbl.port import GrblSimulator

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "machines.yaml"
TRACE = ROOT / "tests" / "traces" / "grbl-1.1h-received.tsv"
BANNER = "Grbl 1.1h ['$' for help]"
UNLOCK = "[MSG:'$H'|'$X' to unlock]"


def mill():
    return load_config(CONFIG).machines["mill-1"]


class Link:
    """A minimal sender: raw lines in, answers out (keeps empty lines, which GRBL sends before banners)."""

    def __init__(self, port: str, baud: int = 115200) -> None:
        self.port = serial.Serial(port, baud, timeout=0.02)
        self.buffer = b""

    def close(self) -> None:
        self.port.close()

    def read_lines(self, until: Callable[[list[str]], bool], timeout: float = 10.0) -> list[str]:
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.buffer += self.port.read(4096)
            while b"\r\n" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\r\n", 1)
                lines.append(raw.decode("ascii", "replace"))
                if until(lines):
                    return lines
        raise AssertionError(f"timed out; got {lines!r}")

    def quiet(self, seconds: float) -> list[str]:
        """Everything received within ``seconds`` (used to show that nothing comes)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.buffer += self.port.read(4096)
        lines = self.buffer.split(b"\r\n")
        self.buffer = lines.pop()
        return [x.decode("ascii", "replace") for x in lines]

    def cmd(self, line: str, timeout: float = 10.0) -> list[str]:
        self.port.write(line.encode() + b"\n")
        return self.read_lines(lambda ls: ls[-1] == "ok" or ls[-1].startswith(("error:", "ALARM:")), timeout)

    def realtime(self, byte: bytes) -> None:
        self.port.write(byte)

    def status(self, timeout: float = 10.0) -> str:
        self.port.write(b"?")
        return self.read_lines(lambda ls: ls[-1].startswith("<"), timeout)[-1]

    def wait_status(self, predicate: Callable[[Status], bool], timeout: float = 20.0) -> list[Status]:
        parser = GrblParser()
        seen: list[Status] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in parser.feed(self.status().encode() + b"\r\n"):
                if isinstance(event, Status):
                    seen.append(event)
                    if predicate(event):
                        return seen
            time.sleep(0.01)
        raise AssertionError(f"status never matched; last {seen[-3:]!r}")

    def banner(self) -> list[str]:
        return self.read_lines(lambda ls: ls[-1] == BANNER)


@pytest.fixture
def make_sim() -> Iterator[Callable[..., tuple[GrblSimulator, Link]]]:
    made: list[tuple[GrblSimulator, Link]] = []

    def make(**opts: object) -> tuple[GrblSimulator, Link]:
        opts.setdefault("factory_defaults", True)
        sim = GrblSimulator("mill-1", mill(), **opts)  # type: ignore[arg-type]
        sim.start()
        link = Link(sim.port, int(opts.get("baud", 115200)))  # type: ignore[call-overload]
        made.append((sim, link))
        assert link.banner()[-2:] == ["", BANNER]
        return sim, link

    yield make
    for sim, link in made:
        link.close()
        sim.close()


def trace_settings() -> list[str]:
    return [row.split("\t", 1)[1] for row in TRACE.read_text().splitlines()
            if not row.startswith("#") and row.split("\t", 1)[1].startswith("$")]


# ------------------------------------------------------------------ the recorded session, section by section


def test_connect_banner_reset_and_restore(make_sim) -> None:
    _, link = make_sim()
    link.realtime(b"\x18")
    assert link.banner() == ["", BANNER]
    assert link.cmd("$RST=$") == ["[MSG:Restoring defaults]", "ok"]
    assert link.banner() == ["", BANNER]
    assert link.cmd("$10=3") == ["ok"]


def test_queries_match_the_recording(make_sim) -> None:
    _, link = make_sim()
    assert link.cmd("$10=3") == ["ok"]
    assert link.cmd("$$") == trace_settings() + ["ok"]
    assert link.cmd("$I") == ["[VER:1.1h.20190830:]", "[OPT:V,15,128]", "ok"]
    assert link.cmd("$G") == ["[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]", "ok"]
    zero = "0.000,0.000,0.000"
    assert link.cmd("$#") == [f"[{n}:{zero}]" for n in ("G54", "G55", "G56", "G57", "G58", "G59", "G28", "G30", "G92")] \
        + ["[TLO:0.000]", f"[PRB:{zero}:0]", "ok"]
    assert link.cmd("$") == ["[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]", "ok"]
    assert link.status() == f"<Idle|MPos:{zero}|Bf:15,128|FS:0,0|WCO:{zero}>"
    assert link.cmd("$X") == ["ok"]
    assert link.cmd("$10=1") == ["ok"]
    assert link.status() == f"<Idle|MPos:{zero}|FS:0,0|Ov:100,100,100>"
    assert link.status() == f"<Idle|MPos:{zero}|FS:0,0>"


@pytest.mark.parametrize(
    ("line", "answer"),
    [
        ("G1 X1", "error:22"), ("G99", "error:20"), ("G1 X1 X2", "error:25"), ("$Z", "error:2"),
        ("$999=1", "error:3"), ("X1.2.3", "error:1"), ("G4", "error:28"), ("M3 S-5", "error:4"),
        ("G2 X10 F100", "error:35"), ("G1 X1 Y1 F", "error:2"), ("G0 X" + "1" * 90, "error:11"),
        ("(comment only)", "ok"), ("", "ok"), ("$J=G91 X5 F1000 G1", "error:16"), ("g1 x-1 f100", "ok"),
    ],
)
def test_invalid_commands_like_the_recording(make_sim, line: str, answer: str) -> None:
    _, link = make_sim()
    assert link.cmd(line) == [answer]


def test_check_mode_and_leaving_it_resets(make_sim) -> None:
    _, link = make_sim()
    assert link.cmd("$C") == ["[MSG:Enabled]", "ok"]
    for i in range(20):
        assert link.cmd(f"G1 X-{i} Y-{i} F500") == ["ok"]
    assert link.cmd("G1 X1 X2") == ["error:25"]
    assert link.status().startswith("<Check|MPos:0.000,0.000,0.000")
    assert link.cmd("$#") == ["error:8"]  # GRBL allows $# only when Idle or in alarm
    link.port.write(b"$C\n")
    assert link.read_lines(lambda ls: ls[-1] == BANNER) == ["[MSG:Disabled]", "ok", "", BANNER]
    assert link.status().startswith("<Idle|")


def test_soft_reset_during_motion_alarms(make_sim) -> None:
    _, link = make_sim(time_scale=2.0)
    assert link.cmd("G1 X-100 F600") == ["ok"]
    link.wait_status(lambda s: s.state == "Run" and s.mpos[0] < -1)
    link.realtime(b"\x18")
    assert link.read_lines(lambda ls: ls[-1] == UNLOCK) == ["ALARM:3", "", BANNER, UNLOCK]
    status = link.status()
    assert status.startswith("<Alarm|") and "MPos:0.000" not in status  # stopped where it was
    assert link.cmd("G0 X0") == ["error:9"]
    assert link.cmd("$X") == ["[MSG:Caution: Unlocked]", "ok"]
    assert link.cmd("G1 X-1") == ["error:22"]  # the feed rate did not survive the reset
    assert link.cmd("G0 X0 Y0 Z0") == ["ok"]
    link.wait_status(lambda s: s.state == "Idle" and s.mpos == (0.0, 0.0, 0.0))


def test_rx_overflow_loses_bytes_silently(make_sim) -> None:
    sim, link = make_sim(time_scale=10.0, baud=1_000_000)
    # fill the planner with slow moves so the firmware stops reading the RX buffer
    for i in range(1, 17):
        assert link.cmd(f"G1 X-{i * 0.5:.1f} F60") == ["ok"]
    link.port.write(b"G1 X-8.5 F60\n")  # held by the firmware until the planner has room
    burst = [f"G1 X-{10 + i:.3f} Y-1.000F60" for i in range(40)]  # 23 bytes each with the newline
    link.port.write("".join(line + "\n" for line in burst).encode())
    link.wait_status(lambda s: s.state == "Idle", timeout=60)
    answers = link.quiet(0.2)
    link.buffer = b""
    assert not any(a.startswith("error") for a in answers)
    snapshot = sim.snapshot()
    # the 40th line's target was never reached: most of the burst was lost without a word
    assert snapshot["position"][0] > -49.0


def test_rx_overflow_answer_count(make_sim) -> None:
    _, link = make_sim(time_scale=10.0, baud=1_000_000)
    for i in range(1, 16):
        link.port.write(f"G1 X-{i * 0.5:.1f} F60\n".encode())
    burst = [f"G1 X-{10 + i:.3f} Y-1.000F60" for i in range(40)]
    link.port.write("".join(line + "\n" for line in burst).encode())
    oks: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        oks += [a for a in link.quiet(0.3) if a == "ok"]
        if link.status().startswith("<Idle"):
            break
    oks += [a for a in link.quiet(0.3) if a == "ok"]
    assert 15 < len(oks) < 15 + 40


def test_eeprom_write_loses_bytes_sent_meanwhile(make_sim) -> None:
    _, link = make_sim()
    link.port.write(b"$110=400\nG0 X-5 Y-5\n")
    answers = link.read_lines(lambda ls: ls[-1] == "ok")
    assert answers == ["ok"]
    assert link.quiet(0.5) == []  # the G0 line was (mostly) lost: no second answer
    assert "MPos:0.000,0.000,0.000" in link.status()
    assert len(link.cmd("")) == 1  # whatever fragment survived in the UART FIFO ends here
    assert "$110=400.000" in link.cmd("$$")


def test_motion_moves_at_the_commanded_feed(make_sim) -> None:
    _, link = make_sim(time_scale=4.0)
    assert link.cmd("G1 X-30 F400") == ["ok"]
    seen = link.wait_status(lambda s: s.state == "Idle" and s.mpos[0] == -30.0, timeout=30)
    running = [s for s in seen if s.state == "Run"]
    assert running, "no report while moving"
    assert any(s.feed == 400 and -30 < s.mpos[0] < 0 for s in running)
    assert all(s.feed <= 400 for s in running)
    # GRBL caps the feed at the axis' maximum rate ($110=500 by default)
    assert link.cmd("G1 X0 F900") == ["ok"]
    seen = link.wait_status(lambda s: s.state == "Idle" and s.mpos[0] == 0.0, timeout=30)
    assert max(s.feed for s in seen) == 500


def test_planner_fills_and_drains(make_sim) -> None:
    _, link = make_sim(time_scale=2.0)
    assert link.cmd("$10=3") == ["ok"]  # report Bf:
    assert link.status().startswith("<Idle|MPos:0.000,0.000,0.000|Bf:15,128|")
    for i in range(1, 16):
        assert link.cmd(f"G1 X-{i * 20}.000 F300") == ["ok"]  # 4 s of machine time each
    seen = link.wait_status(lambda s: s.planner_free is not None and s.planner_free <= 1, timeout=30)
    assert seen[-1].state == "Run"
    link.realtime(b"\x18")
    link.read_lines(lambda ls: ls[-1] == UNLOCK)


def test_hold_decelerates_then_resumes(make_sim) -> None:
    _, link = make_sim(time_scale=2.0)
    assert link.cmd("G1 X-40 F400") == ["ok"]
    link.wait_status(lambda s: s.state == "Run" and s.feed == 400)
    link.realtime(b"!")
    seen = link.wait_status(lambda s: s.state == "Hold" and s.substate == 0)
    assert any(s.state == "Hold" and s.substate == 1 for s in seen)
    held = link.wait_status(lambda s: True)[-1]
    assert held.feed == 0 and held.mpos[0] > -40
    link.realtime(b"~")
    link.wait_status(lambda s: s.state == "Idle" and s.mpos[0] == -40.0, timeout=30)


def test_jog_cancel_overrides_and_door(make_sim) -> None:
    _, link = make_sim(time_scale=1.0)
    assert link.cmd("$J=G91 X-50 F600") == ["ok"]
    link.wait_status(lambda s: s.state == "Jog" and s.mpos[0] < -0.5)
    link.realtime(b"\x85")
    final = link.wait_status(lambda s: s.state == "Idle")[-1]
    assert -50 < final.mpos[0] < 0
    assert link.cmd("$G")[0].endswith("F0 S0]")  # a jog leaves the parser's feed rate alone
    link.realtime(b"\x91")
    link.realtime(b"\x96")
    link.realtime(b"\x9a")
    assert link.wait_status(lambda s: s.overrides == (110, 50, 110))
    link.realtime(b"\x90")
    link.realtime(b"\x84")
    assert "[MSG:Check Door]" in link.read_lines(lambda ls: ls[-1] == "[MSG:Check Door]")
    assert link.wait_status(lambda s: s.state == "Door")
    link.realtime(b"~")
    link.wait_status(lambda s: s.state == "Idle")


def test_homing_and_soft_limits_like_the_recording(make_sim) -> None:
    sim, link = make_sim(time_scale=50.0)
    assert link.cmd("$20=1") == ["error:10"]  # soft limits need homing
    assert link.cmd("$22=1") == ["ok"]
    assert link.cmd("$20=1") == ["ok"]
    link.realtime(b"\x18")
    assert link.banner() == ["", BANNER]  # a soft reset does not lock; only power-up does
    assert link.status().startswith("<Idle|")
    assert link.cmd("G1 X10 F100") == ["ALARM:2"]
    assert link.read_lines(lambda ls: True) == ["[MSG:Reset to continue]"]
    link.realtime(b"?")
    assert link.quiet(0.4) == []  # blocked: not even a status report
    link.realtime(b"\x18")
    assert link.read_lines(lambda ls: ls[-1] == UNLOCK) == ["ok", "", BANNER, UNLOCK]
    assert link.status().startswith("<Alarm|")
    assert link.cmd("G0 X0") == ["error:9"]
    assert link.cmd("$H", timeout=30) == ["ok"]
    assert link.status().startswith("<Idle|MPos:-1.000,-1.000,-1.000|")
    assert sim.snapshot()["homed"]
    assert link.cmd("G1 X-10 Y-10 F1000") == ["ok"]
    link.wait_status(lambda s: s.state == "Idle")
    assert link.cmd("$J=G91 X100 F1000") == ["error:15"]
    assert link.cmd("G1 X10") == ["ALARM:2"]
    link.realtime(b"\x18")
    assert link.read_lines(lambda ls: ls[-1] == UNLOCK)[-4:] == ["ok", "", BANNER, UNLOCK]
    assert link.cmd("$X") == ["[MSG:Caution: Unlocked]", "ok"]


def test_power_up_with_homing_enabled_locks(make_sim) -> None:
    # mill-1's config asks for homing: the simulator set up from it boots locked, like GRBL
    sim, link = make_sim(factory_defaults=False)
    assert link.read_lines(lambda ls: ls[-1] == UNLOCK) == [UNLOCK]
    settings = link.cmd("$$")
    assert "$130=290.000" in settings and "$22=1" in settings and "$30=12000" in settings
    offsets = link.cmd("$#")
    assert offsets[0] == "[G54:-240.000,-150.000,-48.000]"


def test_work_offsets_persist_and_wco_reported(make_sim) -> None:
    _, link = make_sim()
    assert link.cmd("G10 L2 P1 X-10 Y-20 Z-5") == ["ok"]
    status = link.wait_status(lambda s: s.wco == (-10.0, -20.0, -5.0))[-1]
    assert status.wpos == (10.0, 20.0, 5.0)
    link.realtime(b"\x18")
    link.banner()
    assert link.cmd("$#")[0] == "[G54:-10.000,-20.000,-5.000]"


def test_program_end_message(make_sim) -> None:
    _, link = make_sim(time_scale=20.0)
    assert link.cmd("G1 X-1 F1000") == ["ok"]
    assert link.cmd("M2") == ["[MSG:Pgm End]", "ok"]


# ------------------------------------------------------------------ a sender we did not write


def test_grbl_streamer_streams_a_program_to_completion(make_sim) -> None:
    from grbl_streamer import GrblStreamer

    sim, _link = make_sim(time_scale=20.0)
    _link.close()  # grbl-streamer opens the port itself
    program = ["G21 G90", "G0 Z-1", "G1 F1500"]
    program += [f"G1 X-{(i % 20) * 2 + 1}.000 Y-{(i // 20) * 2 + 1}.000" for i in range(120)]
    program += ["G0 Z0", "M2"]
    processed: list[str] = []
    errors: list[tuple] = []
    settings_read = threading.Event()
    done = threading.Event()

    def callback(event: str, *data: object) -> None:
        if event == "on_read" and str(data[0]).startswith("$132="):
            settings_read.set()  # it asks for $$ after the banner; its answer must be over before we stream
        elif event == "on_processed_command":
            processed.append(str(data[1]))
            if len(processed) == len(program):
                done.set()
        elif event in ("on_error", "on_alarm"):
            errors.append(data)

    streamer = GrblStreamer(callback)
    streamer.cnect(sim.port, 115200)
    try:
        assert settings_read.wait(10), "grbl-streamer never saw the banner or the settings"
        deadline = time.monotonic() + 5
        while not streamer._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # let its reader thread consume the trailing ok
        # No poll_start(): its poller sends $G between jobs without counting the answer, which can
        # desynchronise its own character counting (a real GRBL then loses bytes, as this simulator does).
        streamer.incremental_streaming = False  # its character-counting mode
        streamer.write("\n".join(program))
        streamer.job_run()
        assert done.wait(60), f"only {len(processed)} of {len(program)} lines acknowledged"
        assert not errors
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sim.snapshot()["state"] != "Idle":
            time.sleep(0.05)
        snapshot = sim.snapshot()
        assert snapshot["state"] == "Idle"
        assert snapshot["position"] == pytest.approx((-39.0, -11.0, 0.0))
    finally:
        streamer.disconnect()


# ------------------------------------------------------------------ the command line


def test_cli_prints_the_device_and_serves_it(tmp_path: Path) -> None:
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-m", "labbridge.cli.main", "sim", "grbl", "--config", str(CONFIG), "--machine", "mill-1",
         "--time-scale", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/")
        link = Link(port)
        try:
            assert link.banner()[-2:] == ["", BANNER]
            assert link.cmd("$I")[-1] == "ok"
        finally:
            link.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_cli_refuses_a_non_grbl_machine() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "labbridge.cli.main", "sim", "grbl", "--config", str(CONFIG), "--machine", "lathe-1"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "lathe-1" in result.stderr and "Traceback" not in result.stderr


def test_door_during_homing_fails_it(make_sim) -> None:
    _, link = make_sim(time_scale=1.0)
    assert link.cmd("$22=1") == ["ok"]
    link.port.write(b"$H\n")
    time.sleep(0.2)
    link.realtime(b"\x84")
    assert link.read_lines(lambda ls: ls[-1] == UNLOCK) == ["ALARM:7", "ok", "", BANNER, UNLOCK]
    assert link.status().startswith("<Alarm|")


def test_reset_after_a_completed_hold_raises_no_alarm(make_sim) -> None:
    # GRBL clears STEP_CONTROL_EXECUTE_HOLD when a hold completes (protocol.c, EXEC_CYCLE_STOP), so mc_reset()
    # finds nothing moving at Hold:0: no ALARM:3, the position is kept and the machine comes back Idle.
    _, link = make_sim(time_scale=2.0)
    link.realtime(b"!")  # a hold while idle stops nothing
    link.wait_status(lambda s: s.state == "Hold" and s.substate == 0)
    link.realtime(b"\x18")
    assert link.banner() == ["", BANNER]
    assert link.cmd("G1 X-100 F300") == ["ok"]
    link.wait_status(lambda s: s.state == "Run")
    link.realtime(b"!")
    held = link.wait_status(lambda s: s.state == "Hold" and s.substate == 0)[-1]
    link.realtime(b"\x18")
    assert link.banner() == ["", BANNER]
    after = link.wait_status(lambda s: True)[-1]
    assert after.state == "Idle" and after.mpos == held.mpos


def test_door_pin_shows_in_reports_and_blocks_resume(make_sim) -> None:
    sim, link = make_sim()
    sim.set_pin("D", True)
    seen = link.wait_status(lambda s: s.state == "Door" and s.substate == 1)
    assert "D" in seen[-1].pins
    link.realtime(b"~")  # the door is still open: no resume
    assert link.wait_status(lambda s: True)[-1].state == "Door"
    link.port.write(b"$X\n")  # protocol_exec_rt_suspend: no line is read while the door suspends GRBL
    assert link.quiet(0.3) == []
    sim.set_pin("D", False)
    link.wait_status(lambda s: s.state == "Door" and s.substate == 0 and not s.pins)
    link.realtime(b"~")
    assert link.read_lines(lambda ls: ls[-1] == "ok") == ["ok"]  # not in alarm: $X does nothing
    link.wait_status(lambda s: s.state == "Idle")


def test_startup_lines_run_after_reset(make_sim) -> None:
    _, link = make_sim()
    assert link.cmd("$N0=g20 g55") == ["ok"]
    assert link.cmd("$N") == ["$N0=G20G55", "$N1=", "ok"]
    link.realtime(b"\x18")
    assert link.read_lines(lambda ls: ls[-1].startswith(">")) == ["", BANNER, ">G20G55:ok"]
    assert link.cmd("$G")[0] == "[GC:G0 G55 G17 G20 G90 G94 M5 M9 T0 F0 S0]"
    assert link.cmd("$N1=G99") == ["error:20"]  # checked by the parser before it is stored


def test_probe_without_contact_alarms(make_sim) -> None:
    _, link = make_sim(time_scale=20.0)
    link.port.write(b"G38.2 Z-5 F100\n")
    answers = link.read_lines(lambda ls: ls[-1] == "ok")
    assert answers[0] == "ALARM:5" and answers[1].startswith("[PRB:0.000,0.000,-5.000:0]")
    assert link.status().startswith("<Alarm|")


def test_arc_is_cut_into_planner_blocks_and_ends_exactly(make_sim) -> None:
    _, link = make_sim(time_scale=10.0)
    assert link.cmd("$10=3") == ["ok"]
    assert link.cmd("G0 X-20 Y-10") == ["ok"]
    link.wait_status(lambda s: s.state == "Idle")
    assert link.cmd("G2 X-10 Y-20 I10 J0 F400") == ["ok"]  # a quarter circle of radius 10
    seen = link.wait_status(lambda s: s.state == "Idle", timeout=30)
    assert min(s.planner_free for s in seen if s.planner_free is not None) < 14  # many short blocks
    assert seen[-1].mpos == (-10.0, -20.0, 0.0)
    mid = [s for s in seen if s.state == "Run" and -20 < s.mpos[0] < -10]
    # every point on the way lies on the circle around (-10, -10)
    assert all(abs(((s.mpos[0] + 10) ** 2 + (s.mpos[1] + 10) ** 2) ** 0.5 - 10) < 0.05 for s in mid)


def test_spindle_and_coolant_show_in_reports(make_sim) -> None:
    _, link = make_sim()
    assert link.cmd("M3 S800") == ["ok"]
    assert link.cmd("M8") == ["ok"]
    status = link.wait_status(lambda s: s.spindle == 800 and s.overrides is not None and "S" in s.accessories)[-1]
    assert status.accessories == frozenset("SF")
    link.realtime(b"\x9a")  # spindle +10 %
    link.wait_status(lambda s: s.spindle == 880 and s.overrides == (100, 100, 110))
    assert link.cmd("M5 M9") == ["ok"]
    link.wait_status(lambda s: s.spindle == 0 and s.overrides is not None and not s.accessories)


def test_m0_pauses_until_resume(make_sim) -> None:
    _, link = make_sim(time_scale=20.0)
    assert link.cmd("G1 X-2 F500") == ["ok"]
    # gcode.c [21]: M0 is a feed hold inside gc_execute_line: its ok, and the next line's, wait for the resume
    link.port.write(b"M0\nG1 X-4\n")
    link.wait_status(lambda s: s.state == "Hold" and s.substate == 0)
    assert link.quiet(0.3) == []
    link.realtime(b"~")
    assert link.read_lines(lambda ls: ls.count("ok") == 2) == ["ok", "ok"]
    link.wait_status(lambda s: s.state == "Idle" and s.mpos[0] == -4.0)


def test_sleep_then_reset_is_alarm(make_sim) -> None:
    _, link = make_sim()
    # protocol.c: the line answers ok; the suspend loop then reports sleep mode
    assert link.cmd("$SLP") == ["ok"]
    assert link.read_lines(lambda ls: ls[-1] == "[MSG:Sleeping]") == ["[MSG:Sleeping]"]
    assert link.status().startswith("<Sleep|")
    link.realtime(b"\x18")
    assert link.read_lines(lambda ls: ls[-1] == UNLOCK) == ["", BANNER, UNLOCK]


def test_absolute_and_machine_jogs(make_sim) -> None:
    _, link = make_sim(time_scale=20.0)
    assert link.cmd("G10 L2 P1 X-100") == ["ok"]
    assert link.cmd("$J=G90 X5 F2000") == ["ok"]  # work X5 = machine -95
    link.wait_status(lambda s: s.state == "Idle" and s.mpos[0] == -95.0)
    assert link.cmd("$J=G53 X-50 F2000") == ["ok"]
    link.wait_status(lambda s: s.state == "Idle" and s.mpos[0] == -50.0)
    assert link.cmd("$J=X-1") == ["error:22"]  # a jog needs its own F
    assert link.cmd("$J=G91 M3 X1 F100") == ["error:16"]
