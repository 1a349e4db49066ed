"""Degenerate G-code programs through the `labbridge check` logic: tracebacks and non-finite numbers in the JSON.

Hypothesis writes programs the way students and old CAM post-processors do, only worse: zero-length moves,
arcs whose start is their end, radii near 0 and near 1e6, tiny and huge feeds, numbers of 8 and more digits,
G91 and G20, R arcs, canned cycles, every dialect's own words, odd line ends. Each program is checked on the C
fast path and in pure Python; both reports must be the same, JSON without NaN or Infinity, and the human
report must print. Goal: 0 tracebacks, 0 non-finite numbers, 0 disagreements.

    python bench/degenerate_programs.py [--programs 10000] [--dialect grbl]

tests/test_safety_fuzz.py runs the same generator with fewer examples on every test run.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
import traceback
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labbridge.cli.check import human_report  # noqa: E402
from labbridge.config import Machine, parse_config  # noqa: E402
from labbridge.safety.program import Report, _fastcheck, check_stream  # noqa: E402

DIALECTS = ("grbl", "fanuc-mill", "fanuc-lathe")

MACHINES: dict[str, dict] = {
    "grbl": {"name": "fuzz mill", "controller": "grbl", "envelope": {"X": [-50, 150], "Y": [-50, 150],
             "Z": [-80, 10]}, "spindle": {"max_rpm": 10000}, "max_feed": 2000,
             "keep_out": [{"name": "vise", "min": {"X": 40, "Y": 40, "Z": -80}, "max": {"X": 50, "Y": 50, "Z": -30}}]},
    "fanuc-mill": {"name": "fuzz mill 2", "controller": "fanuc-mill", "envelope": {"X": [-50, 150],
                   "Y": [-50, 150], "Z": [-80, 60]}, "spindle": {"max_rpm": 6000}, "max_feed": 3000,
                   "tool_changer": True, "tools": {1: {"length": 50}, 2: {"length": 80}}},
    "fanuc-lathe": {"name": "fuzz lathe", "controller": "fanuc-lathe", "envelope": {"X": [-10, 200],
                    "Z": [-300, 50]}, "home": {"X": 100, "Z": 20}, "spindle": {"max_rpm": 3000},
                    "max_feed": 2000, "tool_changer": True},
}


def machine_for(dialect: str) -> Machine:
    return parse_config({"machines": {dialect: MACHINES[dialect]}}, "fuzz").machines[dialect]


# -- numbers as they are written ------------------------------------------------------------------------
def _digits(value: float, style: int) -> str:
    if style == 0:
        return f"{value:.3f}"
    if style == 1:
        return f"{value:.12f}"  # more digits than any controller keeps
    if style == 2:
        return str(int(value)) if abs(value) < 1e15 else f"{value:.0f}"  # no decimal point
    return repr(round(value, 6)).replace("e", "")  # may drop the point or leave stray digits


VALUES = st.one_of(
    st.sampled_from([0.0, -0.0, 1e-7, -1e-7, 0.0005, 1.0, 10.0, 25.4, 99.99999, 999999.0, 1e6, -1e6, 123456789.0]),
    st.floats(-200, 200, allow_nan=False),
    st.floats(-1e7, 1e7, allow_nan=False),
)
NUMBER = st.builds(_digits, VALUES, st.integers(0, 3))
SMALL_POSITIVE = st.builds(_digits, st.one_of(st.sampled_from([0.0, 1e-9, 0.000000001, 0.001, 0.1, 1.0, 5e5, 1e9]),
                                               st.floats(0, 5000, allow_nan=False)), st.integers(0, 2))


def words(letters: str) -> st.SearchStrategy[str]:
    return st.lists(st.tuples(st.sampled_from(letters), NUMBER), max_size=4).map(
        lambda ws: " ".join(f"{k}{v}" for k, v in ws))


COMMON = ["G0", "G1", "G2", "G3", "G4 P0.3", "G90", "G91", "G20", "G21", "G80", "M3 S800", "M5", "M8", "M9", "M30",
          "G53 G0 Z0", "G28", "G92 X0 Y0", "G92.1", "G54", "G55", "G10 L2 P2 X10 Y10", "G10 L20 P1 X0",
          "(a comment)", "; semicolon comment", "", "%", "N10", "G1 X10 (unclosed"]
PER_DIALECT = {
    "grbl": COMMON + ["G17", "G18", "G19", "G93", "G94", "G38.2 Z-5 F50", "G43.1 Z-3", "G49", "M7", "G91.1",
                      "G0 X１０", "G1.05 X1", "M3.004", "$H", "#1=2", "G1 X5 F0.000000001"],
    "fanuc-mill": COMMON + ["G17", "G18", "G19", "G94", "G95", "G98", "G99", "G43 H1", "G43 H2", "G49", "M6 T2",
                            "G81 Z-5. R2.", "G82 Z-4. R1. P500", "G83 Z-10. R2. Q2.", "G73 Z-6. R1. Q0.5",
                            "G85 Z-3. R1.", "G89 Z-2. R1. P200", "K3", "L2", "O1234", "G96 S100", "G97 S500"],
    "fanuc-lathe": COMMON + ["G98", "G99", "G96 S150", "G97 S800", "G50 S2000", "T0101", "T0202", "G83 Z-10. R1. Q2.",
                             "G85 Z-5. R1.", "G4 U1.5", "G4 X0.5"],
}
LETTERS = {"grbl": "XYZIJKRF", "fanuc-mill": "XYZIJKRFQPKL", "fanuc-lathe": "XZUWIKRFQP"}


def block(dialect: str) -> st.SearchStrategy[str]:
    letters = LETTERS[dialect]
    return st.one_of(
        st.sampled_from(PER_DIALECT[dialect]),
        st.tuples(st.sampled_from(PER_DIALECT[dialect]), words(letters)).map(" ".join),
        st.tuples(st.sampled_from(["G2", "G3"]), words("XYZ" if dialect != "fanuc-lathe" else "XZUW"),
                  st.sampled_from(["R", "I", "J", "K"]), NUMBER).map(lambda t: f"{t[0]} {t[1]} {t[2]}{t[3]}"),
        st.tuples(st.sampled_from(["G1", "G0", ""]), words(letters), SMALL_POSITIVE).map(
            lambda t: f"{t[0]} {t[1]} F{t[2]}"),
        st.sampled_from(["G2 X0 Y0 R5", "G2 X0 Y0 Z-5 R5", "G3 I0 J0", "G2 X0 Y0 I0 J0", "G1 X0 Y0 Z0",
                         "G2 X0.001 Y0 R0.0005", "G3 X10 Y0 R1e6", "G2 X10 Y0 R-999999.9"]),
    )


def program(dialect: str) -> st.SearchStrategy[bytes]:
    ends = st.sampled_from(["\n", "\r\n", "\r"])
    return st.tuples(st.lists(block(dialect), min_size=1, max_size=25), ends, st.booleans()).map(
        lambda t: ((t[1].join(["G21 G90 M3 S500"] + t[0]) + (t[1] if t[2] else "")).encode("utf-8")))


# -- one program through the check ----------------------------------------------------------------------
def non_finite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(non_finite(v) for v in value)
    return False


def check_both(data: bytes, dialect: str, machine: Machine) -> tuple[Report, Report | None]:
    """The pure-Python report and, when the C fast path is built, the fast one."""
    slow = check_stream(io.BytesIO(data), dialect, machine, "fuzz", fast=False)
    fast = check_stream(io.BytesIO(data), dialect, machine, "fuzz", fast=True) if _fastcheck is not None else None
    return slow, fast


def disagreement(slow: Report, fast: Report | None) -> str | None:
    """What differs between the two paths' reports, or None."""
    if fast is None:
        return None
    a, b = fast.to_json(), slow.to_json()
    if a["diagnostics"] != b["diagnostics"] or a["ok"] != b["ok"] or a["lines"] != b["lines"]:
        return "diagnostics"
    if (a["bounds"] is None) != (b["bounds"] is None):
        return "bounds"
    if b["bounds"] is not None:
        for side in ("min", "max"):
            for axis, v in b["bounds"][side].items():
                if not math.isclose(a["bounds"][side][axis], v, rel_tol=1e-9, abs_tol=1e-9):
                    return f"bounds {side} {axis}"
    if not math.isclose(fast.estimated_seconds, slow.estimated_seconds, rel_tol=1e-9, abs_tol=1e-9):
        return "estimated_seconds"
    return None


