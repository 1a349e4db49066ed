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
