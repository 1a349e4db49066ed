"""Class mode over HTTP: trainers open classes, students submit by code, trainers approve into the queue.

- ``POST /api/classes`` (trainer) → 201 ``{"code", "url", "expires_at", ...}`` with a QR code of the join URL
  (an SVG made here by segno: the lab is offline).
- ``/join/<code>``: the students' page (no account).
- ``POST /api/classes/<code>/submissions`` (no sign-in) ``{"student", "text"}`` → 201 with the check report
  (the ``check --json`` shape), the toolpath preview and the submission ``id``. Unknown, closed or expired
  code → 404; programs over 256 KB → 413; over 60 a minute per class or 6 per client → 429 with Retry-After.
- ``GET /api/classes/<code>/submissions`` (the class's trainer or an admin): every attempt.
- ``POST /api/classes/<code>/submissions/<id>/approve`` (the trainer): a passing attempt into the queue, the
  student's name as its note. ``DELETE /api/classes/<code>`` closes the class.

The trainer's dashboard hears each submission over the websocket (``{"type": "class", ...}``, sent only to
the class's trainer and the admins). Submissions are deleted ``class_retention_days`` after the class ends.
"""

from __future__ import annotations

import base64

import asyncio
import math
import re
import time
from pathlib import Path
from typing import Any

import segno
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labbridge.i18n import _, ngettext
from labbridge.log import get_logger
from labbridge.server.api.class_schemas import (
    Approval, Attempt, AttemptDetail, ClassClosed, ClassDetail, ClassInfo, PublicClass, SubmissionReply, reply_of,
)
from labbridge.server.api.deps import Context, get_ctx, known_machine, require
from labbridge.server.api.programs import check_and_store, validate_program
from labbridge.server.auth import Action, Principal, Role
from labbridge.server.classes import (
    MAX_MINUTES, MAX_PROGRAM_BYTES, MIN_MINUTES, PER_CLIENT_PER_MINUTE, PER_CODE_PER_MINUTE, ClassBook, ClassError,
    SlidingWindow, clean_student_name, normalize_code, too_large,
)

PUBLIC_LOOKUPS_PER_MINUTE = 30
PURGE_INTERVAL = 3600.0
SUBMISSION_PATH = re.compile(r"^/api/classes/[^/]+/submissions/?$")
MAX_SUBMISSION_BODY = MAX_PROGRAM_BYTES * 6 + 4096  # JSON escapes can make text up to six times longer
ADMINS = frozenset({Role.ADMIN.value})
JOIN_PAGE = Path(__file__).resolve().parent.parent / "static" / "join.html"

log = get_logger()
router = APIRouter(prefix="/api/classes", tags=["classes"])
join_router = APIRouter(include_in_schema=False)


class ClassRoom:
    """The server's class mode: the book of classes, the submission limits and the retention timer."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.book = ClassBook(ctx.store, retention_days=ctx.settings.class_retention_days)
        self.limiter = SlidingWindow()
        self.approving = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.purge()
        self._task = asyncio.get_running_loop().create_task(self._purge_loop(), name="class-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(PURGE_INTERVAL)
            try:
                self.purge()
            except Exception as exc:  # a failed purge is retried next hour; the server goes on
                log.warning("class retention purge failed", error=str(exc))

    def purge(self) -> list[str]:
        codes = self.book.purge()
        for code in codes:
            self.ctx.audit(None, None, "class.purge", "ok",
                           f"{code}: submissions deleted {self.book.retention_days:g} days after the class ended")
        return codes

    def announce(self, cls: dict[str, Any], event: str, **data: Any) -> None:
        self.ctx.hub.send_to({"type": "class", "code": cls["code"], "event": event, **data}, {cls["owner"]}, ADMINS)


def get_room(request: Request) -> ClassRoom:
    return request.app.state.classes  # type: ignore[no-any-return]


class BodyLimit:
    """Refuse submission bodies over the limit before they are read (413)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_SUBMISSION_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not SUBMISSION_PATH.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            await JSONResponse({"detail": too_large()}, status_code=413)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            seen += len(msg.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, too_large())
            return msg

        await self.app(scope, limited, send)




