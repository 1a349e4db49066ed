"""How close the safety gate's run-time estimate comes to the GRBL simulator's run time, per kind of program.

Each program is streamed into the simulated GRBL 1.1h (labbridge.sim.grbl: the firmware's planner and its
stepper's 10 ms segments and step timer), character-counting as labbridge's streamer does, with the factory
settings a fresh GRBL has ($110-$112 500 mm/min, $120-$122 10 mm/s², $11 0.010 mm, $12 0.002 mm, 250
steps/mm) and a machine config stating the same values. The simulated run time (first byte sent to the
last ``ok``) is compared with ``estimated_seconds`` from ``labbridge check``. Goal: within 2 % on every kind.

    python bench/eta_accuracy.py [--line-ms 2] [--step-ms 1] [--only KIND]
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labbridge.config import parse_config  # noqa: E402
from labbridge.safety.program import check_stream  # noqa: E402
from labbridge.sim.grbl.firmware import FirmwareOptions, GrblFirmware  # noqa: E402
from labbridge.sim.grbl.settings import Eeprom  # noqa: E402

FACTORY_MACHINE = {
    "name": "factory GRBL", "controller": "grbl",
    "envelope": {"X": [-200, 200], "Y": [-200, 200], "Z": [-100, 100]},
    "spindle": {"max_rpm": 1000}, "max_feed": 500,
    "rapid_rate": {"X": 500, "Y": 500, "Z": 500}, "acceleration": {"X": 10, "Y": 10, "Z": 10},
    "junction_deviation": 0.01, "arc_tolerance": 0.002, "steps_per_mm": {"X": 250, "Y": 250, "Z": 250},
}
HEADER = ["G21 G90 G94 G17", "M3 S1000"]
FOOTER = ["M5", "M30"]


def polyline_circle() -> list[str]:
    """A circle of radius 15 as 600 short G1 segments (0.16 mm), as CAM output often is."""
    out = ["G0 X15 Y0", "G1 Z-1 F200"]
    for i in range(1, 601):
        a = 2 * math.pi * i / 600
        out.append(f"G1 X{15 * math.cos(a):.4f} Y{15 * math.sin(a):.4f} F500")
    return out + ["G0 Z5"]


def zigzag_raster() -> list[str]:
    """A pocket raster: 40 passes of 30 mm joined by 0.5 mm steps at right angles."""
    out = ["G0 X0 Y0", "G1 Z-1 F200", "F500"]
    for i in range(40):
        out.append(f"G1 X{30 if i % 2 == 0 else 0}")
        out.append(f"G1 Y{(i + 1) * 0.5:.1f}")
    return out + ["G0 Z5"]


def sharp_corners() -> list[str]:
    """A zig-zag of 60 sharp 2 mm teeth: the machine nearly stops at every corner."""
    return ["G0 X0 Y0", "F500"] + [f"G1 X{i * 0.5:.1f} Y{2 * (i % 2)}" for i in range(1, 61)]


def long_moves_with_plunge() -> list[str]:
    """A face outline: rapid over, plunge, four 100 mm sides, retract."""
    return ["G0 X-50 Y-50", "G0 Z2", "G1 Z-2 F100", "G1 X50 F400", "G1 Y50", "G1 X-50", "G1 Y-50", "G0 Z10"]


def arcs_every_plane() -> list[str]:
    """Full circles and half circles in G17, G18 and G19, radii 20 and 3."""
    return ["G0 X20 Y0 Z0", "F400", "G17 G2 X20 Y0 I-20 J0", "G3 X14 Y0 I-3 J0", "G0 X0 Y0 Z0",
            "G18 G2 X0 Z20 I0 K10", "G3 X0 Z0 I0 K-10", "G19 G2 Y20 Z0 J10 K0", "G3 Y14 Z0 J-3 K0", "G17"]


def small_arcs() -> list[str]:
    """Forty quarter arcs of radius 1 mm, a rounded staircase: many short chords."""
    out = ["G0 X0 Y0", "F500"]
    x = y = 0.0
    for i in range(40):
        if i % 2 == 0:
            out.append(f"G3 X{x + 1:.3f} Y{y + 1:.3f} I0 J1")
        else:
            out.append(f"G2 X{x + 1:.3f} Y{y + 1:.3f} I1 J0")
        x, y = x + 1, y + 1
    return out


def dwells_and_spindle() -> list[str]:
    """Drilling by hand: move, plunge, dwell, retract; the spindle and coolant change between holes."""
    out = []
    for i in range(6):
        out += [f"G0 X{i * 10} Y0 Z2", "G1 Z-3 F150", "G4 P0.37", "G0 Z2", "M8" if i % 2 else "M9",
                f"S{500 + 80 * i}"]
    return out + ["M9"]


KINDS: dict[str, Callable[[], list[str]]] = {
    "short-segment polyline": polyline_circle,
    "zig-zag raster": zigzag_raster,
    "sharp corners": sharp_corners,
    "long moves + plunge": long_moves_with_plunge,
    "arcs G17/G18/G19": arcs_every_plane,
    "small arcs": small_arcs,
    "dwells, spindle, coolant": dwells_and_spindle,
}


def simulate(lines: list[str], machine, line_seconds: float, step: float) -> float:
    """Stream ``lines`` into the simulated GRBL (character counting, 128-byte RX buffer); seconds to the last ok."""
    fw = GrblFirmware(machine, Eeprom(), FirmwareOptions(line_seconds=line_seconds))
    fw.take_output()
    t, sent, answered, in_flight = 0.0, 0, 0, []
    while answered < len(lines):
        while sent < len(lines):
            data = (lines[sent] + "\n").encode()
            if sum(in_flight) + len(data) > fw.options.rx_buffer - 1:
                break
            fw.receive(data)
            in_flight.append(len(data))
            sent += 1
        fw.step(t)
        for reply in fw.take_output().decode().split("\r\n"):
            if reply == "ok" or reply.startswith("error"):
                if reply != "ok":
                    raise RuntimeError(f"line {answered + 1} {lines[answered]!r}: {reply}")
                in_flight.pop(0)
                answered += 1
        t += step
        if t > 24 * 3600:
            raise RuntimeError("the simulated run never ended")
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--line-ms", type=float, default=2.0, help="simulated CPU time per parsed line (AVR: ~2 ms)")
    parser.add_argument("--step-ms", type=float, default=1.0, help="simulation time step")
    parser.add_argument("--only", help="run one kind of program")
    args = parser.parse_args()
    machine = parse_config({"machines": {"bench": FACTORY_MACHINE}}, "bench").machines["bench"]
    print(f"{'program kind':28s} {'lines':>6s} {'simulated s':>12s} {'estimated s':>12s} {'error':>8s}")
    worst = 0.0
    for name, make in KINDS.items():
        if args.only and args.only != name:
            continue
        lines = HEADER + make() + FOOTER
        report = check_stream(io.BytesIO(("\n".join(lines) + "\n").encode()), "bench", machine, name)
        if not report.ok:
            raise SystemExit(f"{name}: the gate refuses the program: {report.errors[0].message}")
        started = time.perf_counter()
        simulated = simulate(lines, machine, args.line_ms / 1000.0, args.step_ms / 1000.0)
        cost = time.perf_counter() - started
        error = report.estimated_seconds / simulated - 1.0
        worst = max(worst, abs(error))
        print(f"{name:28s} {len(lines):6d} {simulated:12.3f} {report.estimated_seconds:12.3f} {100 * error:+7.2f}%"
              f"   ({cost:.1f} s to simulate)")
    print(f"worst error: {100 * worst:.2f}% (goal: 2%)")


if __name__ == "__main__":
    main()
