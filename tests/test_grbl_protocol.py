"""The sans-IO GRBL core: every output kind, the recorded session replayed, the streaming window."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labbridge.protocols.grbl_codes import ALARMS, ERRORS, SETTINGS
from labbridge.protocols.grbl import (
    LINE_MAX,
    REALTIME,
    Alarm,
    Banner,
    CharacterCounter,
    Error,
    GcodeState,
    GrblParser,
    Help,
    Message,
    Ok,
    Options,
    Parameter,
    Probe,
    Setting,
    StartupEcho,
    StartupLine,
    Status,
    Unknown,
    Version,
    WindowError,
    clean_line,
    writes_eeprom,
)

TRACE = Path(__file__).resolve().parents[1] / "tests" / "traces" / "grbl-1.1h-received.tsv"


def _trace_bytes() -> bytes:
    lines = []
    for row in TRACE.read_text().splitlines():
        if row.startswith("#"):
            continue
        _, _, line = row.partition("\t")
        lines.append(line.encode() + b"\r\n")
    return b"".join(lines)


TRACE_BYTES = _trace_bytes()


def _parse_whole(data: bytes) -> list:
    return GrblParser().feed(data)


WHOLE = _parse_whole(TRACE_BYTES)


def one(line: str):
    events = GrblParser().feed(line.encode() + b"\r\n")
    assert len(events) == 1
    return events[0]


# ----------------------------------------------------------------- every output kind


def test_banner_ok_error_alarm() -> None:
    assert one("Grbl 1.1h ['$' for help]") == Banner("1.1h", "Grbl 1.1h ['$' for help]")
    assert one("ok") == Ok()
    err = one("error:22")
    assert isinstance(err, Error) and err.code == 22 and "feed" in err.message
    alarm = one("ALARM:2")
    assert isinstance(alarm, Alarm) and alarm.code == 2 and "soft limit" in alarm.message
    assert "unknown" in one("error:99").message


def test_bracket_messages() -> None:
    assert one("[MSG:'$H'|'$X' to unlock]") == Message("'$H'|'$X' to unlock")
    assert one("[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]") == GcodeState(
        ("G0", "G54", "G17", "G21", "G90", "G94", "M5", "M9", "T0", "F0", "S0")
    )
    assert one("[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]") == Help(
        "$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x"
    )
    assert one("[VER:1.1h.20190830:]") == Version("1.1h.20190830", "")
    assert one("[VER:1.1h.20190830:mill one]") == Version("1.1h.20190830", "mill one")
    assert one("[OPT:V,15,128]") == Options("V", 15, 128)
    assert one("[OPT:VNM,15,255]") == Options("VNM", 15, 255)
    assert one("[PRB:1.000,-2.500,3.000:1]") == Probe((1.0, -2.5, 3.0), True)
    assert one("[PRB:0.000,0.000,0.000:0]") == Probe((0.0, 0.0, 0.0), False)
    assert one("[G54:1.000,2.000,3.000]") == Parameter("G54", (1.0, 2.0, 3.0))
    assert one("[G92:0.000,0.000,0.000]") == Parameter("G92", (0.0, 0.0, 0.0))
    assert one("[TLO:0.500]") == Parameter("TLO", (0.5,))


def test_settings_startup_lines_and_echo() -> None:
    assert one("$110=500.000") == Setting(110, "500.000")
    assert one("$0=10") == Setting(0, "10")
    assert one("$N0=G20G54") == StartupLine(0, "G20G54")
    assert one("$N1=") == StartupLine(1, "")
    assert one(">G20G54:ok") == StartupEcho("G20G54", "ok")
    assert one(">G99:error:20") == StartupEcho("G99", "error:20")


def test_unknown_lines_never_fatal() -> None:
    for junk in ("hello", "<Run|MPos:1.0,2.k,3>", "[FOO:bar]", "error:x", "\x00\xff", "<>", "[no colon]"):
        events = GrblParser().feed(junk.encode("latin-1") + b"\n")
        assert len(events) == 1 and isinstance(events[0], Unknown)
    # garbage bytes that are not UTF-8
    events = GrblParser().feed(b"\xfe\xfe\x81ok\n")
    assert isinstance(events[0], Unknown)
    # an endless line without terminator does not grow memory without bound
    parser = GrblParser()
    events = parser.feed(b"x" * 5000)
    assert events and all(isinstance(e, Unknown) for e in events)


def test_line_endings_cr_lf_crlf() -> None:
    for sep in (b"\r\n", b"\n", b"\r", b"\n\r"):
        assert GrblParser().feed(b"ok" + sep + b"error:1" + sep) == [Ok(), Error(1, ERRORS[1])]


def test_partial_line_kept() -> None:
    parser = GrblParser()
    assert parser.feed(b"<Idle|MPos:0.000,0.0") == []
    events = parser.feed(b"00,0.000|Bf:15,128|FS:0,0>\r\nok")
    assert len(events) == 1 and isinstance(events[0], Status)
    assert parser.feed(b"\r\n") == [Ok()]


# ----------------------------------------------------------------- status reports


def test_status_mpos_kind_with_cached_wco_and_overrides() -> None:
    parser = GrblParser()
    first = parser.feed(b"<Run|MPos:10.000,20.000,5.000|Bf:3,50|FS:500,1000|WCO:1.000,2.000,-1.000>\r\n")[0]
    assert first.state == "Run" and first.substate is None
    assert first.mpos == (10.0, 20.0, 5.0)
    assert first.wpos == (9.0, 18.0, 6.0)
    assert first.wco == (1.0, 2.0, -1.0)
    assert (first.planner_free, first.rx_free, first.feed, first.spindle) == (3, 50, 500.0, 1000.0)
    assert first.overrides is None
    second = parser.feed(b"<Run|MPos:11.000,20.000,5.000|Bf:3,50|FS:500,1000|Ov:120,50,90|A:SF>\r\n")[0]
    assert second.wpos == (10.0, 18.0, 6.0)  # WCO from the cache
    assert second.overrides == (120, 50, 90)
    assert second.accessories == frozenset("SF")
    third = parser.feed(b"<Hold:1|MPos:12.000,20.000,5.000|FS:0,1000|Pn:XD>\r\n")[0]
    assert third.state == "Hold" and third.substate == 1
    assert third.overrides == (120, 50, 90) and third.accessories == frozenset("SF")
    assert third.pins == frozenset({"X", "D"})
    assert third.wpos == (11.0, 18.0, 6.0)
    # Ov without A: accessories are now off
    fourth = parser.feed(b"<Idle|MPos:12.000,20.000,5.000|FS:0,0|Ov:100,100,100>\r\n")[0]
    assert fourth.accessories == frozenset()


def test_status_wpos_kind() -> None:
    parser = GrblParser()
    status = parser.feed(b"<Idle|WPos:1.000,2.000,3.000|Bf:15,128|F:0|WCO:10.000,0.000,-5.000|Ln:42>\r\n")[0]
    assert status.wpos == (1.0, 2.0, 3.0)
    assert status.mpos == (11.0, 2.0, -2.0)
    assert status.line == 42 and status.feed == 0.0 and status.spindle is None
    door = parser.feed(b"<Door:1|WPos:1.000,2.000,3.000>\r\n")[0]
    assert door.state == "Door" and door.substate == 1 and door.mpos == (11.0, 2.0, -2.0)


def test_status_without_known_wco_leaves_other_position_unknown() -> None:
    status = one("<Idle|MPos:1.000,2.000,3.000|FS:0,0>")
    assert status.mpos == (1.0, 2.0, 3.0) and status.wpos is None and status.wco is None


def test_banner_clears_caches() -> None:
    parser = GrblParser()
    parser.feed(b"<Idle|MPos:1.000,2.000,3.000|WCO:1.000,1.000,1.000|Ov:150,100,100>\r\n")
    parser.feed(b"\r\nGrbl 1.1h ['$' for help]\r\n")
    status = parser.feed(b"<Alarm|MPos:1.000,2.000,3.000|FS:0,0>\r\n")[0]
    assert status.wco is None and status.overrides == (100, 100, 100)


# ----------------------------------------------------------------- the recorded session


def test_trace_replayed_whole_has_every_kind() -> None:
    kinds = Counter(type(e).__name__ for e in WHOLE)
    assert kinds["Banner"] == 14
    assert kinds["Ok"] == 16482
    assert kinds["Setting"] == 34
    assert kinds["Parameter"] == 10
    assert kinds["Alarm"] == 4
    assert kinds["Error"] == 17
    for name in ("Status", "Message", "Version", "Options", "Probe", "Help", "GcodeState"):
        assert kinds[name] >= 1, name
    # the recording holds one line damaged on the wire: reported, not fatal
    unknown = [e for e in WHOLE if isinstance(e, Unknown)]
    assert len(unknown) == 1 and "4.k52" in unknown[0].line
    assert Options("V", 15, 128) in WHOLE
    assert Version("1.1h.20190830", "") in WHOLE
    alarms = [e.code for e in WHOLE if isinstance(e, Alarm)]
    assert alarms == [3, 2, 2, 2]
    statuses = [e for e in WHOLE if isinstance(e, Status)]
    assert {s.state for s in statuses} >= {"Idle", "Run", "Hold", "Alarm", "Check"}
    assert all(s.mpos is not None for s in statuses)
    # WCO is known from the first report on, so every report has a work position
    assert all(s.wpos is not None for s in statuses)
    assert {s.substate for s in statuses if s.state == "Hold"} == {0, 1}


def test_trace_one_byte_at_a_time() -> None:
    parser = GrblParser()
    events = []
    for i in range(len(TRACE_BYTES)):
        events.extend(parser.feed(TRACE_BYTES[i : i + 1]))
    assert events == WHOLE


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(TRACE_BYTES)), max_size=400))
def test_trace_split_at_random_points(cuts: list[int]) -> None:
    parser = GrblParser()
    events = []
    last = 0
    for cut in sorted(set(cuts)) + [len(TRACE_BYTES)]:
        events.extend(parser.feed(TRACE_BYTES[last:cut]))
        last = cut
    assert events == WHOLE


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_garbage_never_raises_and_split_invariant(data: bytes, step: int) -> None:
    whole = GrblParser().feed(data)
    parser = GrblParser()
    pieces = []
    for i in range(0, len(data), step):
        pieces.extend(parser.feed(data[i : i + step]))
    assert pieces == whole


# ----------------------------------------------------------------- cleaning and EEPROM


def test_clean_line_like_grbl() -> None:
    assert clean_line("g1 x1 f100") == "G1X1F100"
    assert clean_line("G0 X1 (move) Y2 ; to the corner") == "G0X1Y2"
    assert clean_line("(comment only)") == ""
    assert clean_line("") == ""
    assert clean_line("/G1 X1\tY2\r\n") == "G1X1Y2"
    assert clean_line("$j=g91 x5 f1000") == "$J=G91X5F1000"
    assert clean_line("G1 X1 (hold!) ! Y2 ? ~") == "G1X1Y2"
    assert clean_line("G1 X1 (a(b)c) Y2") == "G1X1C)Y2"  # GRBL does not nest comments
    assert clean_line("G1 X1 ;(never closed") == "G1X1"


def test_line_max_matches_grbl_line_buffer() -> None:
    assert LINE_MAX == 79  # LINE_BUFFER_SIZE 80 incl. the NUL terminator


@pytest.mark.parametrize(
    "line",
    ["G10 L2 P1 X0", "G10L20P0X0Y0", "g28.1", "G30.1", "$110=500", "$I=mill one", "$N0=G20", "$RST=$", "$RST=*",
     "G90 G10 L20 P2 X5"],
)
def test_writes_eeprom(line: str) -> None:
    assert writes_eeprom(clean_line(line))


@pytest.mark.parametrize(
    "line", ["G10 P1 X0", "G28", "G30", "$$", "$I", "$N", "$#", "$H", "$X", "$C", "$J=G91X1F100", "G1 X10 L2", "G20"]
)
def test_does_not_write_eeprom(line: str) -> None:
    assert not writes_eeprom(clean_line(line))


# ----------------------------------------------------------------- the streaming window


def test_realtime_bytes() -> None:
    assert REALTIME["STATUS"] == b"?" and REALTIME["RESET"] == b"\x18"
    assert REALTIME["DOOR"] == b"\x84" and REALTIME["JOG_CANCEL"] == b"\x85"
    assert REALTIME["FEED_100"] == b"\x90" and REALTIME["SPINDLE_STOP"] == b"\x9e"
    assert REALTIME["FLOOD"] == b"\xa0" and REALTIME["MIST"] == b"\xa1"
    assert len(set(REALTIME.values())) == len(REALTIME)


def test_counter_fills_window_exactly() -> None:
    counter = CharacterCounter(rx_buffer=128)
    line = "G1X1.000Y2.000F100"  # 18 chars + newline = 19 bytes
    sent = 0
    while counter.can_send(line):
        assert counter.sent(line, sent) == line.encode() + b"\n"
        sent += 1
    assert sent == 128 // 19 and counter.in_flight == sent * 19 and counter.pending == sent
    with pytest.raises(WindowError):
        counter.sent(line, "too many")
    assert counter.acknowledge() == 0
    assert counter.in_flight == (sent - 1) * 19
    assert counter.can_send(line)
    # a line of exactly the remaining room fits
    room = 128 - counter.in_flight - 1
    assert counter.can_send("X" * room) and not counter.can_send("X" * (room + 1))


def test_counter_eeprom_lines_go_alone() -> None:
    counter = CharacterCounter()
    counter.sent("G1X1F100", "a")
    assert not counter.can_send("$110=500")
    counter.acknowledge()
    assert counter.can_send("$110=500")
    counter.sent("$110=500", "eeprom")
    assert counter.blocked_on_eeprom
    assert not counter.can_send("G1X2")
    assert counter.acknowledge() == "eeprom"
    assert not counter.blocked_on_eeprom and counter.can_send("G1X2")


def test_counter_send_response_mode() -> None:
    counter = CharacterCounter(mode="sr")
    assert counter.can_send("G1X1F100")
    counter.sent("G1X1F100", 1)
    assert not counter.can_send("G1X2")
    assert counter.acknowledge() == 1
    assert counter.can_send("G1X2")


def test_counter_reset_and_spurious_ack() -> None:
    counter = CharacterCounter(rx_buffer=64)
    counter.sent("G1X1F100", 1)
    counter.sent("G1X2", 2)
    counter.reset()
    assert counter.in_flight == 0 and counter.pending == 0
    assert counter.acknowledge() is None
    with pytest.raises(ValueError):
        CharacterCounter(mode="fast")


def test_tables_cover_trace_codes() -> None:
    for code in (1, 2, 3, 4, 9, 11, 15, 16, 20, 22, 25, 28, 35):
        assert code in ERRORS
    assert set(ALARMS) == set(range(1, 10))
    assert {130, 131, 132, 110, 30, 20, 22} <= set(SETTINGS)


def test_firmware_notes_document_the_same_tables() -> None:
    notes = (Path(__file__).resolve().parents[1] / "firmware-notes" / "grbl-1.1.md").read_text()
    for code, meaning in ERRORS.items():
        assert f"| {code} | {meaning} |" in notes, code
    for code, meaning in ALARMS.items():
        assert f"| {code} | {meaning} |" in notes, code
    for number, (name, unit) in SETTINGS.items():
        assert f"| ${number} | {name} | {unit} |" in notes, number
    for name in REALTIME:
        assert name in notes, name


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.text(alphabet="GXYZF0123456789.-", min_size=1, max_size=40),
                       st.sampled_from(["$110=500", "G10L20P1X0", "G28.1", "$N0=G21"])), min_size=1, max_size=60),
    st.lists(st.booleans(), max_size=200),
    st.sampled_from(["cc", "sr"]),
    st.integers(min_value=64, max_value=256),
)
def test_counter_invariants(lines: list[str], acks: list[bool], mode: str, rx: int) -> None:
    """Whatever the order of sends and answers: the window is never exceeded, an EEPROM line is always
    alone in flight, send-response never has two lines out, and answers release lines in send order."""
    counter = CharacterCounter(rx_buffer=rx, mode=mode)
    queue = list(lines)
    sent: list[int] = []
    released: list[int] = []
    steps = iter(acks)
    i = 0
    while queue or counter.pending:
        send_now = next(steps, False)
        if send_now and queue and counter.can_send(queue[0]):
            line = queue.pop(0)
            counter.sent(line, i)
            sent.append(i)
            i += 1
        elif counter.pending:
            released.append(counter.acknowledge())
        elif queue:
            assert counter.can_send(queue[0])  # an empty window always takes the next line
            counter.sent(queue.pop(0), i)
            sent.append(i)
            i += 1
        inflight = sent[len(released):]
        if counter.pending > 1:
            assert counter.in_flight <= rx
            assert not counter.blocked_on_eeprom
        if mode == "sr":
            assert counter.pending <= 1
        assert counter.pending == len(inflight)
    assert released == sent
    assert counter.in_flight == 0
