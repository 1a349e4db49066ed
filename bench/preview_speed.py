"""Toolpath previews of big programs: server build time and bytes, Chromium's first frame and orbiting frame rate.

Programs of 100k, 1M and 2M lines are generated as CAM output for a 3D surface is: a raster of G1 moves over a
wavy surface, rows joined by arcs and an arc every 50 moves. For each: the gate's check and the toolpath build
(server side, in a subprocess: seconds and peak RSS), the bytes sent, and in Debian's Chromium (WebGL 2 on
SwiftShader) the time from the response's arrival to the first frame and the frames per second while orbiting
(a path of more than 4,000 vertices is drawn from a sample of its segments while the view turns, in full
when it stops).
Then the server under load: eight 9.9 MB single-line uploads previewed at once, and eight 1M-line previews at once
(peak server RSS, wall time, and /api/health latency meanwhile). Goals (issue 12): 1M lines built in < 3 s,
< 8 MB sent, first frame < 2 s after arrival, >= 30 fps orbiting.

    python bench/preview_speed.py [--sizes 100000,1000000,2000000] [--skip-load]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--no-first-run", "--disable-dev-shm-usage"]


def generate(path: Path, lines: int) -> None:
    """A surface raster 100 mm wide, rows as many as the size asks, joined by arcs; an arc every 50 moves."""
    per_row = 1000
    rows = max(1, lines // (per_row + 1))
    dy = min(0.5, 100.0 / rows)
    with path.open("w") as fh:
        fh.write("G21 G90 G54\nM3 S9000\nG0 X0 Y0 Z2\nG1 Z-1 F1500\n")
        for r in range(rows):
            y = r * dy
            xs = [i * 0.1 for i in range(1, per_row + 1)]
            if r % 2:
                xs = [100.0 - x for x in xs]
            for i, x in enumerate(xs):
                z = -1.0 + 0.8 * math.sin(x / 7.0) * math.cos(y / 9.0)  # above the vise jaw (keep-out)
                if i % 50 == 49:
                    fh.write(f"G{2 + (i // 50) % 2} X{x:.3f} Y{y:.3f} Z{z:.3f} R1.\n")
                else:
                    fh.write(f"G1 X{x:.3f} Y{y:.3f} Z{z:.3f}\n")
            end_x = xs[-1]
            fh.write(f"G{3 if r % 2 == 0 else 2} X{end_x:.3f} Y{y + dy:.3f} R{dy / 2:.4f}\n")
        fh.write("G0 Z5\nM5\nM30\n")


BUILD = """
import json, resource, sys, time
from labbridge.config import load_config
from labbridge.safety.program import check_program
from labbridge.safety.toolpath import build_toolpath
machine = load_config(sys.argv[2]).machines["mill-1"]
t0 = time.perf_counter()
report = check_program(sys.argv[1], machine, machine_id="mill-1")
t1 = time.perf_counter()
tp = build_toolpath(sys.argv[1], "mill-1", machine, report.to_json()["bounds"])
data = tp.encode()
t2 = time.perf_counter()
print(json.dumps({"lines": report.lines, "ok": report.ok, "check_s": t1 - t0, "build_s": t2 - t1,
                  "bytes": len(data), "vertices": tp.vertices, "points_in": tp.stats["points_in"],
                  "tolerance": tp.header["tolerance"], "overdraw_removed": tp.stats.get("overdraw_removed"),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def server_build(program: Path) -> dict:  # type: ignore[type-arg]
    out = subprocess.run([sys.executable, "-c", BUILD, str(program), str(ROOT / "config" / "machines.yaml")],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


BROWSER_JS = """async ([url, token, orbitMs]) => {
  const { mountToolpath } = await import('/js/preview/three_view.js');
  const { decodeToolpath } = await import('/js/preview/toolpath.js');
  const res = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
  const buffer = await res.arrayBuffer();
  const arrived = performance.now();
  const box = document.createElement('div');
  box.style.cssText = 'width:1200px;height:800px;position:fixed;left:0;top:0;z-index:99;background:#fff';
  document.body.append(box);
  const view = mountToolpath(box, decodeToolpath(buffer));
  await new Promise((ok) => { const wait = () => (view.frames > 0 ? requestAnimationFrame(() => ok()) : requestAnimationFrame(wait)); wait(); });
  const firstFrame = performance.now() - arrived;
  const start = performance.now(), before = view.frames;
  await new Promise((ok) => {
    const spin = () => {
      view.controls.orbit(6, 0.5);
      view.controls.onChange();  // as a drag does: the view draws its sample of the path while it turns
      if (performance.now() - start < orbitMs) requestAnimationFrame(spin); else ok();
    };
    requestAnimationFrame(spin);
  });
  const fps = (view.frames - before) / ((performance.now() - start) / 1000);
  const vertices = view.tp.count;
  view.dispose(); box.remove();
  return { firstFrameMs: firstFrame, fps, vertices, bytes: buffer.byteLength };
}"""


def start_server(tmp: Path):  # type: ignore[no-untyped-def]
    import httpx

    from bench.ws_fanout import first_sign_in
    from tests.web_support import ServerProcess, write_lab_config

    config = write_lab_config(tmp / "machines.yaml")
    proc = ServerProcess(["serve", "--port", "0", "--config", str(config), "--data-dir", str(tmp / "data"),
                          "--max-upload-mb", "100", "--log-level", "warning"], cwd=ROOT)
    client = httpx.Client(base_url=proc.url, timeout=600)
    token = first_sign_in(proc)
    return proc, client, {"Authorization": f"Bearer {token}"}, token


def upload_and_check(client, auth, program: Path) -> str:  # type: ignore[no-untyped-def]
    with program.open("rb") as fh:
        r = client.post("/api/programs", headers=auth, files={"file": (program.name, fh, "text/plain")})
    r.raise_for_status()
    digest = r.json()["hash"]
    client.post(f"/api/programs/{digest}/check", headers=auth, json={"machine": "mill-1"}).raise_for_status()
    return str(digest)


def server_rss_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    get = lambda key: float(next(ln.split()[1] for ln in status.splitlines() if ln.startswith(key))) / 1024  # noqa: E731
    return get("VmRSS"), get("VmHWM")


def browser_figures(url: str, token: str, paths: list[str]) -> list[dict]:  # type: ignore[type-arg]
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        page = b.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900}).new_page()
        page.goto(url + "/")
        for p in paths:
            page.evaluate(BROWSER_JS, [p, token, 4000])  # warm: module load, shader compile
            out.append(page.evaluate(BROWSER_JS, [p, token, 4000]))
        b.close()
    return out


def load_test(client, auth, proc, tmp: Path, big: Path) -> None:  # type: ignore[no-untyped-def]
    """Eight single-line 9.9 MB uploads previewed at once; then eight different 1M-line programs at once."""
    huge = tmp / "one-line.nc"
    singles, bigs = [], []
    for k in range(8):
        huge.write_bytes(b"G1 X1 " * (9_900_000 // 6) + f"({k})\n".encode())
        singles.append(upload_and_check(client, auth, huge))
        variant = tmp / f"variant-{k}.nc"
        variant.write_bytes(big.read_bytes() + f"(variant {k})\n".encode())
        bigs.append(upload_and_check(client, auth, variant))
        variant.unlink()
    idle: list[float] = []
    for _ in range(100):
        t = time.perf_counter()
        client.get("/api/health")
        idle.append(time.perf_counter() - t)
        time.sleep(0.02)
    idle.sort()
    print(f"  idle server: /api/health p50 {statistics.median(idle) * 1000:.0f} ms p99 {idle[98] * 1000:.0f} ms")
    for label, jobs in (("8 x 9.9 MB single-line", singles), (f"8 x {big.stem} (8 programs)", bigs)):
        latencies: list[float] = []
        stop = threading.Event()

        def ping() -> None:
            import httpx

            with httpx.Client(base_url=proc.url, timeout=60) as c:
                while not stop.is_set():
                    t = time.perf_counter()
                    c.get("/api/health")
                    latencies.append(time.perf_counter() - t)
                    time.sleep(0.02)

        pinger = threading.Thread(target=ping)
        pinger.start()
        peak = [0.0]
        watching = threading.Event()

        def watch() -> None:
            while not watching.is_set():
                peak[0] = max(peak[0], server_rss_mb(proc.proc.pid)[0])
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        base = server_rss_mb(proc.proc.pid)[0]
        t0 = time.perf_counter()
        codes: list[int] = []

        def get(d: str) -> None:
            import httpx

            with httpx.Client(base_url=proc.url, timeout=600) as c:
                codes.append(c.get(f"/api/programs/{d}/toolpath?machine=mill-1", headers=auth).status_code)

        threads = [threading.Thread(target=get, args=(d,)) for d in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        stop.set(), watching.set()
        pinger.join(), watcher.join()
        lat = sorted(latencies)
        p99 = lat[int(len(lat) * 0.99) - 1] * 1000 if lat else float("nan")
        print(f"  {label}: {wall:.2f} s wall, replies {sorted(set(codes))}, server RSS {base:.0f} -> peak "
              f"{peak[0]:.0f} MB (+{peak[0] - base:.0f}), /api/health p50 {statistics.median(lat) * 1000:.0f} ms "
              f"p99 {p99:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000,2000000")
    ap.add_argument("--skip-load", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="labbridge-preview-") as d:
        tmp = Path(d)
        programs = {}
        for n in sizes:
            programs[n] = tmp / f"surface-{n}.nc"
            generate(programs[n], n)
        print("server side (check + toolpath build, one process each):")
        for n, p in programs.items():
            f = server_build(p)
            print(f"  {f['lines']:>9,} lines {p.stat().st_size / 1e6:6.1f} MB: check {f['check_s']:.2f} s, "
                  f"toolpath {f['build_s']:.2f} s, {f['bytes'] / 1e6:.2f} MB sent ({f['vertices']:,} of "
                  f"{f['points_in']:,} points, tolerance {f['tolerance']:.3f} mm), peak RSS {f['rss_mb']:.0f} MB")
        proc, client, auth, token = start_server(tmp)
        try:
            digests = {n: upload_and_check(client, auth, p) for n, p in programs.items()}
            urls = [f"/api/programs/{digests[n]}/toolpath?machine=mill-1" for n in sizes]
            for url in urls:
                client.get(url, headers=auth).raise_for_status()  # built and cached: the browser times arrival on
            print("Chromium (WebGL 2 on SwiftShader, 1200x800 view):")
            for n, fig in zip(sizes, browser_figures(proc.url, token, urls)):
                print(f"  {n:>9,} lines: {fig['bytes'] / 1e6:.2f} MB, {fig['vertices']:,} vertices, first frame "
                      f"{fig['firstFrameMs']:.0f} ms after arrival, orbiting {fig['fps']:.1f} fps")
            if not args.skip_load:
                print("server under load:")
                load_test(client, auth, proc, tmp, programs[min(sizes, key=lambda n: abs(n - 1_000_000))])
        finally:
            proc.stop()


if __name__ == "__main__":
    main()
