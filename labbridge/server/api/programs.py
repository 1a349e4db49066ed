"""Programs: upload (file or pasted text), check against a machine, toolpath preview.

Uploads are limited in size (10 MB by default) and must be text: binary, non-UTF-8
and empty files are refused with a message saying why. Programs are stored by the
SHA-256 of their bytes; the check report is the same object ``labbridge check
--json`` prints. The toolpath is a compact binary (labbridge.safety.toolpath), built
from the stored file as a stream, off the event loop, a few at a time.
"""

from __future__ import annotations

from typing import Any

from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from labbridge.i18n import _
from labbridge.server.api.deps import Context, get_ctx, known_machine, require
from labbridge.server.auth import Action, Principal
from labbridge.server.previews import PreviewBusy
from labbridge.server.schemas import CheckResult, ProgramInfo, ProgramText, documented

router = APIRouter(prefix="/api/programs", tags=["programs"])

_ALLOWED_CONTROLS = set("\t\n\r\f\v") | {"\x11", "\x12", "\x13", "\x14"}  # whitespace, DNC DC1-DC4
_BAD_CONTROLS = [chr(c) for c in range(32) if chr(c) not in _ALLOWED_CONTROLS]
TOOLPATH_TYPE = "application/vnd.labbridge.toolpath"


class PastedProgram(BaseModel):
    name: str = Field("pasted.nc", min_length=1, max_length=200)
    text: str


class CheckRequest(BaseModel):
    machine: str
    preview: bool = True


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n} bytes"


