"""The simulated GRBL against GRBL 1.1h's source (gnea/grbl grbl/*.c), one observable behaviour per test; each
test names the firmware function it follows."""

from __future__ import annotations

import pytest

from .test_grbl_sim_firmware import answers


def test_percent_line_is_error_1():
    # gc_execute_line: '%' is not a letter A-Z, so STATUS_EXPECTED_COMMAND_LETTER (protocol.c leaves it in).
    replies, _ = answers(b"%\n")
    assert replies == ["error:1"]


def test_first_faulty_word_decides():
    # gc_execute_line step 2 reads word by word: the repeated X is answered before the bad number after it.
    replies, _ = answers(b"G1 X1 X2 Y\nG0 G1 X1\n")
    assert replies == ["error:25", "error:24"]


@pytest.mark.parametrize(
    "line, reply",
    [
        ("$J=X5", "error:22"), ("$J=X5 M3", "error:22"), ("$J=X5 S100", "error:22"), ("$J=X5 F100 S100", "error:36"),
        ("$J=X5 F100 M3", "error:16"), ("$J=G91 G90 X1 F10", "error:21"), ("$J=G4 F100", "error:28"),
        ("$J=G4 P1 F100", "error:16"), ("$J=X-1 F100 G2", "error:35"), ("$J=G91 X-1 F-100", "error:4"),
        ("$J=G91 G20 X-0.1 F10", "ok"), ("$J=G53 X-1 F100", "ok"),
    ],
)
def test_jog_checks_in_gc_execute_line_order(line, reply):
    # gc_execute_line with GC_PARSER_JOG_MOTION: words first, then F required in the block ([2]), the G4/G10
    # and motion checks, unused words (S, T count), and only then the jog's own rule (error 16).
    replies, _ = answers(f"{line}\n".encode())
    assert replies == [reply]


def test_jog_without_axis_words_goes_to_machine_zero():
    # gcode.c: with no axis word gc_block.values.xyz keeps memset()'s zeros; jog_execute plans a move there.
    replies, fw = answers(b"$J=G91 X-3 Y-2 F3000\n")
    assert replies == ["ok"]
    replies, fw = answers(b"$J=F3000\n", fw)
    assert replies == ["ok"] and fw.interp.position == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "line, reply",
    [
        ("$50=-1", "error:4"),  # settings_store_global_setting: the sign is checked before the number
        ("$100=1e3", "error:3"),  # read_float stops at 'E'; system_execute_line: nothing may follow the value
        ("$100=5x", "error:3"), ("$100=abc", "error:2"), ("$100=", "error:2"), ("$100", "error:3"),
        ("$256=1", "error:3"), ("$=5", "error:2"), ("$N=G20", "error:2"),
    ],
)
def test_setting_lines_answer_as_system_execute_line(line, reply):
    replies, _ = answers(f"{line}\n".encode())
    assert replies == [reply]


def test_setting_number_is_truncated_like_a_uint8_cast():
    # system_execute_line: settings_store_global_setting((uint8_t)parameter, value): $100.5 sets $100.
    replies, fw = answers(b"$100.5=80\n")
    assert replies == ["ok"] and fw.eeprom.settings[100] == 80.0


def test_sleep_answers_ok_before_the_sleeping_message():
    # system_execute_line only sets EXEC_SLEEP; protocol_exec_rt_suspend reports MESSAGE_SLEEP_MODE afterwards.
    fw = answers(b"")[1]
    fw.receive(b"$SLP\n")
    fw.step(0.01)
    assert fw.take_output().decode().split("\r\n")[:2] == ["ok", "[MSG:Sleeping]"]


def test_dollar_g_prints_feed_and_speed_without_decimals():
    # report_gcode_modes: printFloat_RateValue and printFloat(..., N_DECIMAL_RPMVALUE) use 0 decimals, rounding up.
    fw = answers(b"G1 F12.5 S99.5\n")[1]
    fw.receive(b"$G\n")
    fw.step(0.01)
    assert fw.take_output().decode().split("\r\n")[0] == "[GC:G1 G54 G17 G21 G90 G94 M5 M9 T0 F13 S100]"


def _run(fw, seconds: float, t0: float | None = None) -> float:
    """Step the firmware for ``seconds`` of its time from ``t0`` (default: where it stands)."""
    t = fw.t if t0 is None else t0
    end = t + seconds
    while t < end:
        t += 0.01
        fw.step(t)
    return t


def test_door_opened_during_a_jog_ends_in_the_door_state():
    # protocol_exec_rt_system: the door only flags SUSPEND_SAFETY_DOOR_AJAR while a jog cancels; at
    # EXEC_CYCLE_STOP the jog cancel ends in STATE_SAFETY_DOOR, not Idle.
    fw = answers(b"")[1]
    fw.receive(b"$J=G91 X-50 F1000\n")
    t = _run(fw, 0.3)
    assert fw.state == "Jog"
    fw.set_pin("D", True)
    _run(fw, 2.0, t)
    assert fw.state_text() == "Door:1"
    assert "[MSG:Check Door]" in fw.take_output().decode()


