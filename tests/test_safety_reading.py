"""Reading programs: a stream (memory does not grow with the file), comments, case, framing, junk."""

from __future__ import annotations

import io
import tracemalloc

import pytest

from labbridge.safety import Interpreter, check_text
from labbridge.safety.program import check_stream

from .conftest import make_machine


class GeneratedProgram(io.RawIOBase):
    """A long program produced on the fly, so the test itself never holds it in memory."""

    def __init__(self, lines: int) -> None:
        self.lines, self.n, self.buf = lines, 0, b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while len(self.buf) < len(b) and self.n < self.lines:
            i = self.n
            self.n += 1
            if i == 0:
                self.buf += b"G21 G90 M3 S1000\n"
            elif i == self.lines - 1:
                self.buf += b"M30\n"
            else:
                self.buf += f"G1 X{i % 90}.5 Y{(i * 7) % 90}.25 F800\n".encode()
        n = min(len(b), len(self.buf))
        b[:n], self.buf = self.buf[:n], self.buf[n:]
        return n


@pytest.mark.parametrize("fast, lines", [(True, 200_000), (False, 8_000)])
def test_memory_does_not_grow_with_the_program(fast, lines, monkeypatch):
    monkeypatch.setattr("labbridge.safety.program.CHUNK_BYTES", 16 * 1024)  # both sizes span many chunks
    machine = make_machine()
    peaks = []
    for n in (lines // 10, lines):
        tracemalloc.start()
        report = check_stream(io.BufferedReader(GeneratedProgram(n)), "t", machine, "gen", fast=fast)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert report.ok and report.lines == n
    # Ten times the lines, about the same peak: a chunk buffer and a bounded list of ETA marks.
    assert peaks[1] < peaks[0] * 1.5 + 256 * 1024, peaks
    assert peaks[1] < 4 * 1024 * 1024, peaks


def test_comments_case_spaces_and_framing():
    machine = make_machine()
    program = "%\n(header) ; more\ng21 g90 (mid-line comment) m3 s1000\n  G 1 X 1 0 F 1 0 0  ; trailing\n%\nM30\n"
    report = check_text(program, machine)
    assert report.ok, report.diagnostics
    assert report.bounds["max"]["X"] == 10.0


def test_block_delete_is_executed_as_grbl_does():
    # GRBL ignores '/', so the block runs: the check must see its motion.
    report = check_text("G21 M3 S1000\n/G0 X200\nM30\n", make_machine())
    assert [d.code for d in report.errors] == ["envelope"]


def test_unclosed_comment_is_a_warning():
    report = check_text("G21 M3 S1000 (forgot to close\nM30\n", make_machine())
    assert report.ok and [d.code for d in report.warnings] == ["syntax"]


def test_message_comments_are_kept_for_the_operator():
    result = Interpreter(make_machine()).execute("(MSG, change to the 3 mm cutter)", 1)
    assert result.ok and result.message == "change to the 3 mm cutter"


def test_non_ascii_outside_comments_is_rejected_inside_is_fine():
    machine = make_machine()
    assert check_text("(Fräsen: Ärger vermeiden)\nM30\n", machine).ok
    report = check_text("G0 X1 Ä\nM30\n", machine)
    assert [d.code for d in report.errors] == ["syntax"]


def test_empty_program_is_an_error():
    report = check_text("", make_machine())
    assert not report.ok and report.errors[0].line == 0


def test_the_streamer_sends_the_lines_the_gate_checked():
    """CR, LF and CR LF end lines for the gate, GRBL and the streamer alike; form feeds do not."""
    from labbridge.protocols.grbl_stream import program_lines
    from labbridge.safety.lexer import split_lines

    text = "G21\rG90\r\nG0 X5\x0cY5\r\rG1 X6 F100\nM30"
    report = check_text(text, make_machine())
    assert report.lines == 6
    sent = program_lines(enumerate(split_lines(text), 1))
    assert [(ln.number, ln.text) for ln in sent] == [(1, "G21"), (2, "G90"), (3, "G0X5Y5"), (5, "G1X6F100"),
                                                    (6, "M30")]
