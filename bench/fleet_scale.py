"""Fleet scale: N simulated labs x M machines publishing state at 2 Hz through one mosquitto into one
``labbridge fleet``.

Starts a mosquitto on a free 127.0.0.1 port (its own temp config, never a system service),
``labbridge fleet`` in a subprocess, and a worker process running N real lab links (``LabLink``
with its SQLite outbox, as inside ``labbridge serve``) whose machines' ``MachineState`` change at
``--hz`` (a moving position) and which also store an audit event every 5 s. This process signs in
to headquarters' websocket like a technician's browser and measures, for every ``fleet.state``
message, the time from the state change in the lab (``updated_at``, stamped by
``MachineState.update``) to its arrival here: lab link -> broker -> headquarters (validation,
memory, SQLite write-behind) -> websocket. Same host, same clock. Also samples the CPU of
headquarters, the broker and the labs' worker, and headquarters' peak RSS.

    .venv/bin/python bench/fleet_scale.py [--labs 50] [--machines 3] [--hz 2] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ws_fanout import cpu_seconds, first_sign_in, percentile  # noqa: E402
from tests.fleet_support import Broker  # noqa: E402  (the tests' own mosquitto launcher)
from tests.web_support import ServerProcess  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# the labs' worker ----------------------------------------------------------------------
async def run_labs(broker: str, labs: int, machines: int, hz: float, seconds: float, data: Path) -> None:
    from labbridge.config import FleetLink, LabIdentity
    from labbridge.fleet.link import LabLink
    from labbridge.fleet.outbox import Outbox
    from labbridge.fleet.requests import Answer
    from labbridge.model import MachineState, Status

    async def refuse(_machine: str, _request: Any) -> Answer:
        return Answer(False, error="a benchmark lab answers nothing", outcome="refused")

    cfg = FleetLink(broker=broker, keepalive=30, state_rate=max(2.0, hz))
    links, states, outboxes = [], [], []
    for n in range(labs):
        lab_states = {f"m{k}": MachineState(f"m{k}", connected=True, state=Status.RUN) for k in range(machines)}
        outbox = Outbox(data / f"lab-{n}.sqlite")
        link = LabLink(cfg, LabIdentity(id=f"bench-{n:03d}", name=f"bench lab {n}"), lab_states, outbox, refuse)
        await link.start()
        links.append(link)
        states += list(lab_states.values())
        outboxes.append(outbox)
    period = 1.0 / hz
    loop = asyncio.get_running_loop()
    start = loop.time()
    phases = [random.random() * period for _ in states]
    ticks = [0] * len(states)
    next_event = [start + random.random() * 5 for _ in outboxes]
    while loop.time() - start < seconds:
        now = loop.time()
        for i, state in enumerate(states):
            due = start + phases[i] + ticks[i] * period
            if now >= due:
                ticks[i] += 1
                t = ticks[i] * period
                state.update(position_machine={"X": round(-100 + 50 * math.sin(t), 3), "Y": round(-80 + 40 * math.cos(t), 3),
                                               "Z": -5.0}, feed=600.0 + ticks[i] % 7, spindle_rpm=8000.0)
        for i, outbox in enumerate(outboxes):
            if now >= next_event[i]:
                next_event[i] += 5.0
                outbox.append("audit", "m0", user="bench", action="bench.tick", outcome="ok", detail="")
        await asyncio.sleep(0.01)
    for link in links:
        await link.stop()


# the measuring side ---------------------------------------------------------------------
async def watch(url: str, token: str, seconds: float, warmup: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    received = 0
    async with connect(url.replace("http://", "ws://") + "/ws", max_size=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        start = time.time()
        while time.time() - start < warmup + seconds:
            try:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
            except asyncio.TimeoutError:
                continue
            now = time.time()
            if msg.get("type") == "ping":
                await ws.send('{"type":"pong"}')
            if msg.get("type") != "fleet.state" or now - start < warmup or msg["state"]["updated_at"] < start:
                continue  # warming up, or a state from before the run (a lab's first, retained message)
            received += 1
            latencies.append((now - msg["state"]["updated_at"]) * 1000)
    return latencies, received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labs", type=int, default=50)
    parser.add_argument("--machines", type=int, default=3)
    parser.add_argument("--hz", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--broker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(run_labs(args.broker, args.labs, args.machines, args.hz, args.seconds, Path(args.data)))
        return

    tmp = Path(tempfile.mkdtemp(prefix="labbridge-fleet-bench-"))
    broker = Broker(tmp / "broker")
    config = tmp / "hq.yaml"
    config.write_text(yaml.safe_dump({"fleet": {"broker": broker.url, "username": "hq"}}))
    hq = ServerProcess(["fleet", "--port", "0", "--config", str(config), "--data-dir", str(tmp / "hq"),
                        "--log-level", "warning"], cwd=ROOT)
    total = args.warmup + args.seconds
    (tmp / "labs").mkdir()
    worker = subprocess.Popen([sys.executable, __file__, "--worker", "--broker", broker.url, "--labs", str(args.labs),
                               "--machines", str(args.machines), "--hz", str(args.hz), "--seconds", str(total + 5),
                               "--data", str(tmp / "labs")], cwd=ROOT)
    try:
        token = first_sign_in(hq)
        pids = {"headquarters": hq.proc.pid, "mosquitto": broker.proc.pid, "labs worker": worker.pid}  # type: ignore[union-attr]

        def hq_received() -> int:
            return int(httpx.get(hq.url + "/api/fleet/link", headers={"Authorization": f"Bearer {token}"},
                                 timeout=30).json()["received"])

        async def measure() -> tuple[list[float], int, dict[str, float], float]:
            watcher = asyncio.create_task(watch(hq.url, token, args.seconds, args.warmup))
            await asyncio.sleep(args.warmup)
            counts.append(await asyncio.to_thread(hq_received))
            cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
            t0, peak = time.monotonic(), 0.0
            while not watcher.done():
                peak = max(peak, rss_mb(hq.proc.pid))
                await asyncio.sleep(1)
            elapsed = time.monotonic() - t0
            spent = {k: cpu_seconds(p) - cpu0[k] for k, p in pids.items()}
            counts.append(await asyncio.to_thread(hq_received))
            per_message.append(1e6 * spent["headquarters"] / max(1, counts[1] - counts[0]))
            cpu = {k: 100 * v / elapsed for k, v in spent.items()}
            latencies, received = await watcher
            return latencies, received, cpu, peak

        counts: list[int] = []
        per_message: list[float] = []
        latencies, received, cpu, peak = asyncio.run(measure())
        stats = httpx.get(hq.url + "/api/fleet/link", headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
    finally:
        worker.terminate()
        worker.wait(30)
        hq.stop()
        broker.stop()
    expected = args.labs * args.machines * args.hz * args.seconds
    result = {
        "labs": args.labs, "machines": args.labs * args.machines, "hz": args.hz, "seconds": args.seconds,
        "state_messages_received": received, "expected": int(expected),
        "latency_ms": {"p50": round(percentile(latencies, 50), 1), "p99": round(percentile(latencies, 99), 1),
                       "max": round(max(latencies, default=float("nan")), 1)},
        "cpu_percent": {k: round(v, 1) for k, v in cpu.items()}, "headquarters_peak_rss_mb": round(peak, 1),
        "headquarters_cpu_us_per_message": round(per_message[0]), "headquarters_rejected": stats.get("rejected"), "headquarters_state_lag_ms": stats.get("state_lag_ms"),
        "cores": os.cpu_count(), "load_average": os.getloadavg()[0],
    }
    print(f"fleet scale: {args.labs} labs x {args.machines} machines at {args.hz:g} Hz for {args.seconds:g} s "
          f"(after {args.warmup:g} s warm-up)")
    print(f"  state messages at the technician's websocket: {received} of {int(expected)} published "
          f"({100 * received / expected:.0f}%)")
    print(f"  end-to-end latency (lab state change -> headquarters websocket): p50 {result['latency_ms']['p50']} ms, "
          f"p99 {result['latency_ms']['p99']} ms, max {result['latency_ms']['max']} ms (goal: p99 < 500 ms)")
    print("  CPU (% of one core): " + ", ".join(f"{k} {v:.1f}" for k, v in result["cpu_percent"].items()))
    print(f"  headquarters: {per_message[0]:.0f} us of CPU per message ({counts[1] - counts[0]} messages in the "
          f"window), peak RSS {peak:.0f} MB, lag at arrival (its last 2000 states) {stats.get('state_lag_ms')}")
    print(f"  load average of this machine during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(other work shares them: latency above includes waiting for a core)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
