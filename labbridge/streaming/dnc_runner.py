"""Jobs on Fanuc-style machines: the checked program goes out as a DNC tape, progress goes to MachineState.

The control reads the tape at its own pace (DC1/DC3), so a job here is the tape
transfer: ``hold`` asks the control to feed-hold through whatever stop action its
Modbus map declares, ``cancel`` stops the tape (the control then runs out of
blocks; the operator resets it at the panel, which the message says). It offers
the same ``start/wait/hold/resume/cancel`` surface as the GRBL job runner so the
lab and the dashboard treat both alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import time
from pathlib import Path
from typing import Any

from labbridge.errors import LabbridgeError
from labbridge.log import get_logger
from labbridge.model import JobProgress
from labbridge.safety.lexer import split_lines


@dataclasses.dataclass
class DncJob:
    id: str
    state: str = "running"
    message: str = ""


class DncRunner:
    def __init__(self, driver: Any, machine_id: str, user: str | None = None) -> None:
        self.driver = driver
        self.machine_id = machine_id
        self.user = user
        self.job: DncJob | None = None
        self._task: asyncio.Task[None] | None = None
        self.log = get_logger(machine=machine_id, user=user)

    @property
    def state(self) -> Any:
        return self.driver.state

    async def start(self, program_path: str | Path, *, program_name: str | None = None) -> DncJob:
        path = Path(program_path)
        lines = sum(1 for line in split_lines(path.read_text(encoding="utf-8")) if line.strip())
        self.job = DncJob(f"dnc-{secrets.token_hex(4)}")
        self.log = get_logger(machine=self.machine_id, job=self.job.id, user=self.user)
        self.state.update(program_name=program_name or path.name, job=JobProgress(
            self.job.id, program_name or path.name, "running", lines_total=lines, started_at=time.time(),
            message="waiting for the control to read the tape (press cycle start in tape mode)"))
        self.log.info("dnc job started", program=program_name or path.name, lines=lines)
        self._task = asyncio.get_running_loop().create_task(self._run(path), name=f"dnc-{self.machine_id}")
        return self.job

    def _progress(self, p: Any) -> None:
        current = self.state.job
        if current is None or self.job is None or current.job_id != self.job.id:
            return
        self.state.update(job=dataclasses.replace(
            current, lines_acked=p.lines_acked, lines_total=p.lines_total or current.lines_total,
            line_number=p.line_number, message=p.state))

    async def _run(self, path: Path) -> None:
        assert self.job is not None
        try:
            result = await self.driver.stream(path, on_progress=self._progress)
            self.job.state = "completed"
            self.job.message = f"tape sent: {result.blocks_sent} blocks in {result.seconds:.0f} s"
        except asyncio.CancelledError:
            self.job.state = "cancelled"
            self.job.message = "tape stopped; reset the control at its panel before the next job"
        except LabbridgeError as exc:
            self.job.state = "failed"
            self.job.message = str(exc)
        finally:
            current = self.state.job
            if current is not None and current.job_id == self.job.id:
                self.state.update(job=dataclasses.replace(current, state=self.job.state, message=self.job.message))
            self.log.info("dnc job ended", outcome=self.job.state, detail=self.job.message)

    async def wait(self) -> DncJob:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._task)
        assert self.job is not None
        return self.job

    async def hold(self) -> None:
        await self.driver.feed_hold()

    async def resume(self) -> None:
        raise LabbridgeError(f"{self.machine_id}: resume a Fanuc-style control with cycle start on its panel")

    async def cancel(self) -> DncJob | None:
        if self._task is not None and not self._task.done():
            with contextlib.suppress(LabbridgeError):
                await self.driver.feed_hold()
            self._task.cancel()
        return await self.wait() if self.job else None
