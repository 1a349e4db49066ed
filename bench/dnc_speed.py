"""DNC drip-feed throughput over a pty against the simulated lathe control.

Prints blocks/s and the ratio of achieved characters per second to what the serial
line could carry (baud / bits per character), with a control fast enough never to
pause and with one whose small buffer makes it send DC3/DC1 all the time.

    .venv/bin/python bench/dnc_speed.py [--blocks 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from labbridge.config import load_config
from labbridge.streaming.dnc_transfer import stream_dnc
from labbridge.sim.fanuc.launch import start_fanuc_sim


async def run(blocks: int, baud: int, buffer_bytes: int, time_scale: float) -> None:
    lathe = load_config("config/machines.yaml").machine("lathe-1")
    lines = ["O0001", "G21 G18 G99", "G97 S500 M3", "G0 X60 Z2"]
    lines += [f"G1 X{40 + (i % 20)}.5 Z-{1 + i % 30}.25 F0.2" for i in range(blocks)] + ["M5", "M30"]
    with tempfile.TemporaryDirectory() as tmp:
        program = Path(tmp) / "bench.nc"
        program.write_text("%\n" + "\n".join(lines) + "\n%\n")
        async with await start_fanuc_sim("lathe-1", lathe, time_scale=time_scale, buffer_bytes=buffer_bytes,
                                         modbus=False) as sim:
            dnc = sim.machine.connection.dnc.model_copy(update={"baudrate": baud})  # type: ignore[union-attr]
            machine = sim.machine.model_copy(update={"connection": sim.machine.connection.model_copy(
                update={"dnc": dnc})})
            started = time.monotonic()
            result = await stream_dnc("lathe-1", machine, program)
            seconds = time.monotonic() - started
    bits = 1 + dnc.bytesize + (0 if dnc.parity == "N" else 1) + dnc.stopbits
    capacity = baud / bits
    print(f"{baud:>6} baud, control buffer {buffer_bytes:>5} B: {result.blocks_sent} blocks in {seconds:.2f} s = "
          f"{result.blocks_sent / seconds:.0f} blocks/s, {result.bytes_sent / seconds:.0f} chars/s = "
          f"{result.bytes_sent / seconds / capacity:.2f} of line capacity, {result.pauses} DC3 pauses")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=1500)
    args = parser.parse_args()
    for baud in (9600, 38400):
        asyncio.run(run(args.blocks, baud, 1 << 20, 1e6))
    asyncio.run(run(min(args.blocks, 60), 9600, 256, 3))  # the control machines slower than the line: DC3/DC1


if __name__ == "__main__":
    main()
