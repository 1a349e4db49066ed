"""How long an operator's HOLD takes to answer, whatever the other clients do.

Starts ``labbridge serve --demo`` (one simulated GRBL mill, status at 10 Hz) and
times ``POST /api/machines/mill-1/hold`` from an operator's own connection, in
three situations:

- 0 other clients;
- 200 idle dashboards: signed-in websockets subscribed to the mill, reading their
  state updates (in a separate process);
- 1 flooding client: a websocket that sends ``{"type": "ping"}`` as fast as it can
  and never reads (in a separate process; it was the one that delayed a HOLD to
  9.5 s before per-connection pacing).

Prints p50/p99/max of the round trip in milliseconds per situation. Goal: HOLD
answers within 100 ms in every one. Run: ``python bench/hold_latency.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ws_fanout import client_process, demo_mill_server, first_sign_in, percentile  # noqa: E402
from tests.web_support import password_of  # noqa: E402


def flood_process(url: str, token: str, conn: Any) -> None:
    """A websocket that pings as fast as it can and never reads what comes back."""

    async def run() -> None:
        sent = 0
        async with connect(url, max_queue=1, ping_interval=None, compression=None) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            await ws.send(json.dumps({"type": "subscribe", "machines": ["mill-1"]}))
            conn.send("connected")
            ping = '{"type":"ping"}'
            while not conn.poll():
                try:
                    await asyncio.wait_for(ws.send(ping), 0.5)
                    sent += 1
                except (TimeoutError, asyncio.TimeoutError):
                    pass  # the server is not reading us: exactly the point
                except Exception:
                    break
        conn.send(sent)

    asyncio.run(run())


async def time_holds(client: httpx.AsyncClient, auth: dict[str, str], count: int,
                     path: str = "/api/machines/mill-1/hold") -> list[float]:
    """``count`` HOLDs (or calls of ``path``), one every 50 ms; the round trip of each in ms."""
    for _ in range(2):  # the pooled connection may have been closed while idle (keep-alive timeout): reopen it
        try:
            await client.get("/api/health")
            break
        except httpx.RemoteProtocolError:
            continue
    times = []
    for _ in range(count):
        start = time.perf_counter()
        r = await (client.post(path, headers=auth) if path.endswith("/hold") else client.get(path, headers=auth))
        times.append((time.perf_counter() - start) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"hold failed: {r.status_code} {r.text}")
        await asyncio.sleep(0.05)
    return times


def row(name: str, ms: list[float]) -> str:
    return (f"{name:<24} n={len(ms):<4} p50 {percentile(ms, 50):7.1f} ms   p99 {percentile(ms, 99):7.1f} ms   "
            f"max {max(ms):7.1f} ms")


async def main(args: argparse.Namespace) -> int:
    server = demo_mill_server("hold-latency-")
    spawn = multiprocessing.get_context("spawn")
    rows = []
    try:
        admin = {"Authorization": f"Bearer {await asyncio.to_thread(first_sign_in, server)}"}
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            for user, role in (("op", "operator"), ("watcher", "viewer")):
                await client.post("/api/users", headers=admin,
                                  json={"username": user, "password": password_of(user), "role": role})
            op = (await client.post("/api/auth/login", json={"username": "op", "password": password_of("op")})).json()
            viewer = (await client.post("/api/auth/login", json={"username": "watcher",
                                                                 "password": password_of("watcher")})).json()
            auth = {"Authorization": f"Bearer {op['token']}"}
            ws_url = server.url.replace("http://", "ws://") + "/ws"
            while not (await client.get("/api/machines/mill-1", headers=auth)).json()["state"]["connected"]:
                await asyncio.sleep(0.2)
            await time_holds(client, auth, 5)  # warm up
            rows.append(row("0 other clients", await time_holds(client, auth, args.holds)))
            rows.append(row("  (GET /api/health)", await time_holds(client, auth, args.holds, "/api/health")))

            parent, child = spawn.Pipe()
            idle = spawn.Process(target=client_process, args=(ws_url, viewer["token"], args.idle, child), daemon=True)
            idle.start()
            if not await asyncio.to_thread(parent.poll, 120):
                raise SystemExit("idle clients did not connect")
            parent.recv()
            await asyncio.sleep(1.0)
            rows.append(row(f"{args.idle} idle clients", await time_holds(client, auth, args.holds)))
            parent.send("stop")
            await asyncio.to_thread(parent.recv)
            idle.join(10)

            fparent, fchild = spawn.Pipe()
            flood = spawn.Process(target=flood_process, args=(ws_url, viewer["token"], fchild), daemon=True)
            flood.start()
            if not await asyncio.to_thread(fparent.poll, 60):
                raise SystemExit("flooding client did not connect")
            fparent.recv()
            await asyncio.sleep(2.0)  # let it fill every buffer on the way
            rows.append(row("1 flooding client", await time_holds(client, auth, args.holds)))
            fparent.send("stop")
            sent = await asyncio.to_thread(lambda: fparent.recv() if fparent.poll(30) else -1)
            flood.join(10)
    finally:
        server.stop()
    print(f"HOLD round trip (REST, operator's own keep-alive connection), simulated GRBL mill at 10 Hz; "
          f"{os.cpu_count()} CPUs shared by server, simulator and clients; load average "
          f"{os.getloadavg()[0]:.1f} at the end (other work on this computer delays every request alike: "
          "compare with the health row, a request that does nothing)")
    for line in rows:
        print(line)
    print(f"(the flooding client got {sent} pings into its socket in that time; the server reads it at "
          "20 messages/s)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--holds", type=int, default=200, help="HOLDs timed per situation")
    parser.add_argument("--idle", type=int, default=200, help="idle websocket clients")
    sys.exit(asyncio.run(main(parser.parse_args())))
