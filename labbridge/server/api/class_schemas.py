"""Class mode's replies as pydantic models, so that ``/openapi.json`` documents them (see server/schemas.py).

Shapes class mode owns are ``response_model``s; replies that carry the safety gate's report and preview are
documented only (``reply_of``), so the report is sent exactly as the gate made it, as ``check --json`` prints it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from labbridge.server.schemas import CheckReport, Diagnostic, QueueEntry


def reply_of(model: Any, status: int = 200, description: str = "OK") -> dict[str, Any]:
    """Route options that document ``model`` as the ``status`` reply without re-validating the reply."""
    return {"response_model": None, "responses": {status: {"model": model, "description": description}}}


class ClassInfo(BaseModel):
    """A class as its trainer sees it."""

    code: str = Field(description="6 characters, no look-alike letters; students type it or scan the QR code")
    url: str = Field(description="the join page, /join/<code>, at the address the trainer used")
    expires_at: float
    name: str
    machine: str
    minutes: int
    owner: str
    created_at: float
    closed_at: float | None
    state: str = Field(description="open, expired, closed, or purged (its submissions were deleted)")
    delete_after: float = Field(description="when the class's submissions are deleted (retention after it ends)")
    qr: str | None = Field(None, description="the join URL as a QR code: an SVG data URI made on the server")
    submissions: int | None = Field(None, description="how many attempts (in the list of classes)")


class StudentProgress(BaseModel):
    student: str
    attempts: int
    approved: int = Field(description="attempts of this student put into the queue")
    latest_id: int
    latest_time: float
    latest_ok: bool
    latest_errors: int


class CommonError(BaseModel):
    code: str = Field(description="a diagnostic code, e.g. envelope")
    attempts: int
    students: int


class ClassSummary(BaseModel):
    attempts: int
    students: list[StudentProgress]
    common_errors: list[CommonError] = Field(description="the codes most students met: what to explain next")


class ClassDetail(ClassInfo):
    summary: ClassSummary


class ClassClosed(BaseModel):
    code: str
    state: str
    closed_at: float | None
    delete_after: float


class PublicClass(BaseModel):
    """What a student's join page shows of an open class (no names, no programs)."""

    code: str
    name: str
    machine: str
    machine_name: str
    expires_at: float
    max_bytes: int


class Attempt(BaseModel):
    """One submission in the trainer's list: no program text."""

    id: int
    student: str
    time: float
    ok: bool
    errors: int
    warnings: int
    first_error: Diagnostic | None
    queue_entry: int | None = Field(description="the queue entry it was approved into, if it was")


class SubmissionReply(BaseModel):
    """A student's submission: its id and the gate's report (the ``check --json`` shape) with the preview."""

    id: int
    student: str
    time: float
    report: CheckReport
    toolpath: str = Field(description="the compact toolpath (labbridge.safety.toolpath), base64")


class AttemptDetail(Attempt):
    text: str
    report: CheckReport
    toolpath: str | None = Field(None, description="the compact toolpath, base64")


class Approval(BaseModel):
    entry: QueueEntry
    submission: Attempt


class Preferences(BaseModel):
    language: str | None = Field(description="en, lt, lv, et or de; null: follow the browser")
    languages: list[str]