def validate_program(data: bytes, name: str, limit: int) -> str:
    """The program's text, or HTTPException 400/413/415 saying what is wrong with the upload."""
    if len(data) > limit:
        raise HTTPException(413, _("{name}: {size} is larger than the {limit} limit; split the program").format(
            name=name, size=_mb(len(data)), limit=_mb(limit)))
    if not data.strip():
        raise HTTPException(400, _("{name}: the program is empty; upload a G-code file with at least one block")
                            .format(name=name))
    if b"\x00" in data:
        raise HTTPException(415, _("{name}: this is a binary file (it contains NUL bytes), not G-code text")
                            .format(name=name))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(415, _("{name}: not text (invalid UTF-8 at byte {byte}); save the program as plain "
                                   "ASCII/UTF-8").format(name=name, byte=exc.start)) from None
    controls = sum(text.count(ch) for ch in _BAD_CONTROLS)  # a C-speed scan per character: no Python loop
    if controls > max(2, len(text) // 200):
        raise HTTPException(415, _("{name}: {n} control characters; this does not look like G-code text")
                            .format(name=name, n=controls))
    return text


def count_lines(text: str) -> int:
    """How many lines GRBL reads (ends at CR, LF or CR LF, as lexer.split_lines), without splitting the text."""
    ends = text.count("\n") + text.count("\r") - text.count("\r\n")
    return ends + (1 if text and text[-1] not in "\r\n" else 0)


def _safe_name(name: str | None) -> str:
    base = (name or "program.nc").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return base[:200] or "program.nc"


def _store(ctx: Context, principal: Principal, data: bytes, name: str) -> dict[str, Any]:
    try:
        text = validate_program(data, name, ctx.settings.max_upload_bytes)
    except HTTPException as exc:
        ctx.audit(principal, None, "program.upload", "refused", f"{name}: {exc.detail}")
        raise
    info = ctx.store.add_program(data, name, principal.username, count_lines(text))
    ctx.audit(principal, None, "program.upload", "ok", f"{name} sha256:{info['hash'][:12]} {len(data)} bytes")
    return info


@router.post("", status_code=201, response_model=ProgramInfo, summary="Upload a G-code file (multipart field 'file')")
async def upload(file: UploadFile, principal: Principal = require(Action.PROGRAM_UPLOAD),
                 ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    limit = ctx.settings.max_upload_bytes
    name = _safe_name(file.filename)
    data = await file.read(limit + 1)
    return await run_in_threadpool(_store, ctx, principal, data, name)


@router.post("/text", status_code=201, response_model=ProgramInfo, summary="Store pasted G-code text")
async def upload_text(body: PastedProgram, principal: Principal = require(Action.PROGRAM_UPLOAD),
                      ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    return await run_in_threadpool(_store, ctx, principal, body.text.encode("utf-8"), _safe_name(body.name))


@router.get("", response_model=list[ProgramInfo], summary="Recently uploaded programs (not for viewers)")
def list_programs(_: Principal = require(Action.RECORDS), ctx: Context = Depends(get_ctx)) -> list[dict[str, Any]]:
    return ctx.store.list_programs()


def _program(ctx: Context, digest: str) -> tuple[dict[str, Any], str]:
    info = ctx.store.program_info(digest)
    data = ctx.store.program_bytes(digest)
    if info is None or data is None:
        raise HTTPException(404, _("no program with hash {digest}; upload it first").format(digest=repr(digest)))
    return info, data.decode("utf-8")


@router.get("/{digest}", response_model=ProgramText, response_model_exclude_unset=True, summary="A program's text and details (not for viewers)")
def get_program(digest: str, _: Principal = require(Action.RECORDS), ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    info, text = _program(ctx, digest)
    return {**info, "text": text}


def _program_file(ctx: Context, digest: str) -> tuple[dict[str, Any], Any]:
    info = ctx.store.program_info(digest)
    if info is None:
        raise HTTPException(404, _("no program with hash {digest}; upload it first").format(digest=repr(digest)))
    return info, ctx.store.program_file(digest)


def toolpath_url(digest: str, machine_id: str) -> str:
    return f"/api/programs/{digest}/toolpath?machine={quote(machine_id)}"


def check_and_store(ctx: Context, principal: Principal, digest: str, machine_id: str,
                    with_preview: bool) -> dict[str, Any]:
    """Run the safety gate (blocking: call in a thread) and remember the result for the queue.

    The program is read from its stored file as a stream, so a large upload is never held twice.
    """
    from labbridge.safety import check_stream
    from labbridge.safety.toolpath import SmallReads

    info, path = _program_file(ctx, digest)
    machine = ctx.lab.runtime(machine_id).config
    with path.open("rb") as fh:  # small reads: the event loop gets the GIL back every few milliseconds
        report = check_stream(SmallReads(fh), machine_id, machine, info["name"])
    report_json = report.to_json()
    check_id = ctx.store.add_check(digest, machine_id, bool(report.ok), report_json, principal.username)
    result: dict[str, Any] = {"check_id": check_id, "hash": digest, "machine": machine_id, "report": report_json}
    if with_preview:
        result["toolpath"] = toolpath_url(digest, machine_id)
    return result


async def toolpath_bytes(ctx: Context, digest: str, machine_id: str) -> bytes:
    """The encoded toolpath of a stored program on a machine (built at most a few at a time, cached).

    Raises HTTPException 404 (no such program) or 503 (too many previews being built right now).
    """
    from labbridge.safety.toolpath import build_toolpath

    info, path = _program_file(ctx, digest)
    machine = ctx.lab.runtime(machine_id).config
    check = ctx.store.latest_check(digest, machine_id)
    bounds = check["report"].get("bounds") if check else None

    def build() -> bytes:
        return build_toolpath(path, machine_id, machine, bounds, program_name=info["name"]).encode()

    try:
        return await ctx.previews.get((digest, machine_id, check["id"] if check else 0), build)
    except PreviewBusy as exc:
        raise HTTPException(503, _("the server is busy building other previews ({reason})").format(reason=exc),
                            headers={"Retry-After": "2"}) from None


@router.get("/{digest}/toolpath", summary="A program's toolpath on a machine (compact binary; see safety.toolpath)",
            response_class=Response, responses={200: {"content": {TOOLPATH_TYPE: {}}}})
async def toolpath(digest: str, machine: str, _: Principal = require(Action.VIEW),
                   ctx: Context = Depends(get_ctx)) -> Response:
    known_machine(ctx, machine)
    data = await toolpath_bytes(ctx, digest, machine)
    return Response(data, media_type=TOOLPATH_TYPE)


@router.post("/{digest}/check", summary="Check a program against a machine (same report as check --json)",
             **documented(CheckResult))
async def check(digest: str, body: CheckRequest, principal: Principal = require(Action.PROGRAM_CHECK),
                ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    known_machine(ctx, body.machine)
    try:
        result = await run_in_threadpool(check_and_store, ctx, principal, digest, body.machine, body.preview)
    except HTTPException:
        raise
    except ImportError as exc:
        raise HTTPException(503, _("the safety gate is not available in this build ({reason})").format(
            reason=exc)) from None
    report = result["report"]
    errors = sum(1 for d in report.get("diagnostics", []) if d.get("severity") == "error")
    ctx.audit(principal, body.machine, "program.check", "ok" if report.get("ok") else "errors",
              f"sha256:{digest[:12]} {errors} errors")
    return result