class NewClass(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="what the lesson is called")
    machine: str
    minutes: int = Field(ge=MIN_MINUTES, le=MAX_MINUTES, description="how long students may submit")


class NewSubmission(BaseModel):
    student: str = Field(max_length=400)
    text: str


def _refuse(exc: ClassError) -> HTTPException:
    return HTTPException(exc.status, str(exc))


def _too_many(wait: float) -> HTTPException:
    seconds = max(1, math.ceil(wait))
    return HTTPException(429, ngettext("too many programs at once; try again in {n} second",
                                       "too many programs at once; try again in {n} seconds", seconds)
                         .format(n=seconds), headers={"Retry-After": str(seconds)})


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def describe(cls: dict[str, Any], request: Request) -> dict[str, Any]:
    """A class as its trainer sees it, with the join URL and its QR code."""
    url = f"{str(request.base_url).rstrip('/')}/join/{cls['code']}"
    qr = segno.make(url, error="m").svg_data_uri(scale=6, border=2)
    minutes = round((cls["expires_at"] - cls["created_at"]) / 60)
    return {"code": cls["code"], "url": url, "expires_at": cls["expires_at"], "name": cls["name"],
            "machine": cls["machine"], "minutes": minutes, "owner": cls["owner"], "created_at": cls["created_at"],
            "closed_at": cls["closed_at"], "state": cls["state"], "delete_after": cls["delete_after"], "qr": qr}


def owned(room: ClassRoom, principal: Principal, code: str) -> dict[str, Any]:
    """The class, if the caller is its trainer or an admin (403 otherwise, audited)."""
    cls = room.book.get(code)
    if cls is None:
        raise HTTPException(404, _("there is no class with code {code}").format(code=normalize_code(code)[:12]))
    if cls["owner"] != principal.username and principal.role != Role.ADMIN.value:
        room.ctx.audit(principal, cls["machine"], "class.manage", "denied", f"class {cls['code']} of {cls['owner']}")
        raise HTTPException(403, _("only the trainer who opened class {code} (or an admin) may do this")
                            .format(code=cls["code"]))
    return cls


@router.post("", status_code=201, response_model=ClassInfo,
             summary="Open a class: a code and a join URL (with its QR code) for students")
def open_class(body: NewClass, request: Request, principal: Principal = require(Action.CLASS_MANAGE),
               ctx: Context = Depends(get_ctx), room: ClassRoom = Depends(get_room)) -> dict[str, Any]:
    known_machine(ctx, body.machine)
    name = " ".join(body.name.split())
    if not name:
        raise HTTPException(422, _("give the class a name"))
    cls = room.book.open(name, body.machine, body.minutes, principal.username)
    ctx.audit(principal, body.machine, "class.open", "ok", f"{cls['code']} '{name}' for {body.minutes} min")
    return describe(cls, request)


@router.get("", response_model=list[ClassInfo], response_model_exclude_none=True,
            summary="My classes (an admin sees every class)")
def list_classes(request: Request, principal: Principal = require(Action.CLASS_MANAGE),
                 room: ClassRoom = Depends(get_room)) -> list[dict[str, Any]]:
    owner = None if principal.role == Role.ADMIN.value else principal.username
    return [{k: v for k, v in describe(c, request).items() if k != "qr"} | {"submissions": c["submissions"]}
            for c in room.book.list_classes(owner)]


@router.get("/{code}", response_model=ClassDetail,
            summary="A class, its students' progress and its most common errors (its trainer)")
def get_class(code: str, request: Request, principal: Principal = require(Action.CLASS_MANAGE),
              room: ClassRoom = Depends(get_room)) -> dict[str, Any]:
    cls = owned(room, principal, code)
    return {**describe(cls, request), "summary": room.book.summary(cls["code"])}


@router.delete("/{code}", response_model=ClassClosed,
               summary="Close a class: its code stops working; submissions are kept for the retention")