def test_flood_toggles_while_jogging_and_mist_toggle_is_ignored():
    # serial.c takes 0xA1 only with ENABLE_M7 (off in 1.1h's default build); protocol.c toggles coolant in
    # Idle, Run, Hold and Jog.
    fw = answers(b"")[1]
    fw.receive(b"\xa1")
    assert fw.coolant == (False, False)
    fw.receive(b"$J=G91 X-50 F1000\n")
    _run(fw, 0.2)
    assert fw.state == "Jog"
    fw.receive(b"\xa0")
    assert fw.coolant == (True, False)


def test_report_inches_setting_converts_reports():
    # report.c: with $13=1 printFloat_CoordValue prints inches with 4 decimals and printFloat_RateValue in/min
    # with 1 (status report, $#, $G's F).
    fw = answers(b"$13=1\n$10=1\nG10 L2 P1 X-25.4\nG1 F254\n")[1]
    fw.receive(b"?$#\n")
    _run(fw, 0.2)
    out = fw.take_output().decode().split("\r\n")
    fw.receive(b"$G\n")
    _run(fw, 0.2)
    out += fw.take_output().decode().split("\r\n")
    assert out[0].startswith("<Idle|MPos:0.0000,0.0000,0.0000|FS:0.0,0|WCO:-1.0000,0.0000,0.0000")
    assert "[G54:-1.0000,0.0000,0.0000]" in out and "[TLO:0.0000]" in out
    assert "[GC:G1 G54 G17 G21 G90 G94 M5 M9 T0 F10.0 S0]" in out


def _reports(fw, count: int) -> list[str]:
    out = []
    for _ in range(count):
        fw.receive(b"?")
        _run(fw, 0.02)
        out += [r for r in fw.take_output().decode().split("\r\n") if r.startswith("<")]
    return out


def test_accessory_field_shows_the_spindle_only_when_its_output_is_on():
    # report.c: A: comes from spindle_get_state(), which reads the PWM output; M3 S0 leaves it off.
    fw = answers(b"M3 S0 M8\n")[1]
    with_ov = [r for r in _reports(fw, 12) if "|Ov:" in r]
    assert with_ov and all(r.endswith("|A:F>") for r in with_ov)
    answers(b"S1000\n", fw)
    with_ov = [r for r in _reports(fw, 3) if "|Ov:" in r]
    assert with_ov and with_ov[-1].endswith("|A:SF>")


def test_probe_already_in_contact_raises_alarm_4_and_the_line_answers_ok():
    # mc_probe_cycle: probe_get_state() true after the buffer sync -> EXEC_ALARM_PROBE_FAIL_INITIAL, no motion,
    # no [PRB:]; gc_execute_line still returns STATUS_OK.
    fw = answers(b"")[1]
    fw.set_pin("P", True)
    fw.receive(b"G38.2 Z-5 F100\n")
    _run(fw, 0.5)
    out = [r for r in fw.take_output().decode().split("\r\n") if r]
    assert out == ["ALARM:4", "ok"] and fw.state == "Alarm" and fw.stepper.position[2] == 0.0


def test_probing_away_needs_contact_at_the_start():
    # G38.4/G38.5 invert the probe pin (probe_configure_invert_mask): no contact at the start is ALARM:4.
    replies, fw = answers(b"G38.4 Z-5 F100\n")
    assert replies == ["ok"] and fw.state == "Alarm"


def test_no_line_is_answered_while_a_feed_hold_suspends_grbl():
    # protocol_execute_realtime -> protocol_exec_rt_suspend loops while sys.suspend (set once the hold is
    # complete): lines wait in the RX buffer until the cycle start.
    fw = answers(b"")[1]
    fw.receive(b"!")
    _run(fw, 0.1)
    assert fw.state_text() == "Hold:0"
    fw.take_output()
    fw.receive(b"G21\n$G\n")
    _run(fw, 0.5)
    assert fw.take_output() == b""
    fw.receive(b"~")
    _run(fw, 0.2)
    assert fw.take_output().decode().split("\r\n")[:2] == ["ok", "[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]"]


def test_reset_during_a_dwell_answers_the_dwell_before_the_banner():
    # mc_dwell returns on sys.abort and gc_execute_line still returns STATUS_OK: ok, then main() restarts.
    fw = answers(b"")[1]
    fw.receive(b"G4 P10\n")
    _run(fw, 0.5)
    fw.take_output()
    fw.receive(b"\x18")
    assert fw.take_output().decode().split("\r\n")[:3] == ["ok", "", "Grbl 1.1h ['$' for help]"]


def test_startup_line_is_checked_by_gc_execute_line():
    # system_execute_line stores $Nx= only if gc_execute_line accepts it: '$' is no word letter (error:1).
    replies, fw = answers(b"$N0=$H\n$N0=G5\n")
    assert replies == ["error:1", "error:20"] and fw.eeprom.startup[0] == ""


def test_integer_settings_are_stored_as_grbl_s_uint8():
    # settings_store_global_setting: uint8_t int_value = trunc(value); $30/$31 keep the float and print rounded.
    replies, fw = answers(b"$1=256\n$20=256\n$0=258\n$30=999.6\n$$\n")
    assert replies[:3] == ["ok", "ok", "error:6"]
    assert fw.eeprom.settings[1] == 0 and fw.eeprom.settings[20] == 0 and fw.eeprom.settings[30] == 999.6
