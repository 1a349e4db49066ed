"""Check a whole program against one machine: the safety gate every program passes before streaming.

Programs are read as a stream of lines, so memory does not grow with the file;
only diagnostics (capped) and coarse ETA marks are kept. Bytes that are not
text get a diagnostic, never a traceback.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from labbridge.config import Machine
from labbridge.errors import ProgramReadError
from labbridge.safety.checks import MotionChecker
from labbridge.safety.diagnostics import Diagnostic
from labbridge.safety.estimate import CompiledEstimator, Estimator

try:  # the C fast path; labbridge works without it, only slower
    from labbridge.safety import _fastcheck
except ImportError:  # pragma: no cover - exercised where no compiler was available
    _fastcheck = None  # type: ignore[assignment]

from labbridge.safety.interpreter import Interpreter
from labbridge.safety.modal import MM_PER_INCH, Distance, FeedMode, Spindle, Units
from labbridge.safety.motion import Motion, Vec

CHUNK_BYTES = 1 << 20
_LINE_END = re.compile(rb"\r\n?|\n")
MAX_DIAGNOSTICS = 1000
MAX_BINARY_LINES = 5  # after this many unreadable lines the file is judged binary and reading stops
MAX_LINE_BYTES = 64 * 1024


@dataclass
class Report:
    """The result of checking one program; ``to_json`` is the `labbridge check --json` contract."""

    program: str
    machine: str
    lines: int = 0
    bounds: dict[str, dict[str, float]] | None = None
    estimated_seconds: float = 0.0
    diagnostics: list[Diagnostic] = field(default_factory=list)
    line_times: list[tuple[int, float]] = field(default_factory=list)
    truncated: bool = False
    error_count: int = 0  # counts every error, including those past the listing cap

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    def to_json(self) -> dict[str, object]:
        return {
            "program": self.program,
            "machine": self.machine,
            "ok": self.ok,
            "lines": self.lines,
            "bounds": self.bounds,
            "estimated_seconds": round(self.estimated_seconds, 3),
            "diagnostics": [d.to_json() for d in self.diagnostics],
        }

    def seconds_until(self, line: int) -> float:
        """Estimated seconds from program start until ``line`` has run (for ETA)."""
        best = 0.0
        for ln, t in self.line_times:
            if ln > line:
                break
            best = t
        return best


def _finite(m: Motion) -> bool:
    values = (*m.start, *m.end, m.feed, m.sweep, m.radius, m.seconds, *(m.center or ()))
    return all(math.isfinite(v) for v in values)


def _decode(raw: bytes) -> tuple[str | None, str | None]:
    """One line of bytes as text, or the reason it is not text."""
    if b"\x00" in raw:
        return None, "NUL bytes: this file is binary, not a G-code text file"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, (f"byte 0x{raw[exc.start]:02x} at column {exc.start + 1} is not valid UTF-8 text: "
                      "save the program as plain text (UTF-8 or ASCII)")
    return text.rstrip("\r\n"), None


class ProgramChecker:
    """Checks blocks one at a time; used by check_program and by the streamer's re-check."""

    def __init__(
        self, machine_id: str, machine: Machine, program_name: str,
        work_offsets: dict[str, Vec] | None = None, start: Vec | None = None, *, fast: bool = True,
    ) -> None:
        self.interp = Interpreter(machine, work_offsets=work_offsets, start=start, machine_id=machine_id)
        self.checker = MotionChecker(machine, self.interp.x_scale, machine_id)
        self.report = Report(program_name, machine_id)
        self.ended_at: int | None = None
        self.fast = None
        if fast and _fastcheck is not None and len(self.checker.boxes) <= 32:
            estimator = CompiledEstimator(machine, _fastcheck)
            self.estimator: Estimator | CompiledEstimator = estimator
            self.fast = _fastcheck.FastPath(
                estimator.raw, tuple(self.checker.env_lo), tuple(self.checker.env_hi),
                [(lo, hi) for _, lo, hi in self.checker.boxes], machine.max_feed,
                self.interp.line_buffer, self.interp.x_scale, self.interp.dialect.fanuc,
            )
            self._fast_allowed = not ({"G0", "G1", "G2", "G3"} & self.interp.forbidden)
            self.to_fast()
        else:
            self.estimator = Estimator(machine)
        self._after_end_warned = False
        self._spindle_on = False
        self.unreadable_lines = 0
        self.interpreted_lines = 0  # lines the Python interpreter read (the rest went through the C fast path)
        self.sink: Any = None  # the dashboard's toolpath builder, when one is attached

    def attach_sink(self, sink: Any) -> None:
        """Also hand every motion to ``sink`` (labbridge.safety.toolpath.Sink), flagged if its line has an error."""
        self.sink = sink
        if self.fast is not None:
            self.fast.set_sink(sink.native)

    def add(self, diagnostic: Diagnostic) -> None:
        report = self.report
        if diagnostic.severity == "error":
            report.error_count += 1
        if len(report.diagnostics) < MAX_DIAGNOSTICS:
            report.diagnostics.append(diagnostic)
        elif not report.truncated:
            report.truncated = True
            report.diagnostics.append(Diagnostic(diagnostic.line, "warning", "too-many-diagnostics",
                                                 f"more than {MAX_DIAGNOSTICS} problems; the rest are not listed: "
                                                 "fix these first"))

    def line(self, number: int, text: str) -> None:
        interp = self.interp
        result = interp.execute(text, number)
        self.report.lines = number
        diags = result.diagnostics
        if result.ok and (result.motions or result.program_end) and self.ended_at is not None \
                and not self._after_end_warned:
            self._after_end_warned = True
            self.add(Diagnostic(number, "warning", "after-end", f"this block comes after the program end on line "
                                f"{self.ended_at}: Fanuc-style controls stop at M30, GRBL runs on; remove these "
                                "lines or move M2/M30 to the end"))
        if result.sync:
            self.estimator.flush()  # the controller lets the machine stop before this block acts
        if result.motions:
            if result.spindle_on != self._spindle_on:
                self.checker.spindle_changed(result.spindle_on)
            self._spindle_on = result.spindle_on
            wcs = interp.wcs[interp.modal.wcs]
            g92 = interp.g92
            work = (wcs[0] + g92[0], wcs[1] + g92[1], wcs[2] + g92[2] + interp.tlo)
            for m in result.motions:
                if not _finite(m):
                    # Defence in depth: every path to a non-finite motion is refused with its own diagnostic
                    # before it gets here; should one slip through, it never reaches the bounds or the JSON.
                    diags.append(Diagnostic(number, "error", "invalid-value", "this block's motion is not a finite "
                                            "number (a value too large or an impossible geometry): check its words"))
                    break
                self.checker.check(m, result.spindle_on, work, diags)
                self.estimator.add(m)
        elif result.spindle_on != self._spindle_on:
            self.checker.spindle_changed(result.spindle_on)
            self._spindle_on = result.spindle_on
        if result.stop or result.program_end:
            self.estimator.flush()  # M0, M2, M30: the machine stops after this block
        if result.program_end and self.ended_at is None:
            self.ended_at = number
        for d in diags:
            self.add(d)
        if self.sink is not None and result.motions:
            self.sink.motions(result.motions, any(d.severity == "error" for d in diags))

    # -- the C fast path shares the modal state with the interpreter --------------------------------
    def to_fast(self) -> None:
        """Hand the interpreter's state to the fast path after Python ran a line."""
        fast = self.fast
        if fast is None:
            return
        interp = self.interp
        m = interp.modal
        wcs, g92 = interp.wcs[m.wcs], interp.g92
        offset = (wcs[0] + g92[0], wcs[1] + g92[1], wcs[2] + g92[2] + interp.tlo)
        fast.sync(
            tuple(interp.position), offset, MM_PER_INCH if m.units == Units.INCH else 1.0, m.distance == Distance.ABSOLUTE,
            m.motion, m.plane, m.feed_mode == FeedMode.PER_MINUTE, m.feed, m.spindle in (Spindle.CW, Spindle.CCW),
            self._fast_allowed and self.ended_at is None,
        )

    def from_fast(self) -> None:
        """Take back position, motion mode and feed after the fast path ran lines."""
        fast = self.fast
        if fast is None:
            return
        position, motion, feed = fast.state()
        self.interp.position = list(position)
        self.interp.modal.motion = motion
        self.interp.modal.feed = feed

    def raw_line(self, number: int, raw: bytes) -> None:
        """A line of bytes the fast path did not take: decode it and let the interpreter judge it."""
        text, problem = _decode(raw)
        if problem is not None:
            self.unreadable(number, problem)
        else:
            self.line(number, text)  # type: ignore[arg-type]

    def read(self, stream: BinaryIO) -> None:
        """Check every line of a binary stream: plain lines in C when it can, the rest in Python.

        Lines end as GRBL ends them: at LF, at CR, or at CR LF (see lexer.split_lines)."""
        fast_path = self.fast
        number = 0
        pending = b""
        skipping_long_line = False
        while self.unreadable_lines < MAX_BINARY_LINES:
            chunk = stream.read(CHUNK_BYTES)
            buf = pending + chunk
            if not chunk and buf and not buf.endswith((b"\n", b"\r")):
                buf += b"\n"  # the last line may lack its line end
            pos = 0
            while self.unreadable_lines < MAX_BINARY_LINES:
                if skipping_long_line:
                    eol = _LINE_END.search(buf, pos)
                    if eol is None:
                        pos = len(buf)
                        break
                    pos, skipping_long_line = eol.end(), False
                    continue
                if fast_path is not None:
                    new_pos, new_number = fast_path.run(buf, pos, number)
                    if new_number != number:
                        self.report.lines = number = new_number
                        pos = new_pos
                        self.from_fast()
                eol = _LINE_END.search(buf, pos)
                if eol is None or (eol.end() == len(buf) and buf[-1:] == b"\r" and chunk):
                    break  # no line end yet, or a CR whose LF may start the next chunk
                number += 1
                self.interpreted_lines += 1
                self.raw_line(number, buf[pos:eol.start()])
                self.to_fast()
                pos = eol.end()
            pending = buf[pos:]
            if len(pending) > MAX_LINE_BYTES:
                number += 1
                self.unreadable(number, f"line is longer than {MAX_LINE_BYTES // 1024} KiB: this is not a G-code "
                                "program")
                pending, skipping_long_line = b"", True
            if not chunk:
                break
        if self.unreadable_lines >= MAX_BINARY_LINES:
            self.add(Diagnostic(number, "error", "binary", "stopped reading: this file does not look like a G-code "
                                "text file"))

    def unreadable(self, number: int, problem: str) -> None:
        self.report.lines = number
        self.unreadable_lines += 1
        self.add(Diagnostic(number, "error", "binary", problem))

    def finish(self) -> Report:
        report = self.report
        if report.lines == 0:
            self.add(Diagnostic(0, "error", "syntax", "the program is empty: there is nothing to run"))
        if self.ended_at is None and report.lines and not self.unreadable_lines:
            self.add(Diagnostic(report.lines, "warning", "no-program-end", "the program never ends with M2 or M30: "
                                "add M30 as the last line so the spindle and coolant stop"))
        if self.fast is not None:
            fast_bounds = self.fast.bounds()
            if fast_bounds is not None:
                self.checker.merge(*fast_bounds)
        report.bounds = self.checker.bounds()
        report.estimated_seconds = self.estimator.finish()
        report.line_times = self.estimator.pairs()
        report.diagnostics.sort(key=lambda d: d.line)
        return report


