"""A GRBL simulator on a real pty, the real driver and a job store, for the job-runner tests.

The simulator's wire input is recorded (every byte the firmware received, in
order), so a test can say exactly which program lines reached the controller.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labbridge.config import Machine, load_config
from labbridge.drivers.grbl import GrblDriver
from labbridge.protocols.grbl import REALTIME_BYTES, Status
from labbridge.sim.grbl.port import start_grbl_sim
from labbridge.streaming.runner import JobRunner
from labbridge.streaming.records import JobStore

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "machines.yaml"


def mill(**update: Any) -> Machine:
    """mill-1 from the shipped config, without the homing requirement unless asked."""
    base = load_config(CONFIG).machines["mill-1"]
    return base.model_copy(update={"homing_required": False, **update})


@dataclass
class Received:
    """Every byte the simulated firmware received, split into lines (realtime bytes set apart)."""

    data: bytearray = field(default_factory=bytearray)
    realtime: bytearray = field(default_factory=bytearray)

    def hook(self, receive: Callable[[bytes], None]) -> Callable[[bytes], None]:
        def recording(chunk: bytes) -> None:
            for b in chunk:
                (self.realtime if b in REALTIME_BYTES else self.data).append(b)
            receive(chunk)
        return recording

    def lines(self) -> list[str]:
        text = bytes(self.data).decode("ascii", "replace")
        return [ln.strip() for ln in text.split("\n")[:-1]]

    def program_lines(self) -> list[str]:
        """Lines that are not the driver's own ``$`` commands."""
        return [ln for ln in self.lines() if ln and not ln.startswith("$")]


@dataclass
class Rig:
    machine_id: str
    machine: Machine
    sim: Any
    driver: GrblDriver
    store: JobStore
    received: Received
    statuses: list[int] = field(default_factory=lambda: [0])

    async def reports(self, count: int = 3) -> None:
        """Wait until ``count`` more status reports have arrived (time passing, seen by the controller)."""
        target = self.statuses[0] + count
        await self.until(lambda: self.statuses[0] >= target, what=f"{count} status reports")

    def runner(self, user: str = "tester", **kw: Any) -> JobRunner:
        return JobRunner(self.driver, self.machine_id, self.machine, self.store, user=user, **kw)

    async def until(self, predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; machine {self.driver.state.state}, "
                                     f"sim {self.sim.snapshot()['state']}")
            await asyncio.sleep(0.02)


async def make_rig(tmp_path: Path, machine: Machine | None = None, sim_machine: Machine | None = None,
                   *, time_scale: float = 50.0, reconnect: bool = False, **sim_opts: Any) -> Rig:
    machine = machine or mill()
    sim = await start_grbl_sim("mill-1", sim_machine or machine, time_scale=time_scale, **sim_opts)
    received = Received()
    fw = sim.sim.firmware
    fw.receive = received.hook(fw.receive)  # type: ignore[method-assign]
    driver = GrblDriver("mill-1", machine, port=sim.port, reconnect=reconnect, poll_hz=10)
    await driver.connect()
    store = JobStore(tmp_path / "data")
    rig = Rig("mill-1", machine, sim, driver, store, received)

    def count(event: object) -> None:
        if isinstance(event, Status):
            rig.statuses[0] += 1

    driver.subscribe(count)
    return rig


async def close_rig(rig: Rig) -> None:
    await rig.driver.close()
    await rig.sim.close()
    rig.store.close()


def write_program(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def long_program(moves: int = 200, feed: int = 600, step: float = 5.0) -> list[str]:
    """Back-and-forth feed moves in the G54 stock area: long enough to hold, resume and cancel."""
    lines = ["G21 G90 G94 G17 G54", "G0 Z5", "M3 S8000", "G0 X0 Y0", "G1 Z-1 F200"]
    for i in range(moves):
        x = step if i % 2 == 0 else 0.0
        lines.append(f"G1 X{x:.3f} Y{(i % 20) * 0.5:.3f} F{feed}")
    lines += ["G0 Z5", "M5", "M30"]
    return lines
