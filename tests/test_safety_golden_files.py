"""Golden files: odd programs (as students and old CAM post-processors write them) with the exact report the
gate gives, on both paths (C fast path and pure Python), and the preview drawing exactly the bounds the gate
checked.

Each ``tests/golden/NAME.nc`` has its expected ``check --json`` report in ``NAME.json``; the file name's
prefix names the machine (``grbl-``, ``fanuc-mill-``, ``fanuc-lathe-``). After a deliberate change, rewrite
the expected reports with ``LABBRIDGE_GOLDEN=update pytest tests/test_safety_golden_files.py`` and read the
diff before committing it.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import pytest

from labbridge.safety.toolpath import build_toolpath
from labbridge.safety.program import _fastcheck, check_stream

from .conftest import make_machine

GOLDEN = Path(__file__).parent / "golden"
PROGRAMS = sorted(GOLDEN.glob("*.nc"))
BIG = {"X": [-500, 500], "Y": [-500, 500], "Z": [-500, 500]}


def machine_for(path: Path):
    name = path.name
    if name.startswith("fanuc-lathe-"):
        return make_machine(controller="fanuc-lathe", envelope={"X": [-10, 200], "Z": [-300, 50]},
                            home={"X": 100, "Z": 20}, spindle={"max_rpm": 3000}, tool_changer=True)
    if name.startswith("fanuc-mill-"):
        return make_machine(controller="fanuc-mill", envelope=BIG, tool_changer=True)
    assert name.startswith("grbl-"), name
    return make_machine(envelope=BIG)


def report(path: Path, fast: bool) -> dict:
    data = path.read_bytes()
    return check_stream(io.BytesIO(data), "golden", machine_for(path), path.name, fast=fast).to_json()


def assert_finite(value: object) -> None:
    if isinstance(value, float):
        assert math.isfinite(value), value
    elif isinstance(value, dict):
        for v in value.values():
            assert_finite(v)
    elif isinstance(value, list):
        for v in value:
            assert_finite(v)


@pytest.mark.parametrize("path", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_golden_report(path):
    got = report(path, fast=False)
    expected_path = path.with_suffix(".json")
    if os.environ.get("LABBRIDGE_GOLDEN") == "update" or not expected_path.exists():
        expected_path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    assert got == json.loads(expected_path.read_text())
    assert_finite(got)
    json.dumps(got, allow_nan=False)  # no NaN or Infinity ever reaches the JSON


@pytest.mark.skipif(_fastcheck is None, reason="the C fast path was not built")
@pytest.mark.parametrize("path", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_golden_report_is_the_same_on_the_fast_path(path):
    assert report(path, fast=True) == report(path, fast=False)


@pytest.mark.parametrize("path", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_preview_draws_exactly_the_bounds_the_gate_checked(path):
    machine = machine_for(path)
    got = report(path, fast=False)
    preview = build_toolpath(path, "golden", machine, got["bounds"])
    points = preview.unpack()[0]
    if got["bounds"] is None:
        assert not points
        return
    axes = list(got["bounds"]["min"])
    index = {"X": 0, "Y": 1, "Z": 2}
    for axis in axes:
        values = [p[index[axis]] for p in points]
        assert min(values) == pytest.approx(got["bounds"]["min"][axis], abs=1e-4), axis
        assert max(values) == pytest.approx(got["bounds"]["max"][axis], abs=1e-4), axis
