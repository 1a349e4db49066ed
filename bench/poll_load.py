"""One bridge process polling 10 Modbus machines at 4 Hz and subscribed to 10 OPC UA machines.

The servers run in a child process (so their CPU is not counted): 10 pymodbus TCP servers
and 10 asyncua servers on 127.0.0.1, each publishing the time a value was produced
(every 100 ms). The bridge process runs the real ModbusSource/OpcUaSource code and
samples, every 50 ms, the age of the newest value each machine has. Prints the bridge's
CPU share of one core and the staleness p50/p99 against the target (p99 < 2 poll periods,
CPU < 25 %).

    .venv/bin/python bench/poll_load.py [--seconds 20] [--machines 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from typing import Any

from labbridge.config import ModbusConnection, OpcUaConnection, RegisterField, load_config
from labbridge.model import MachineState

MODBUS_MAP: dict[str, dict[str, Any]] = {
    "line_number": {"table": "input", "address": 0, "type": "uint32"},  # produced-at, ms mod 1e9
    "spindle.rpm": {"table": "holding", "address": 0x2103, "scale": 0.6},
    "spindle.load": {"table": "holding", "address": 0x2104, "scale": 0.1},
    "position.machine.X": {"table": "input", "address": 100, "type": "int32", "scale": 0.001},
    "position.machine.Z": {"table": "input", "address": 102, "type": "int32", "scale": 0.001},
    "state": {"table": "holding", "address": 10, "values": {0: "Idle", 1: "Run", 2: "Hold", 3: "Alarm"}},
    "alarm": {"table": "holding", "address": 11},
    "door_open": {"table": "discrete", "address": 5},
}


def stamp() -> int:
    return int(time.time() * 1000) % 1_000_000_000


async def serve(count: int) -> None:
    """Child process: start the servers, print their endpoints, run until stdin closes."""
    from labbridge.sim.fanuc.control import SimControl
    from labbridge.sim.fanuc.opcua_server import OpcUaSimServer
    from labbridge.sim.modbus_server import RegisterServer

    fields = {k: RegisterField.model_validate(v) for k, v in MODBUS_MAP.items()}
    mill = load_config("config/machines.yaml").machine("mill-2")
    modbus, opcua, sims = [], [], []
    for i in range(count):
        server = RegisterServer(fields, provider=lambda: {"line_number": stamp(), "spindle.rpm": 1800.0,
                                                          "spindle.load": 30.0, "position.machine.X": 12.5,
                                                          "position.machine.Z": -30.0, "state": "Run",
                                                          "alarm": 0, "door_open": False})
        await server.start()
        modbus.append(server.url)
        sim = SimControl(f"mill-{i}", mill)
        ua = OpcUaSimServer(sim)
        await ua.start()
        opcua.append(ua.url)
        sims.append(sim)
    print(json.dumps({"modbus": modbus, "opcua": opcua}), flush=True)

    async def tick() -> None:
        while True:
            now = str(stamp())
            for sim in sims:
                sim.program_name = now
            await asyncio.sleep(0.1)

    ticker = asyncio.create_task(tick())
    await asyncio.to_thread(sys.stdin.read)
    ticker.cancel()


async def bridge(seconds: float, endpoints: dict[str, list[str]], poll_hz: float) -> dict[str, Any]:
    from labbridge.drivers.sources.modbus import ModbusSource
    from labbridge.drivers.sources.opcua import OpcUaSource

    sources: list[tuple[str, MachineState, Any]] = []
    for i, url in enumerate(endpoints["modbus"]):
        state = MachineState(f"lathe-{i}")
        conn = ModbusConnection(url=url, map=MODBUS_MAP, poll_hz=poll_hz)
        sources.append(("modbus", state, ModbusSource(state.machine, conn, state)))
    for i, url in enumerate(endpoints["opcua"]):
        state = MachineState(f"mill-{i}")
        sources.append(("opcua", state, OpcUaSource(state.machine, OpcUaConnection(url=url), state)))
    await asyncio.gather(*(src.start() for _, _, src in sources))
    await asyncio.sleep(1.0)  # settle
    ages: dict[str, list[float]] = {"modbus": [], "opcua": []}
    cpu0, wall0 = time.process_time(), time.monotonic()
    while time.monotonic() - wall0 < seconds:
        now = stamp()
        for kind, state, _ in sources:
            produced = state.line_number if kind == "modbus" else int(state.program_name or 0)
            if produced:
                ages[kind].append(((now - produced) % 1_000_000_000) / 1000.0)
        await asyncio.sleep(0.05)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    for _, _, src in sources:
        await src.stop()
    return {"cpu": cpu / wall, "ages": ages, "up": sum(1 for _, _, s in sources if s.up or s.last_update)}


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--machines", type=int, default=10)
    parser.add_argument("--poll-hz", type=float, default=4.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.machines))
        return
    child = subprocess.Popen([sys.executable, __file__, "--serve", "--machines", str(args.machines)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        endpoints = json.loads(child.stdout.readline())
        result = asyncio.run(bridge(args.seconds, endpoints, args.poll_hz))
    finally:
        if child.stdin:
            child.stdin.close()
        child.wait(timeout=30)
    period = 1.0 / args.poll_hz
    print(f"bridge: {args.machines} Modbus machines at {args.poll_hz:g} Hz + {args.machines} OPC UA machines, "
          f"{args.seconds:g} s")
    print(f"bridge CPU: {result['cpu'] * 100:.1f} % of one core (target < 25 %)")
    for kind, ages in result["ages"].items():
        if not ages:
            print(f"{kind}: no values received")
            continue
        p99 = p(ages, 99)
        print(f"{kind} staleness: p50 {p(ages, 50) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms "
              f"= {p99 / period:.2f} poll periods (target < 2), {len(ages)} samples")


if __name__ == "__main__":
    main()
