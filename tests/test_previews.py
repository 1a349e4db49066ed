"""Preview builds: a few at a time, off the event loop, refused beyond the waiting limit, shared and cached; the
dry-run twin is given the real GRBL's settings and offsets when the machine is connected."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from labbridge.server.previews import PreviewBusy, PreviewService
from labbridge.server.twins import DryRun, DryRuns


async def test_builds_run_in_threads_two_at_a_time_and_the_rest_wait_or_are_refused() -> None:
    service = PreviewService(max_concurrent=2, max_waiting=3, cache_bytes=1000)
    running, peak, loop_thread = [0], [0], threading.get_ident()
    lock = threading.Lock()
    threads: set[int] = set()

    def build(n: int) -> bytes:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            threads.add(threading.get_ident())
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return bytes([n]) * 10

    tasks = [asyncio.create_task(service.get(("p", n), lambda n=n: build(n))) for n in range(5)]
    await asyncio.sleep(0.05)
    ticks = 0
    while not all(t.done() for t in tasks):  # the loop keeps turning while builds run
        ticks += 1
        await asyncio.sleep(0.01)
    results = [t.result() if not t.exception() else t.exception() for t in tasks]
    refused = [r for r in results if isinstance(r, PreviewBusy)]
    assert peak[0] == 2 and loop_thread not in threads and ticks > 20
    assert not refused  # 2 building, 3 waiting: all taken
    assert service.stats()["builds"] + service.refused == 5

    flood = [asyncio.create_task(service.get(("q", n), lambda n=n: build(n))) for n in range(8)]
    done = await asyncio.gather(*flood, return_exceptions=True)
    assert sum(isinstance(r, PreviewBusy) for r in done) == 3  # 2 building + 3 waiting; the other 3 refused


async def test_one_build_is_shared_and_cached_within_its_byte_budget() -> None:
    service = PreviewService(cache_bytes=25)
    calls = [0]

    def build() -> bytes:
        calls[0] += 1
        time.sleep(0.1)
        return b"x" * 10

    a, b = await asyncio.gather(service.get("k", build), service.get("k", build))
    assert a == b and calls[0] == 1
    assert await service.get("k", build) == a and calls[0] == 1  # cached
    await service.get("k2", build)
    await service.get("k3", build)  # 30 bytes > 25: the oldest goes
    assert service.stats()["cached_bytes"] <= 25 and calls[0] == 3
    await service.get("k", build)
    assert calls[0] == 4


async def test_twin_gets_the_real_controllers_settings_and_offsets(tmp_path: Any) -> None:
    from labbridge.config import load_config
    from tests.web_support import CONFIG_PATH

    machine = load_config(CONFIG_PATH).machines["mill-1"]
    from labbridge.drivers.grbl import GrblDriver

    real = GrblDriver("mill-1", machine)  # never connected: only its settings and parameters are read
    real.settings = {110: 1500.0, 120: 80.0}
    real.parameters = {"G54": (-230.0, -140.0, -47.5), "PRB": (1, 2, 3)}
    runtime = SimpleNamespace(config=machine, driver=real, sim=None, state=SimpleNamespace(connected=True))
    lab = SimpleNamespace(runtime=lambda _id: runtime, config=SimpleNamespace(machines={"mill-1": machine}))
    seen: dict[str, Any] = {}

    async def twins(twin_id: str, m: Any, **options: Any) -> Any:
        seen.update(options, twin_id=twin_id)
        raise RuntimeError("stop here")

    store = SimpleNamespace(db=SimpleNamespace(ensure_columns=lambda *a, **k: None, write=lambda *a, **k: None))
    runs = DryRuns(lab, store, SimpleNamespace(broadcast=lambda *a: None), twins)
    run = DryRun("mill-1", 1, 16, "trainer", "p.nc", "0" * 64, 10.0, 1)
    with pytest.raises(RuntimeError):
        await runs._start_twin(run)
    assert seen["twin_id"] == "mill-1/twin" and seen["time_scale"] == 16.0
    assert seen["settings"] == {110: 1500.0, 120: 80.0}
    assert seen["offsets"] == {"G54": (-230.0, -140.0, -47.5)}