def close_class(code: str, principal: Principal = require(Action.CLASS_MANAGE), ctx: Context = Depends(get_ctx),
                room: ClassRoom = Depends(get_room)) -> dict[str, Any]:
    cls = owned(room, principal, code)
    closed = room.book.close(cls["code"])
    ctx.audit(principal, cls["machine"], "class.close", "ok", f"{cls['code']} '{cls['name']}'")
    room.announce(closed, "closed")
    return {"code": closed["code"], "state": closed["state"], "closed_at": closed["closed_at"],
            "delete_after": closed["delete_after"]}


@router.get("/{code}/public", response_model=PublicClass,
            summary="What a student's join page shows of an open class (no sign-in)")
def public_class(code: str, request: Request, ctx: Context = Depends(get_ctx),
                 room: ClassRoom = Depends(get_room)) -> dict[str, Any]:
    wait = room.limiter.admit((f"lookup:{_client(request)}", PUBLIC_LOOKUPS_PER_MINUTE))
    if wait is not None:
        raise _too_many(wait)
    try:
        cls = room.book.open_class(code)
    except ClassError as exc:
        raise _refuse(exc) from None
    machine = ctx.lab.machines.get(cls["machine"])
    return {"code": cls["code"], "name": cls["name"], "machine": cls["machine"],
            "machine_name": machine.config.name if machine else cls["machine"], "expires_at": cls["expires_at"],
            "max_bytes": MAX_PROGRAM_BYTES}


def _check(ctx: Context, machine_id: str, text: str) -> tuple[dict[str, Any], str]:
    """The gate's report and the compact toolpath, base64 (blocking: run in a thread; programs are <= 256 KB)."""
    from labbridge.safety import check_text
    from labbridge.safety.toolpath import build_toolpath

    machine = ctx.lab.runtime(machine_id).config
    report = check_text(text, machine, machine_id=machine_id, program_name="program.nc").to_json()
    path = build_toolpath(text.encode("utf-8"), machine_id, machine, report.get("bounds"), program_name="program.nc")
    return report, base64.b64encode(path.encode()).decode("ascii")


@router.post("/{code}/submissions", status_code=201, **reply_of(SubmissionReply, 201),
             summary="A student submits a program (no sign-in): the check report, the preview and an id")
async def submit(code: str, body: NewSubmission, request: Request, ctx: Context = Depends(get_ctx),
                 room: ClassRoom = Depends(get_room)) -> dict[str, Any]:
    client_key = (f"client:{_client(request)}", PER_CLIENT_PER_MINUTE)
    try:
        cls = room.book.open_class(code)
    except ClassError as exc:
        wait = room.limiter.admit(client_key)  # guesses count too: codes cannot be tried out quickly
        raise _too_many(wait) if wait is not None else _refuse(exc) from None
    wait = room.limiter.admit(client_key, (f"class:{cls['code']}", PER_CODE_PER_MINUTE))
    if wait is not None:
        raise _too_many(wait)
    try:
        student = clean_student_name(body.student)
    except ClassError as exc:
        raise _refuse(exc) from None
    if len(body.text.encode("utf-8")) > MAX_PROGRAM_BYTES:
        raise HTTPException(413, too_large())
    text = validate_program(body.text.encode("utf-8"), _("your program"), MAX_PROGRAM_BYTES)
    if cls["machine"] not in ctx.lab.machines:
        raise HTTPException(409, _("this class's machine is no longer in the lab; tell your trainer"))
    report, preview = await run_in_threadpool(_check, ctx, cls["machine"], text)
    row = room.book.add_submission(cls["code"], student, text, report)
    room.announce(cls, "submission", submission=row)
    return {"id": row["id"], "student": row["student"], "time": row["time"], "report": report, "toolpath": preview}


@router.get("/{code}/submissions", response_model=list[Attempt],
            summary="Every attempt of a class: student, time, ok, errors, first error")
def list_submissions(code: str, principal: Principal = require(Action.CLASS_MANAGE),
                     room: ClassRoom = Depends(get_room)) -> list[dict[str, Any]]:
    cls = owned(room, principal, code)
    return room.book.submissions(cls["code"])


