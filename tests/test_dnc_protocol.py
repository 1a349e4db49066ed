"""Sans-IO DNC cores: framing, the sender's flow control and timeouts, punch-out receive, the tape reader."""

from __future__ import annotations

import pytest

from labbridge.protocols import dnc as dp

PROGRAM = ["%", "O0012 (shaft)", "g0 x50 z5", "", "G1 Z-20 F0.2 (rough)", "M30", "%"]


def feed(sender: dp.DncSender, now: float = 0.0) -> bytes:
    out = bytearray()
    while chunk := sender.next_chunk(now):
        out += chunk
    return bytes(out)


def test_framing_iso_lf_uppercases_outside_comments_and_keeps_one_pair_of_percent() -> None:
    framed = dp.frame_program(PROGRAM)
    assert framed.data == b"%\nO0012 (shaft)\nG0 X50 Z5\nG1 Z-20 F0.2 (rough)\nM30\n%\n"
    assert framed.blocks == ("O0012 (shaft)", "G0 X50 Z5", "G1 Z-20 F0.2 (rough)", "M30")
    assert framed.source_lines == (2, 3, 5, 6)
    assert not framed.appended_end


def test_framing_crlf_nul_leader_and_o_number() -> None:
    framed = dp.frame_program(["G0 X1", "M30"], end_of_block="CRLF", nul_leader=3, o_number=7)
    assert framed.data == b"\x00\x00\x00%\r\nO0007\r\nG0 X1\r\nM30\r\n%\r\n"
    assert framed.source_lines == (None, 1, 2)


def test_framing_appends_m30_when_the_program_has_no_end() -> None:
    framed = dp.frame_program(["G0 X1"])
    assert framed.blocks[-1] == "M30" and framed.appended_end


def test_tv_check_pads_every_block_to_an_even_count_and_the_reader_accepts_it() -> None:
    framed = dp.frame_program(["G0 X1", "G1 X22 F100", "M30"], tv_check=True)
    for block in framed.blocks:
        assert (len(block) + 1) % 2 == 0, block
    reader = dp.TapeReader(tv_check=True)
    events = reader.receive_data(framed.data)
    assert [e.text for e in events if isinstance(e, dp.Block)] == ["G0 X1", "G1 X22 F100", "M30"]
    assert isinstance(events[-1], dp.TapeEnd)


def test_tape_reader_raises_tv_alarm_on_an_odd_block() -> None:
    reader = dp.TapeReader(tv_check=True)
    events = reader.receive_data(b"%\nG0 X1\nG0 X12\n%\n")  # "G0 X1" + LF = 6 (even), "G0 X12" + LF = 7
    alarms = [e for e in events if isinstance(e, dp.TapeAlarm)]
    assert alarms and alarms[0].code == "002" and "G0 X12" in alarms[0].message


def test_framing_rejects_non_ascii_and_percent_inside_a_block() -> None:
    with pytest.raises(dp.FramingError, match="line 2"):
        dp.frame_program(["G0 X1", "(ébauche)"])
    with pytest.raises(dp.FramingError, match="'%'"):
        dp.frame_program(["G0 X1 %"])
    with pytest.raises(dp.FramingError, match="no blocks"):
        dp.frame_program(["%", "", "%"])


def test_sender_waits_for_dc1_then_sends_in_chunks() -> None:
    framed = dp.frame_program(PROGRAM)
    sender = dp.DncSender(framed, chunk_size=8)
    assert sender.next_chunk(0.0) == b""  # nothing before DC1
    assert sender.receive_data(b"\x11", 0.1) == [dp.Started()]
    first = sender.next_chunk(0.1)
    assert first == framed.data[:8]
    rest = feed(sender, 0.2)
    assert first + rest == framed.data
    assert sender.state == dp.SendState.DONE and sender.blocks_sent == 4


def test_dc3_pauses_and_dc1_resumes() -> None:
    sender = dp.DncSender(dp.frame_program(PROGRAM), chunk_size=4)
    sender.receive_data(b"\x11", 0.0)
    sender.next_chunk(0.0)
    assert sender.receive_data(b"\x13", 0.1) == [dp.Paused()]
    assert sender.next_chunk(0.2) == b""
    assert sender.receive_data(b"\x11", 0.3) == [dp.Resumed()]
    assert sender.next_chunk(0.3) != b""


@pytest.mark.parametrize(("byte", "code", "word"), [(b"\x15", "NAK", "alarm"), (b"\x16", "SYN", "reset")])
def test_nak_and_syn_abort_naming_the_last_block(byte: bytes, code: str, word: str) -> None:
    framed = dp.frame_program(PROGRAM)
    sender = dp.DncSender(framed, chunk_size=framed.block_ends[1])  # exactly two blocks
    sender.receive_data(b"\x11", 0.0)
    sender.next_chunk(0.0)
    events = sender.receive_data(byte, 0.1)
    assert isinstance(events[0], dp.Aborted) and events[0].code == code
    assert word in events[0].reason and "#2 'G0 X50 Z5'" in events[0].reason
    assert sender.next_chunk(0.2) == b"" and sender.state == dp.SendState.ABORTED


def test_timeouts_are_decided_from_the_clock_passed_in() -> None:
    sender = dp.DncSender(dp.frame_program(PROGRAM), dc1_timeout=5, stall_timeout=2, now=100.0)
    assert sender.check_timeout(104.9) is None
    assert sender.time_left(103.0) == pytest.approx(2.0)
    aborted = sender.check_timeout(105.1)
    assert aborted is not None and aborted.code == "timeout-dc1" and "no DC1" in aborted.reason
    sender = dp.DncSender(dp.frame_program(PROGRAM), dc1_timeout=5, stall_timeout=2, now=0.0)
    sender.receive_data(b"\x11", 0.0)
    sender.next_chunk(0.0)
    sender.receive_data(b"\x13", 1.0)
    assert sender.check_timeout(2.9) is None
    stalled = sender.check_timeout(3.1)
    assert stalled is not None and stalled.code == "timeout-dc3" and "did not resume within 2 s" in stalled.reason


def test_noise_is_reported_and_ignored() -> None:
    sender = dp.DncSender(dp.frame_program(PROGRAM))
    events = sender.receive_data(b"\xffAB\x11", 0.0)
    assert dp.Started() in events
    assert dp.Garbage(b"\xffAB") in events


def test_receiver_collects_a_punched_program_with_leader_crlf_and_dc_codes() -> None:
    receiver = dp.DncReceiver()
    wire = b"\x12\x00\x00\x00%\r\nO0100\r\nG0 X1\r\n\r\nM30\r\n%\r\n\x14"
    events = []
    for i in range(0, len(wire), 5):  # arrives in pieces
        events += receiver.receive_data(wire[i : i + 5])
    assert isinstance(events[0], dp.ReceiveStarted)
    done = [e for e in events if isinstance(e, dp.ProgramReceived)]
    assert done == [dp.ProgramReceived("%\nO0100\nG0 X1\nM30\n%\n", 3)]


def test_receiver_without_dc2_and_with_parity_bits_set() -> None:
    receiver = dp.DncReceiver()
    wire = bytes(b | 0x80 if b in b"%G" else b for b in b"%\nG0 X1\n%\n")
    events = receiver.receive_data(wire)
    assert events[-1] == dp.ProgramReceived("%\nG0 X1\n%\n", 1)
