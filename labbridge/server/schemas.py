"""The REST API's replies as pydantic models, so that ``/openapi.json`` documents every one of them.

Shapes the server owns (users, tokens, audit, programs, queue) are ``response_model``s: FastAPI checks each
reply against them. Shapes made elsewhere — MachineState (:mod:`labbridge.model`, also printed by ``labbridge
state --json``), the check report (``labbridge check --json``), job records, driver diagnostics — are
documented with :func:`documented` and sent exactly as their owner made them (no number is re-typed);
``tests/test_api_schemas.py`` holds the live replies to these models. Models of shapes owned elsewhere
allow extra fields, so that a field added there is documented late rather than dropped.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from labbridge.model import MachineStateJSON, model_of
from labbridge.streaming.job import Job


class Open(BaseModel):
    """A shape owned elsewhere: known fields documented, new ones passed on."""

    model_config = ConfigDict(extra="allow")


def documented(model: Any, description: str = "OK") -> dict[str, Any]:
    """Route options that document ``model`` as the 200 reply without re-validating what the route returns."""
    return {"response_model": None, "responses": {200: {"model": model, "description": description}}}


# machines ------------------------------------------------------------------------------------------------
class KeepOut(BaseModel):
    name: str
    min: dict[str, float]
    max: dict[str, float]


class MachineDescription(BaseModel):
    """A machine from the config, what its controller can do, and its live state."""

    id: str
    name: str
    controller: str
    axes: list[str]
    envelope: dict[str, list[float]] = Field(description="axis -> [min, max] in machine coordinates (mm)")
    keep_out: list[KeepOut]
    max_feed: float
    max_rpm: float
    simulated: bool
    capabilities: list[str] = Field(description="what the driver can do: feed_hold, cycle_start, home, jog, ...")
    job_running: bool
    queue_entry: int | None
    state: MachineStateJSON


class ConnectionInfo(Open):
    attempts: int
    connects: int
    disconnects: int
    last_error: str | None
    connected_since: float | None
    last_attempt: float | None
    link: dict[str, Any] | None = Field(description="the driver's link: serial port, status sources, ...")
    fault: str | None


class AlarmEntry(BaseModel):
    time: float
    code: str
    message: str
    source: str


class Diagnostics(Open):
    """What a technician needs to diagnose a machine remotely."""

    machine: str
    controller: str
    firmware: str | None
    driver: str | None
    simulated: bool
    build_info: dict[str, Any] | None = Field(description="firmware build (GRBL: $I version and options)")
    settings: dict[str, Any] | None
    settings_described: dict[str, dict[str, Any]] | None
    mismatches: list[str] | None = Field(description="where the controller's settings disagree with the config")
    parameters: dict[str, Any] | None
    connection: ConnectionInfo
    alarm_history: list[AlarmEntry]
    recent_events: list[dict[str, Any]]


class CommandReply(BaseModel):
    """What a machine command did."""

    machine: str
    action: str = Field(description="the command's name, as in the audit log")
    result: Any = Field(description="the command's answer: a sentence, or data (settings.read)")


# programs and checks -----------------------------------------------------------------------------------
class ProgramInfo(BaseModel):
    """A stored program, named by the SHA-256 of its bytes."""

    hash: str
    name: str
    size: int
    lines: int
    upload_id: int | None = None
    uploaded_by: str
    created_at: float


class ProgramText(ProgramInfo):
    text: str


class Diagnostic(Open):
    line: int
    severity: str = Field(description='"error" or "warning"')
    code: str = Field(description="stable code, e.g. envelope, feed-rate, arc-radius-mismatch")
    message: str


class CheckReport(Open):
    """The safety gate's report: the same object ``labbridge check --json`` prints."""

    program: str
    machine: str
    ok: bool
    lines: int
    bounds: dict[str, dict[str, float]] | None
    estimated_seconds: float
    diagnostics: list[Diagnostic]


class CheckResult(BaseModel):
    check_id: int
    hash: str
    machine: str
    report: CheckReport
    toolpath: str | None = Field(None, description="URL of the compact binary toolpath (preview: true); see "
                                 "GET /api/programs/{hash}/toolpath")


# queue and jobs ----------------------------------------------------------------------------------------
class TwinAlarm(Open):
    code: str
    message: str
    line: int | None = None