def _submission(room: ClassRoom, cls: dict[str, Any], submission_id: int) -> dict[str, Any]:
    found = room.book.submission(cls["code"], submission_id)
    if found is None:
        raise HTTPException(404, _("class {code} has no submission {id}").format(code=cls["code"], id=submission_id))
    return found


@router.get("/{code}/submissions/{submission_id}", **reply_of(AttemptDetail),
            summary="One attempt: the program, its report and preview")
async def get_submission(code: str, submission_id: int, principal: Principal = require(Action.CLASS_MANAGE),
                         ctx: Context = Depends(get_ctx), room: ClassRoom = Depends(get_room)) -> dict[str, Any]:
    cls = owned(room, principal, code)
    found = _submission(room, cls, submission_id)
    report, preview = found["report"], None
    if cls["machine"] in ctx.lab.machines:  # checked again, so that the trainer reads it in their own language
        report, preview = await run_in_threadpool(_check, ctx, cls["machine"], found["text"])
    return {**room.book.public_row(found), "text": found["text"], "report": report, "toolpath": preview}


@router.post("/{code}/submissions/{submission_id}/approve", status_code=201, response_model=Approval,
             summary="Put a passing attempt into the machine's queue, the student's name as its note")
async def approve(code: str, submission_id: int, principal: Principal = require(Action.CLASS_MANAGE),
                  ctx: Context = Depends(get_ctx), room: ClassRoom = Depends(get_room)) -> dict[str, Any]:
    cls = owned(room, principal, code)
    async with room.approving:
        found = _submission(room, cls, submission_id)
        if not found["ok"]:
            ctx.audit(principal, cls["machine"], "class.approve", "refused",
                      f"class {cls['code']} attempt {submission_id}: {found['errors']} errors")
            raise HTTPException(409, ngettext(
                "this attempt has {n} error; only a program that passes the check can be approved",
                "this attempt has {n} errors; only a program that passes the check can be approved",
                found["errors"]).format(n=found["errors"]))
        if found["queue_entry"] is not None:
            raise HTTPException(409, _("this attempt is already in the queue as #{entry}").format(
                entry=found["queue_entry"]))
        known_machine(ctx, cls["machine"])
        data = found["text"].encode("utf-8")
        name = f"class-{cls['code']}-{submission_id}.nc"
        info = ctx.store.add_program(data, name, principal.username, len(found["text"].splitlines()))
        checked = await run_in_threadpool(check_and_store, ctx, principal, info["hash"], cls["machine"], False)
        if not checked["report"]["ok"]:
            raise HTTPException(409, _("this program no longer passes the check on {machine}; ask the student "
                                       "to submit it again").format(machine=cls["machine"]))
        entry = ctx.store.enqueue(cls["machine"], info["hash"], name, checked["check_id"], principal.username,
                                  found["student"][:500])
        room.book.set_queue_entry(submission_id, entry["id"])
    ctx.audit(principal, cls["machine"], "class.approve", "ok",
              f"#{entry['id']} from class {cls['code']} attempt {submission_id}")
    ctx.hub.broadcast({"type": "queue", "machine": cls["machine"], "time": time.time()})
    row = room.book.public_row({**found, "queue_entry": entry["id"]})
    room.announce(cls, "approved", submission=row)
    return {"entry": entry, "submission": row}


@join_router.get("/join", response_class=FileResponse)
@join_router.get("/join/{code}", response_class=FileResponse)
def join_page(code: str = "") -> FileResponse:
    """The students' page; it reads the code from its own address (nothing is written into the page)."""
    return FileResponse(JOIN_PAGE, media_type="text/html")


def install(app: FastAPI, ctx: Context) -> ClassRoom:
    """Serve class mode on ``app`` (before the dashboard's catch-all static files)."""
    room = ClassRoom(ctx)
    app.state.classes = room
    app.include_router(router)
    app.include_router(join_router)
    app.add_middleware(BodyLimit)
    return room
