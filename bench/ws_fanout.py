"""Websocket fan-out: N dashboard clients watching one simulated GRBL machine polled at 10 Hz.

Starts ``labbridge serve --demo`` (mill-1 only, GRBL simulator on a pty, status
polled 10 times a second) in a subprocess, keeps the machine jogging so that every
status report changes the state, connects N websocket clients (default 200) from
this process and measures, for every ``state`` message, the time from the state
change in the server (``changes.updated_at``, stamped by ``MachineState.update``)
to its receipt here. Same host, same clock. Also samples the server process's CPU.

Phase 1: all clients read normally. Phase 2: one more client connects and stops
reading (small receive buffer, never calls recv); the others' latency is measured
again, and the hub's own view of the stalled client is printed. Within a 15 s stall
the kernel's socket buffers still take its few kilobytes, so the server's send to
it has not blocked yet; the hub's behaviour once it does (one merged pending update,
then a drop after the send timeout) is exercised by tests/test_hub.py.

    .venv/bin/python bench/ws_fanout.py [--clients 200] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
from collections import Counter
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.web_support import (  # noqa: E402  (as the browser tests)
    ServerProcess, admin_first_sign_in, password_of, write_lab_config,
)


def demo_mill_server(prefix: str) -> ServerProcess:
    """``labbridge serve --demo`` with the simulated mill-1 alone, polled at 10 Hz, in a fresh folder."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    config = write_lab_config(tmp / "machines.yaml", unreachable=False)
    return ServerProcess(["serve", "--demo", "--port", "0", "--config", str(config), "--data-dir", str(tmp / "data"),
                          "--poll-hz", "10", "--log-level", "error"], cwd=ROOT)


def first_sign_in(server: ServerProcess) -> str:
    """The admin's token after choosing a password at the one-time password's first sign-in."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        return admin_first_sign_in(client, server.password)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


class Watcher:
    """One dashboard-like client: auth, subscribe, record (receipt time, latency, hub delay) of state messages."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.samples: list[tuple[float, float, float]] = []
        self.closed: str | None = None

    async def run(self, connected: list[int]) -> None:
        try:
            async with connect(self.url, max_size=2**22, ping_interval=None) as ws:
                await ws.send(json.dumps({"type": "auth", "token": self.token}))
                await ws.send(json.dumps({"type": "subscribe", "machines": ["mill-1"]}))
                connected[0] += 1
                async for raw in ws:
                    now = time.time()
                    msg = json.loads(raw)
                    kind = msg.get("type")
                    if kind == "state" and "updated_at" in msg["changes"]:
                        changed = msg["changes"]["updated_at"]
                        self.samples.append((now, now - changed, msg["sent"] - changed))
                    elif kind == "ping":
                        await ws.send('{"type":"pong"}')
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # report, do not crash the bench
            self.closed = f"{type(exc).__name__}: {exc}"


def client_process(url: str, token: str, count: int, conn: Any) -> None:
    """A worker process holding ``count`` clients; runs until told to stop, then sends back its samples."""

    async def run() -> None:
        watchers = [Watcher(url, token) for _ in range(count)]
        connected = [0]
        tasks = []
        for i, w in enumerate(watchers):
            tasks.append(asyncio.create_task(w.run(connected)))
            if i % 20 == 19:
                await asyncio.sleep(0.05)
        while connected[0] < count:
            await asyncio.sleep(0.05)
        conn.send("connected")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # "stop"
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        conn.send(([w.samples for w in watchers], [w.closed for w in watchers if w.closed]))

    asyncio.run(run())