def check_stream(
    stream: BinaryIO, machine_id: str, machine: Machine, program_name: str,
    work_offsets: dict[str, Vec] | None = None, start: Vec | None = None, *, fast: bool = True,
) -> Report:
    """Check a program read from a binary stream, a chunk at a time."""
    pc = ProgramChecker(machine_id, machine, program_name, work_offsets, start, fast=fast)
    pc.read(stream)
    return pc.finish()


def check_program(
    source: str | os.PathLike[str] | bytes | Iterable[str],
    machine: Machine,
    *,
    machine_id: str | None = None,
    program_name: str | None = None,
    work_offsets: dict[str, Vec] | None = None,
    start: Vec | None = None,
) -> Report:
    """Check a program given as a path, raw bytes, or lines of text. Raises ProgramReadError if unreadable."""
    mid = machine_id or machine.name
    if isinstance(source, bytes):
        return check_stream(io.BytesIO(source), mid, machine, program_name or "<program>", work_offsets, start)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = program_name or str(source)
        try:
            with path.open("rb") as fh:
                return check_stream(fh, mid, machine, name, work_offsets, start)  # type: ignore[arg-type]
        except FileNotFoundError:
            raise ProgramReadError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise ProgramReadError(f"{path}: is a directory, not a program file") from None
        except PermissionError:
            raise ProgramReadError(f"{path}: permission denied") from None
        except OSError as exc:
            raise ProgramReadError(f"{path}: cannot read: {exc.strerror or exc}") from None
    # Lines of text (one line each: split them with lexer.split_lines) go through the same reader, C fast path
    # included, as one LF-separated program.
    data = "\n".join(text.rstrip("\r\n") for text in source).encode("utf-8", "surrogateescape")
    return check_stream(io.BytesIO(data), mid, machine, program_name or "<program>", work_offsets, start)


def check_text(text: str, machine: Machine, *, machine_id: str | None = None, program_name: str = "<program>",
               work_offsets: dict[str, Vec] | None = None, start: Vec | None = None) -> Report:
    return check_program(text.encode("utf-8"), machine, machine_id=machine_id, program_name=program_name,
                         work_offsets=work_offsets, start=start)
