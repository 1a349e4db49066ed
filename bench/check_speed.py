"""Safety-gate throughput: check a generated 1,000,000-line program and compare with LinuxCNC's rs274.

Prints lines/s and peak RSS of `labbridge check` on the same file, and the ratio to LinuxCNC's C++
interpreter (`rs274` from Debian's linuxcnc-uspace) when it is installed. Targets: >= 250,000 lines/s,
< 100 MB RSS, at least twice rs274's speed.

    python bench/check_speed.py [--lines N] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def loop(k: int, clockwise: bool) -> list[str]:
    """A rounded rectangle (lines and quarter arcs), shifted a little each time so no two loops are equal."""
    d = (k % 97) * 0.01
    z = -1.0 + (k % 7) * 0.125
    x0, x1, y0, y1, r = 10 + d, 50 + d, 10 + d, 28 + d, 2.0
    if not clockwise:
        return [
            f"G1 X{x1:.3f} Y{y0:.3f} Z{z:.3f}",
            f"G3 X{x1 + r:.3f} Y{y0 + r:.3f} I0 J{r:.3f}",
            f"G1 Y{y1:.3f}",
            f"G3 X{x1:.3f} Y{y1 + r:.3f} I{-r:.3f} J0",
            f"G1 X{x0:.3f}",
            f"G3 X{x0 - r:.3f} Y{y1:.3f} I0 J{-r:.3f}",
            f"G1 Y{y0 + r:.3f}",
            f"G3 X{x0:.3f} Y{y0:.3f} I{r:.3f} J0",
        ]
    return [
        f"G1 X{x0 - r:.3f} Y{y0 + r:.3f} Z{z:.3f}",
        f"G1 Y{y1:.3f}",
        f"G2 X{x0:.3f} Y{y1 + r:.3f} I{r:.3f} J0",
        f"G1 X{x1:.3f}",
        f"G2 X{x1 + r:.3f} Y{y1:.3f} I0 J{-r:.3f}",
        f"G1 Y{y0 + r:.3f}",
        f"G2 X{x1:.3f} Y{y0:.3f} I{-r:.3f} J0",
        f"G1 X{x0:.3f}",
    ]


def generate(path: Path, lines: int, comments: bool = False) -> None:
    """The benchmark program; with ``comments`` every block carries a trailing comment, as some CAM output does."""
    with path.open("w") as fh:
        fh.write("G21 G90 G94 G17\nG10 L2 P2 X-150 Y-150 Z-48\nG54\nM3 S9000\nG0 X10 Y10 Z2\nG1 Z-1 F800\n")
        written, k = 6, 0
        while written < lines - 2:
            if k % 500 == 0:
                fh.write("G55\n" if (k // 500) % 2 else "G54\n")
                written += 1
            for block in loop(k, clockwise=bool(k % 2)):
                fh.write(block + (f" (pass {k})\n" if comments else "\n"))
            written += 8
            k += 1
        fh.write("G0 Z5\nM30\n")


MEASURE = """
import io, itertools, json, resource, sys, time
from labbridge.config import load_config
from labbridge.safety.program import check_stream
machine = load_config(sys.argv[2]).machines["mill-1"]
pure, limit = sys.argv[3] == "pure", int(sys.argv[4])
with open(sys.argv[1], "rb") as fh:
    source = io.BytesIO(b"".join(itertools.islice(fh, limit))) if limit else fh
    t0 = time.perf_counter()
    report = check_stream(source, "mill-1", machine, sys.argv[1], fast=not pure)
    elapsed = time.perf_counter() - t0
print(json.dumps({"seconds": elapsed, "lines": report.lines, "ok": report.ok,
                  "errors": report.error_count, "estimated_seconds": report.estimated_seconds,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_labbridge(program: Path, pure: bool = False, lines: int = 0) -> dict:
    args = [str(program), str(ROOT / "config" / "machines.yaml"), "pure" if pure else "fast", str(lines)]
    out = subprocess.run([sys.executable, "-c", MEASURE, *args], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout)


def run_rs274(program: Path) -> float | None:
    exe = shutil.which("rs274")
    if exe is None:
        return None
    t0 = time.perf_counter()
    subprocess.run([exe, "-g", str(program), os.devnull], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated program")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="labbridge-bench-"))
    program = tmp / "bench.ngc"
    generate(program, args.lines)
    size_mb = program.stat().st_size / 1e6
    print(f"program: {args.lines:,} lines, {size_mb:.1f} MB")
    ours = run_labbridge(program)
    rate = ours["lines"] / ours["seconds"]
    print(f"labbridge check: {ours['seconds']:.2f} s, {rate:,.0f} lines/s, peak RSS {ours['rss_mb']:.1f} MB, "
          f"ok={ours['ok']} errors={ours['errors']}, estimated run time {ours['estimated_seconds'] / 3600:.1f} h")
    print(f"  target >= 250,000 lines/s: {'met' if rate >= 250_000 else 'NOT met'}; "
          f"RSS < 100 MB: {'met' if ours['rss_mb'] < 100 else 'NOT met'}")
    theirs = run_rs274(program)
    if theirs is None:
        print("rs274 (LinuxCNC) not installed: apt-get install linuxcnc-uspace to compare")
    else:
        their_rate = args.lines / theirs
        print(f"rs274 (LinuxCNC C++): {theirs:.2f} s, {their_rate:,.0f} lines/s")
        print(f"ratio labbridge / rs274: {rate / their_rate:.2f}x (target >= 2x)")
    commented = tmp / "bench-comments.ngc"
    generate(commented, args.lines, comments=True)
    with_comments = run_labbridge(commented)
    print(f"same program with a comment on every block: {with_comments['lines'] / with_comments['seconds']:,.0f} "
          f"lines/s, peak RSS {with_comments['rss_mb']:.1f} MB")
    pure = run_labbridge(program, pure=True, lines=min(args.lines, 100_000))
    print(f"pure-Python interpreter (no C fast path), first {pure['lines']:,} lines: "
          f"{pure['lines'] / pure['seconds']:,.0f} lines/s")
    if args.keep:
        print(f"kept {program}")
    else:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