async def stalled_client(url: str, token: str) -> Any:
    """A client that signs in, subscribes and then never reads again (tiny receive buffer)."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    ws = await connect(url, sock=sock, max_queue=1, ping_interval=None, compression=None).__aenter__()
    await ws.send(json.dumps({"type": "auth", "token": token}))
    await ws.send(json.dumps({"type": "subscribe", "machines": ["mill-1"]}))
    return ws  # never read from again


async def keep_moving(client: httpx.AsyncClient, auth: dict[str, str], stop: asyncio.Event) -> None:
    """Jog back and forth so that every 10 Hz status report carries a new position."""
    direction = -1
    while not stop.is_set():
        st = (await client.get("/api/machines/mill-1", headers=auth)).json()["state"]
        if st["state"] == "Idle":
            await client.post("/api/machines/mill-1/jog", headers=auth,
                              json={"x": direction * 100.0, "feed": 400, "relative": True})
            direction = -direction
        await asyncio.sleep(0.2)


def summarize(per_client: list[list[tuple[float, float, float]]], window: tuple[float, float],
              cpu: float) -> dict[str, Any]:
    t0, t1 = window
    picked = [[x for x in samples if t0 <= x[0] < t1] for samples in per_client]
    lat = [x[1] for samples in picked for x in samples]
    hub = [x[2] for samples in picked for x in samples]
    return {
        "samples": len(lat),
        "p50_ms": percentile(lat, 50) * 1000,
        "p90_ms": percentile(lat, 90) * 1000,
        "p95_ms": percentile(lat, 95) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "max_ms": max(lat) * 1000 if lat else float("nan"),
        "updates_per_s_per_client": statistics.mean(len(s) for s in picked) / (t1 - t0),
        "server_cpu_percent": 100 * cpu / (t1 - t0),
        "hub_p50_ms": percentile(hub, 50) * 1000,
        "hub_p99_ms": percentile(hub, 99) * 1000,
    }


async def measure(seconds: float, pid: int) -> tuple[tuple[float, float], float]:
    cpu0, t0 = cpu_seconds(pid), time.time()
    await asyncio.sleep(seconds)
    return (t0, time.time()), cpu_seconds(pid) - cpu0


def show(name: str, r: dict[str, Any]) -> None:
    print(f"{name}: {r['samples']} state messages, p50 {r['p50_ms']:.1f} ms, p90 {r['p90_ms']:.1f} ms, "
          f"p95 {r['p95_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
          f"max {r['max_ms']:.1f} ms, {r['updates_per_s_per_client']:.1f} updates/s per client, "
          f"server CPU {r['server_cpu_percent']:.0f}% of one core\n"
          f"    of which state change -> hub flush (rate limit): p50 {r['hub_p50_ms']:.1f} ms, "
          f"p99 {r['hub_p99_ms']:.1f} ms; the rest is fan-out, the socket and this process's own receive queue")


async def main(args: argparse.Namespace) -> int:
    server = demo_mill_server("ws-fanout-")
    pid = server.proc.pid
    stop = asyncio.Event()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            token = await asyncio.to_thread(first_sign_in, server)
            auth = {"Authorization": f"Bearer {token}"}
            deadline = time.monotonic() + 60
            while True:
                st = (await client.get("/api/machines/mill-1", headers=auth)).json()["state"]
                if st["connected"] and st["state"] in ("Idle", "Alarm"):
                    break
                if time.monotonic() > deadline:
                    print("mill-1 simulator did not connect", file=sys.stderr)
                    return 1
                await asyncio.sleep(0.2)
            if st["state"] == "Alarm":
                await client.post("/api/machines/mill-1/home", headers=auth)
            mover = asyncio.create_task(keep_moving(client, auth, stop))
            ws_url = server.url.replace("http://", "ws://") + "/ws"
            ctx = multiprocessing.get_context("spawn")
            workers = []
            share = [args.clients // args.procs + (1 if i < args.clients % args.procs else 0) for i in range(args.procs)]
            for n in share:
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=client_process, args=(ws_url, token, n, child), daemon=True)
                proc.start()
                workers.append((proc, parent))
            loop = asyncio.get_running_loop()
            for _, pipe in workers:
                if not await loop.run_in_executor(None, pipe.poll, 120):
                    print("client processes did not connect within 120 s", file=sys.stderr)
                    return 1
                pipe.recv()
            await asyncio.sleep(2.0)  # snapshots delivered, machine moving
            print(f"{args.clients} websocket clients in {args.procs} processes on mill-1 (simulated GRBL 1.1h, "
                  f"status polled at 10 Hz); {os.cpu_count()} CPUs shared by server, simulator and clients")
            window1, cpu1 = await measure(args.seconds, pid)
            await client.post("/api/users", headers=auth,
                              json={"username": "stalled", "password": password_of("stalled"), "role": "viewer"})
            stalled_token = (await client.post("/api/auth/login", json={"username": "stalled",
                                                                        "password": password_of("stalled")}))
            stalled = await stalled_client(ws_url, stalled_token.json()["token"])
            await asyncio.sleep(1.0)
            window2, cpu2 = await measure(args.seconds, pid)
            stats = (await client.get("/api/server/stats", headers=auth)).json()["hub"]
            for _, pipe in workers:
                pipe.send("stop")
            per_client: list[list[tuple[float, float, float]]] = []
            closed: list[str] = []
            for proc, pipe in workers:
                samples, errors = await loop.run_in_executor(None, pipe.recv)
                per_client += samples
                closed += errors
                proc.join(10)
            if args.show_slow:
                slow_s = [(round(x[0] - x[1], 2), i // (args.clients // args.procs), round(x[1] * 1000))
                          for i, samples in enumerate(per_client) for x in samples if x[1] > 0.05]
                print("messages over 50 ms, by state-change time:", Counter(t for t, _, _ in slow_s).most_common(8))
                print("... by client process:", Counter(p for _, p, _ in slow_s))
            first = summarize(per_client, window1, cpu1)
            second = summarize(per_client, window2, cpu2)
            show("all clients reading", first)
            show("one client stalled ", second)
            slow = [c for c in stats["per_client"] if c["user"] == "stalled"]
            if slow:
                print(f"hub: {stats['clients']} clients, {stats['flushes']} flushes; the stalled client is still "
                      f"connected: sent {slow[0]['sent']}, coalesced {slow[0]['coalesced']} updates into "
                      f"{slow[0]['pending']} pending, {slow[0]['events_queued']} events queued")
            else:
                print(f"hub: {stats['clients']} clients, {stats['flushes']} flushes; the stalled client was dropped "
                      f"(its send blocked for longer than the hub's send timeout)")
            if closed:
                print(f"{len(closed)} clients closed unexpectedly, e.g. {closed[0]}")
            ratio = second["p99_ms"] / first["p99_ms"] if first["p99_ms"] else float("nan")
            print(f"p99 with a stalled client / without: {ratio:.2f}; target p99 < 50 ms: "
                  f"{'met' if max(first['p99_ms'], second['p99_ms']) < 50 else 'NOT met'}")
            stop.set()
            mover.cancel()
            await stalled.close()
            return 0
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--show-slow", action="store_true", help="group messages over 50 ms by time and process")
    parser.add_argument("--procs", type=int, default=4, help="client processes (one Python process cannot "
                        "read 2000 messages/s without queueing them itself)")
    sys.exit(asyncio.run(main(parser.parse_args())))
