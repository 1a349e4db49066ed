"""Toolpath previews for the dashboard: built off the event loop, a few at a time, kept while they are asked for.

A 1M-line program's toolpath takes a second or two of CPU and some tens of MB
while it is built. Builds run in worker threads, at most ``max_concurrent`` at
once; a few more may wait; beyond that the caller is told to come back (HTTP
503 with Retry-After) instead of queueing without bound. Finished previews are
cached by (program hash, machine, check) in a byte-bounded LRU, and two requests
for the same preview share one build.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

DEFAULT_CONCURRENT = 2
DEFAULT_WAITING = 6
DEFAULT_CACHE_BYTES = 48 * 1024 * 1024


class PreviewBusy(Exception):
    """Too many previews are being built; try again in a few seconds."""


class PreviewService:
    """Runs preview builds in threads with a concurrency limit, a waiting limit and an LRU of results."""

    def __init__(self, max_concurrent: int = DEFAULT_CONCURRENT, max_waiting: int = DEFAULT_WAITING,
                 cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_concurrent = max_concurrent
        self.max_waiting = max_waiting
        self.cache_bytes = cache_bytes
        self._slots: asyncio.Semaphore | None = None
        self._waiting = 0
        self._running = 0
        self._cache: OrderedDict[Hashable, bytes] = OrderedDict()
        self._cached_bytes = 0
        self._inflight: dict[Hashable, asyncio.Future[bytes]] = {}
        self.builds = 0
        self.refused = 0
        self.peak_running = 0

    async def get(self, key: Hashable, build: Callable[[], bytes]) -> bytes:
        """The preview for ``key``: cached, shared with a build in progress, or built now (in a thread)."""
        data = self._cache.get(key)
        if data is not None:
            self._cache.move_to_end(key)
            return data
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        if self._waiting >= self.max_waiting:
            self.refused += 1
            raise PreviewBusy(f"{self._running} previews are being built and {self._waiting} wait; try again shortly")
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            data = await self._build(build)
        except BaseException as exc:
            if not future.done():
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                    future.exception()  # retrieved: a build nobody else awaited must not warn
                else:
                    future.cancel()
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(data)
        self._remember(key, data)
        return data

    async def _build(self, build: Callable[[], bytes]) -> bytes:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_concurrent)
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        self._running += 1
        self.peak_running = max(self.peak_running, self._running)
        try:
            self.builds += 1
            return await asyncio.to_thread(build)
        finally:
            self._running -= 1
            self._slots.release()

    def _remember(self, key: Hashable, data: bytes) -> None:
        if len(data) > self.cache_bytes:
            return
        self._cache[key] = data
        self._cached_bytes += len(data)
        while self._cached_bytes > self.cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= len(old)

    def stats(self) -> dict[str, Any]:
        return {"running": self._running, "waiting": self._waiting, "cached": len(self._cache),
                "cached_bytes": self._cached_bytes, "builds": self.builds, "refused": self.refused,
                "peak_running": self.peak_running, "max_concurrent": self.max_concurrent}
