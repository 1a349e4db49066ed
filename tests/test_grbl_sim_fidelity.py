"""The simulated GRBL against GRBL 1.1h's source (gnea/grbl grbl/*.c), one observable behaviour per test; each
test names the firmware function it follows."""

from __future__ import annotations

from .test_grbl_sim_firmware import answers


def test_percent_line_is_error_1():
    # gc_execute_line: '%' is not a letter A-Z, so STATUS_EXPECTED_COMMAND_LETTER (protocol.c leaves it in).
    replies, _ = answers(b"%\n")
    assert replies == ["error:1"]


def test_first_faulty_word_decides():
    # gc_execute_line step 2 reads word by word: the repeated X is answered before the bad number after it.
    replies, _ = answers(b"G1 X1 X2 Y\nG0 G1 X1\n")
    assert replies == ["error:25", "error:24"]