def verdict(data: bytes, dialect: str, machine: Machine) -> str | None:
    """None if the program went through cleanly; else what went wrong."""
    slow, fast = check_both(data, dialect, machine)
    for report in (slow, fast):
        if report is None:
            continue
        payload = report.to_json()
        if non_finite(payload):
            return "non-finite number in the JSON"
        json.dumps(payload, allow_nan=False)
        human_report(report)
    return disagreement(slow, fast)


def run(dialect: str, programs: int) -> dict[str, object]:
    machine = machine_for(dialect)
    stats: dict[str, object] = {"programs": 0, "tracebacks": 0, "non_finite": 0, "disagreements": 0, "first": None}

    @settings(max_examples=programs, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(data=program(dialect))
    def one(data: bytes) -> None:
        stats["programs"] = int(stats["programs"]) + 1  # type: ignore[call-overload]
        try:
            problem = verdict(data, dialect, machine)
        except Exception:  # noqa: BLE001 - counting them is the point
            stats["tracebacks"] = int(stats["tracebacks"]) + 1  # type: ignore[call-overload]
            stats["first"] = stats["first"] or (data, traceback.format_exc())
            return
        if problem == "non-finite number in the JSON":
            stats["non_finite"] = int(stats["non_finite"]) + 1  # type: ignore[call-overload]
        elif problem is not None:
            stats["disagreements"] = int(stats["disagreements"]) + 1  # type: ignore[call-overload]
        if problem is not None:
            stats["first"] = stats["first"] or (data, problem)

    one()
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=10_000, help="programs per dialect")
    parser.add_argument("--dialect", choices=DIALECTS)
    args = parser.parse_args()
    print(f"{'dialect':12s} {'programs':>9s} {'tracebacks':>10s} {'non-finite':>10s} {'C != Python':>11s} {'s':>6s}")
    bad = 0
    for dialect in DIALECTS:
        if args.dialect and dialect != args.dialect:
            continue
        started = time.perf_counter()
        stats = run(dialect, args.programs)
        cost = time.perf_counter() - started
        print(f"{dialect:12s} {stats['programs']:9d} {stats['tracebacks']:10d} {stats['non_finite']:10d} "
              f"{stats['disagreements']:11d} {cost:6.0f}")
        if stats["first"] is not None:
            bad += 1
            data, what = stats["first"]  # type: ignore[misc]
            print(f"  first: {data!r}\n  {what}")
    if _fastcheck is None:
        print("(the C fast path is not built: only the pure-Python path was checked)")
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
