"""Differential fuzzing of the safety gate on degenerate programs, every dialect: the C fast path and the pure
Python interpreter give the same report, no check raises, no NaN or Infinity reaches the JSON.

The generator is bench/degenerate_programs.py's; the bench runs 10,000 programs per dialect, this test a few
dozen on every run.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from bench.degenerate_programs import DIALECTS, machine_for, program, verdict

MACHINES = {d: machine_for(d) for d in DIALECTS}


def _check(data: bytes, dialect: str) -> None:
    assert verdict(data, dialect, MACHINES[dialect]) is None


@pytest.mark.parametrize("dialect", DIALECTS)
def test_degenerate_programs_check_cleanly_and_alike_on_both_paths(dialect):
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=program(dialect))
    def run(data: bytes) -> None:
        _check(data, dialect)

    run()


@pytest.mark.parametrize("dialect, data", [
    ("grbl", b"G21 G90\nG0 X10 Y10\nG2 X10 Y10 Z-5 R5 F100\nM30\n"),
    ("grbl", b"G21 G90 M3 S500\nG1 X5 F0.000000001\nG3 X10 Y0 R1000000\nG2 X10 Y0 R-999999.9 F100\nM30\n"),
    ("grbl", b"G21\rG90\rG0 X5 Y5\rM3 S1000\rG1 X20 F300\rM30\r"),
    ("fanuc-mill", b"G21 G90 G0 X0. Y0. Z10.\nG91 G99 G81 X10. R-5. Z-10. F100. K3\nX10. R-5.\nG80\nM30\n"),
    ("fanuc-lathe", b"G50 S2000\nG96 S150 M3\nG0 X40. Z2.\nG1 X0. F0.2\nG2 X0. Z2. R5.\nM30\n"),
])
def test_the_issue_cases_check_cleanly_and_alike(dialect, data):
    _check(data, dialect)
