"""Streaming throughput into the GRBL simulator: character counting vs send-response vs grbl-streamer.

Generates a short-segment program (20,000 lines by default), streams it in GRBL's check
mode ($C: every line parsed, nothing moves, so the serial link is the bottleneck) into
a fresh simulator on a pty for each sender, and prints lines/s, link utilisation
(payload bytes sent per second over the emulated baud rate's byte rate, 10 bits per
byte) and the ratios. Runs once with the simulator's USB-latency option off and once
with it on (``--latency-ms``, default 16 ms like an FTDI adapter's latency timer).

Senders: labbridge's JobRunner with its character-counting window ("cc"), the same
runner in send-response mode ("sr"), and grbl-streamer from PyPI in its
character-counting mode (a sender we did not write).

    python bench/stream_speed.py [--lines 20000] [--latency-ms 16] [--latency-lines N] [--baud 115200]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labbridge.config import load_config  # noqa: E402
from labbridge.drivers.grbl import GrblDriver  # noqa: E402
from labbridge.sim.grbl.port import GrblSimulator  # noqa: E402
from labbridge.streaming.runner import JobRunner  # noqa: E402


@dataclass
class Result:
    sender: str
    lines: int
    seconds: float
    payload_bytes: int
    baud: int

    @property
    def lines_per_s(self) -> float:
        return self.lines / self.seconds

    @property
    def utilisation(self) -> float:
        return self.payload_bytes / self.seconds / (self.baud / 10.0)


def program(lines: int) -> list[str]:
    """Short segments on a spiral-ish path inside mill-1's G54 stock area (60 x 40 mm)."""
    out = ["G21 G90 G94 G17 G54", "M3 S8000", "G0 X30 Y20 Z2", "G1 Z-0.5 F800"]
    body = lines - len(out) - 1
    for i in range(body):
        a = i * 0.05
        r = 5 + (i % 400) * 0.03
        out.append(f"G1 X{30 + r * math.cos(a):.3f} Y{20 + 0.8 * r * math.sin(a):.3f}")
    out.append("M30")
    return out


def machine():
    return load_config(ROOT / "config" / "machines.yaml").machines["mill-1"].model_copy(
        update={"homing_required": False})


async def run_labbridge(path: Path, n: int, mode: str, baud: int, latency_ms: float) -> Result:
    m = machine()
    sim = GrblSimulator("mill-1", m, baud=baud, latency_ms=latency_ms)
    sim.start()
    driver = GrblDriver("mill-1", m, port=sim.port, baudrate=baud, reconnect=False)
    try:
        await driver.connect()
        runner = JobRunner(driver, "mill-1", m, None, user="bench", mode=mode)
        job = await runner.start(path, check_mode=True)
        job = await runner.wait()
        if job.lines_acked != n or job.state.value != "completed":
            raise SystemExit(f"{mode}: {job.state.value}: {job.message}")
        assert runner.engine is not None and job.ended_at and job.started_at
        return Result(f"labbridge {mode}", n, job.ended_at - job.started_at, runner.engine.bytes_sent, baud)
    finally:
        await driver.close()
        sim.close()


def run_grbl_streamer(lines: list[str], baud: int, latency_ms: float) -> Result:
    from grbl_streamer import GrblStreamer

    m = machine()
    sim = GrblSimulator("mill-1", m, baud=baud, latency_ms=latency_ms)
    sim.start()
    processed = 0
    written = 0
    settings = threading.Event()
    done = threading.Event()
    errors: list[object] = []

    def callback(event: str, *data: object) -> None:
        nonlocal processed, written
        if event == "on_read" and str(data[0]).startswith("$132="):
            settings.set()
        elif event == "on_write":
            written += len(str(data[0]))
        elif event == "on_processed_command":
            processed += 1
            if processed == len(lines):
                done.set()
        elif event in ("on_error", "on_alarm"):
            errors.append(data)
            done.set()

    streamer = GrblStreamer(callback)
    streamer.setup_logging()
    streamer.cnect(sim.port, baud)
    try:
        if not settings.wait(20):
            raise SystemExit("grbl-streamer did not connect")
        time.sleep(0.3)
        streamer.send_immediately("$C")  # check mode, like the other runs
        deadline = time.monotonic() + 10
        while sim.snapshot()["state"] != "Check":
            if time.monotonic() > deadline:
                raise SystemExit("grbl-streamer could not enter check mode")
            time.sleep(0.01)
        time.sleep(0.2)
        written = 0
        streamer.incremental_streaming = False  # its character-counting mode
        streamer.write("\n".join(lines))
        t0 = time.monotonic()
        streamer.job_run()
        if not done.wait(3600) or errors:
            raise SystemExit(f"grbl-streamer: {processed} of {len(lines)} lines; errors {errors}")
        return Result("grbl-streamer", len(lines), time.monotonic() - t0, written, baud)
    finally:
        streamer.disconnect()
        sim.close()


def report(title: str, results: list[Result]) -> None:
    print(f"\n{title}")
    print(f"  {'sender':<16} {'lines':>7} {'seconds':>8} {'lines/s':>9} {'link busy':>10}")
    for r in results:
        print(f"  {r.sender:<16} {r.lines:>7} {r.seconds:>8.2f} {r.lines_per_s:>9.1f} {100 * r.utilisation:>9.1f}%")
    cc = next(r for r in results if r.sender == "labbridge cc")
    for other in results:
        if other is not cc:
            print(f"  character counting vs {other.sender}: {cc.lines_per_s / other.lines_per_s:.2f}x lines/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=20000)
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--latency-ms", type=float, default=16.0)
    parser.add_argument("--latency-lines", type=int, default=None,
                        help="program length for the latency-on runs (default: --lines); send-response "
                             "needs about latency x lines there")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        for latency, n in ((0.0, args.lines), (args.latency_ms, args.latency_lines or args.lines)):
            if latency and args.skip_latency:
                continue
            lines = program(n)
            path = Path(tmp) / f"bench-{n}.nc"
            path.write_text("\n".join(lines) + "\n")
            results = [
                asyncio.run(run_labbridge(path, n, "cc", args.baud, latency)),
                asyncio.run(run_labbridge(path, n, "sr", args.baud, latency)),
                run_grbl_streamer(lines, args.baud, latency),
            ]
            report(f"{n} lines, {args.baud} baud, check mode, USB latency {'off' if not latency else f'{latency:g} ms'}",
                   results)


if __name__ == "__main__":
    main()
