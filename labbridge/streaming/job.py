"""The job record: what was sent to which machine, by whom, and how it ended.

One record per start of a program on a machine. It names the exact bytes that
were checked (SHA-256), counts lines sent and acknowledged, and, when a job does
not complete, says why in the controller's own words plus their meaning and the
program line they refer to. The CLI and the web server read the same records.

GRBL jobs (streamed line by line) and DNC jobs (a tape the control reads at its
own pace) share this record and these state words; ``protocol`` says which. For a
DNC tape "acknowledged" means read by the control: the tape has no ``ok``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class JobState(Enum):
    """Where a job is in its life; the last four are final. The one vocabulary of every job, queue entry
    and dashboard message: a job ends ``completed``, ``failed``, ``cancelled`` or ``interrupted``."""

    QUEUED = "queued"
    CHECKING = "checking"
    RUNNING = "running"
    HOLDING = "holding"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def final(self) -> bool:
        return self in FINAL_STATES

    def __str__(self) -> str:
        return self.value


FINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED})
ACTIVE_STATES = frozenset({JobState.CHECKING, JobState.RUNNING, JobState.HOLDING})


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class Job:
    """One program run on one machine (see the module notes)."""

    id: str
    machine: str
    program_path: str
    program_name: str
    program_sha256: str
    user: str | None = None
    state: JobState = JobState.QUEUED
    check_mode: bool = False
    from_line: int | None = None
    lines_total: int = 0
    lines_sent: int = 0
    lines_acked: int = 0
    last_acked_line: int | None = None  # program line number of the last line answered ok
    error_code: str | None = None  # the controller's words: "error:22", "ALARM:2"
    error_message: str | None = None  # their meaning, or why labbridge stopped
    error_line: int | None = None  # program line the error refers to
    error_block: str | None = None  # that line as sent
    message: str = ""  # one-line human summary of the outcome
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    ended_at: float | None = None
    estimated_seconds: float | None = None
    eta_seconds: float | None = None
    protocol: str = "grbl"  # "grbl": streamed line by line; "dnc": sent as a tape
    last_sent_line: int | None = None  # program line of the last line written to the controller
    executed_line: int | None = None  # program line the machine really reached (its position, or Ln:)
    owner: str | None = None  # the process running the job: "pid:start-ticks@host" (see streaming.recovery)
    updated_at: float | None = None  # last time the record was written (a heartbeat while the job runs)

    @property
    def job_id(self) -> str:
        return self.id

    @property
    def fraction(self) -> float:
        return self.lines_acked / self.lines_total if self.lines_total else 0.0

    @property
    def ok(self) -> bool:
        return self.state == JobState.COMPLETED

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        data["fraction"] = self.fraction
        return data

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        data = {k: row[k] for k in cls.__dataclass_fields__ if k in row}
        data["state"] = JobState(data["state"])
        data["check_mode"] = bool(data.get("check_mode"))
        return cls(**data)