class Rehearsal(Open):
    """A dry run of a queued program on the machine's digital twin (the machine does not move)."""

    entry_id: int
    machine: str
    speed: int = Field(description="1, 4 or 16 times real time")
    started_by: str
    started_at: float
    finished_at: float | None
    outcome: str = Field(description="running, completed, failed, cancelled or interrupted")
    simulated_seconds: float | None = Field(description="the twin's own clock from first line to the end")
    estimated_seconds: float | None = Field(description="the safety gate's estimate, for comparison")
    alarms: list[TwinAlarm]
    job_id: str | None
    message: str


class DryRunStatus(Open):
    """A dry run going on (or just ended) on a machine's twin; also sent as websocket "dryrun" messages."""

    machine: str
    entry: int
    speed: int
    label: str = Field(description="DRY RUN — the machine does not move")
    program: str
    hash: str
    state: str = Field(description="running or finished")
    twin_state: str
    position: dict[str, float] | None
    line: int | None
    lines_acked: int
    lines_total: int
    job_state: str | None = Field(None, description="the twin's job: running, holding, completed, …")
    eta_seconds: float | None = Field(None, description="the twin's seconds left by the gate's estimate")
    result: dict[str, Any] | None


class DryRunCancelled(BaseModel):
    result: str


class QueueEntry(BaseModel):
    """A checked program waiting for (or run on) a machine."""

    id: int
    machine: str
    hash: str
    name: str
    check_id: int
    submitted_by: str
    submitted_at: float
    note: str
    state: str = Field(description="queued, running, removed, interrupted, or the job's outcome")
    started_by: str | None
    started_at: float | None
    finished_at: float | None
    job_id: str | None
    message: str
    rehearsal: Rehearsal | None = Field(None, description="the latest dry run on the machine's digital twin")


class Removed(BaseModel):
    removed: int


class JobStartReply(CommandReply):
    entry: QueueEntry


JobRecord = model_of(Job, "JobRecord", fraction=(float, Field(0.0, description="0..1")),
                     __config__=Open.model_config)
"""A job as the job store keeps it (GET /api/jobs)."""


class JobEvent(Open):
    time: float
    event: str


# users and audit ---------------------------------------------------------------------------------------
class Me(BaseModel):
    username: str
    role: str
    token_id: str
    permissions: list[str]
    scope: str = Field("full", description="full; password (may only change it); share (a view-only link)")


class UserInfo(BaseModel):
    username: str
    role: str
    disabled: bool
    created_at: float
    must_change_password: bool = False


class TokenInfo(BaseModel):
    id: str
    username: str
    created_at: float
    expires_at: float
    revoked_at: float | None
    last_used: float | None
    scope: str = "full"
    label: str = ""


class LoggedOut(BaseModel):
    revoked: str = Field(description="the id of the token that was used (and is now revoked)")


class TokenRevoked(BaseModel):
    revoked: str
    websockets_closed: int


class StatusMessage(BaseModel):
    status: str


class Deleted(BaseModel):
    deleted: str


class AuditEntry(BaseModel):
    id: int
    time: float
    username: str | None
    machine: str | None
    action: str
    outcome: str
    detail: str
    count: int = Field(1, description="repeats folded into this row (failed sign-ins: one row per source and minute)")


class Health(BaseModel):
    ok: bool


class ServerStats(Open):
    hub: dict[str, Any] = Field(description="websocket clients and how far behind each is")


# share links and storage (issue #13) ---------------------------------------------------------------


class ShareLink(BaseModel):
    """A new view-only link: the URL (token in its fragment) and its QR code, shown once."""

    id: str
    label: str
    url: str
    expires_at: float
    qr_svg: str = Field(description="the URL as a QR code, an SVG data: URI (drawn on the server, no internet)")
    note: str


class ShareInfo(BaseModel):
    id: str
    label: str
    created_at: float
    expires_at: float
    last_used: float | None


class StorageState(BaseModel):
    """Whether the data directory takes writes; records wait in memory while it does not."""

    ok: bool
    full: bool
    problem: str | None
    since: float | None
    pending: int = Field(description="records kept in memory, to be written when space returns")
    dropped: int = Field(description="audit records given up because memory filled (a long outage)")
    data_dir: str
    message: str | None
