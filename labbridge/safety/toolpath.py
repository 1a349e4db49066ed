"""The dashboard's compact toolpath: a program's motions as typed arrays, decimated to the display resolution.

A browser cannot take a million-line program as JSON lists of points, and needs
no more points than a screen can show. The toolpath is built while the safety
gate reads the program (the same pass, the C fast path feeding the C builder
directly), so only lines the gate could read are drawn; motions on a line with
an error are *flagged* and kept exactly, never merged away.

What the browser gets (``encode``): ``b"LBTP"``, a little-endian uint32 format
version and header length, a JSON header (machine, envelope, keep-out boxes,
work and machine zero, bounds, the flagged lines, array layout), then the arrays
``positions`` float32 x,y,z per vertex (display coordinates: a lathe's X is a
diameter), ``lines`` uint32 (the program line that reached the vertex) and
``kinds`` uint8 (the segment ending at the vertex: 0 jump, 1 rapid, 2 cut,
3 flagged). The path is one continuous polyline; a jump is not drawn. Every point where the
path turns back along an axis is kept, so the drawing reaches exactly the
bounds the gate reports (arcs are cut through their extremes, geometry.arc_points).

Memory stays bounded whatever the program: the builder holds at most
``max_vertices`` (doubling its tolerance and merging again when full), and the
program is read as a stream.
"""

from __future__ import annotations

import io
import json
import math
import struct
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from labbridge.config import Machine
from labbridge.safety.geometry import arc_points
from labbridge.safety.motion import Motion, Vec

try:
    from labbridge.safety._fastcheck import Toolpath as _CToolpath
except ImportError:  # pragma: no cover - builds without a compiler use the Python twin below
    _CToolpath = None

MAGIC = b"LBTP"
VERSION = 1
JUMP, RAPID, CUT, FLAGGED = 0, 1, 2, 3
KIND_NAMES = ("jump", "rapid", "cut", "flagged")
SCREEN_PX = 4096  # the tolerance is the path's extent over this: finer than a pixel at full-screen zoom
MAX_VERTICES = 400_000  # ~6.8 MB on the wire: the budget is < 8 MB for a 1M-line program
MAX_PENDING = 128
MAX_ARC_STEPS = 100_000
MAX_COARSEN = 24
TURN_EPS = 1e-9
_AXES = "XYZ"


class PyToolpath:
    """The C builder's algorithm in Python, line for line (used without the extension and to test it)."""

    def __init__(self, tolerance: float, max_vertices: int, x_scale: float = 1.0) -> None:
        if not tolerance > 0 or not math.isfinite(tolerance) or max_vertices < 16 or not x_scale > 0:
            raise ValueError("tolerance and x_scale must be > 0, max_vertices >= 16")
        self.tol = tolerance
        self.xscale = x_scale
        self.max_vertices = max_vertices
        self.pos = array("f")
        self.line = array("I")
        self.kind = array("B")
        self.anchor: list[float] = [0.0, 0.0, 0.0]
        self.cur: list[float] = [0.0, 0.0, 0.0]
        self.have_any = False
        self.truncated = False
        self.replaying = False
        self.coarsened = 0
        self.pend: list[tuple[float, float, float]] = []
        self.pend_line: list[int] = []
        self.run_kind = RAPID
        self.dir = [0, 0, 0]  # sign of the last move along each axis: where one turns back is an extreme, kept
        self.points_in = 0
        self.dedupe = False
        self.skipping = False
        self.grid = 0.0
        self.prev: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.skip: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.skip_line = 0
        self.seen: set[tuple[int, ...]] = set()

    # -- the decimation -------------------------------------------------------------------------
    def _coarsen(self, factor: float) -> None:
        pos, line, kind = self.pos, self.line, self.kind
        saved = (list(self.pend), list(self.pend_line), self.run_kind, list(self.anchor), self.prev)
        skipped = (self.skipping, self.skip, self.skip_line)
        self.tol *= factor
        self.coarsened += 1
        self.pos, self.line, self.kind = array("f"), array("I"), array("B")
        self.skipping = False
        if self.dedupe:
            self.grid = self.tol
            self.seen = set()
        self.pend, self.pend_line = [], []
        self.replaying = True
        for i in range(len(line)):
            self._emit((float(pos[3 * i]), float(pos[3 * i + 1]), float(pos[3 * i + 2])), line[i], kind[i])
        self._flush()
        self.replaying = False
        self.pend, self.pend_line, self.run_kind, self.anchor, self.prev = saved
        if skipped[0]:
            self.skipping, self.skip, self.skip_line = skipped

    def _make_room(self) -> None:
        while len(self.line) >= self.max_vertices * 3 // 4 and self.coarsened < MAX_COARSEN:
            self.dedupe = True
            self._coarsen(1.0 if self.coarsened == 0 else 2.0)
        if len(self.line) >= self.max_vertices:
            self.truncated = True

    def _seen_before(self, a: tuple[float, float, float], b: tuple[float, float, float], kind: int) -> bool:
        g = self.grid
        qa = tuple(math.floor(v / g) for v in a)
        qb = tuple(math.floor(v / g) for v in b)
        key = (kind, *min(qa, qb), *max(qa, qb))
        if key in self.seen:
            return True
        if len(self.seen) < self.max_vertices:
            self.seen.add(key)
        return False

    def _store(self, p: tuple[float, float, float], line: int, kind: int) -> None:
        if not self.replaying and len(self.line) >= self.max_vertices:
            self._make_room()
            if self.truncated:
                return
        if self.dedupe:
            if kind in (RAPID, CUT) and self._seen_before(self.prev, p, kind):
                self.prev = self.skip = p
                self.anchor = list(p)
                self.skip_line = line
                self.skipping = True
                return
            if self.skipping and kind != JUMP:
                self._append(self.skip, self.skip_line, JUMP)
            self.skipping = False
        self.prev = p
        self._append(p, line, kind)

    def _append(self, p: tuple[float, float, float], line: int, kind: int) -> None:
        if len(self.line) >= self.max_vertices:
            self.truncated = True
            return
        self.pos.extend(p)
        self.line.append(line)
        self.kind.append(kind)
        self.anchor = [float(v) for v in p]

    def _flush(self) -> None:
        if self.pend:
            p, ln = self.pend[-1], self.pend_line[-1]
            self.pend, self.pend_line = [], []
            self._store(p, ln, self.run_kind)

    def _emit(self, p: tuple[float, float, float], line: int, k: int) -> None:
        if k in (JUMP, FLAGGED):
            self._flush()
            if k == JUMP:
                self.dir = [0, 0, 0]
            self._store(p, line, k)
            return
        if self.pend and k != self.run_kind:
            self._flush()
        came_from = self.pend[-1] if self.pend else self.anchor
        turns = False
        for i in range(3):
            d = p[i] - came_from[i]
            sign = 1 if d > TURN_EPS else (-1 if d < -TURN_EPS else 0)
            if sign == 0:
                continue
            if self.dir[i] != 0 and sign != self.dir[i]:
                turns = True
            self.dir[i] = sign
        if turns:
            self._flush()
        if not self.pend:
            self.run_kind = k
            self.pend, self.pend_line = [p], [line]
            return
        fits = len(self.pend) < MAX_PENDING
        tol_sq = self.tol * self.tol
        if fits:
            a = self.anchor
            fits = all(_dist_sq_to_segment(q, a, p) <= tol_sq for q in self.pend)
        if not fits:
            self._flush()
        self.pend.append(p)
        self.pend_line.append(line)

    def _point(self, internal: Vec, line: int, kind: int) -> None:
        p = (internal[0] * self.xscale, internal[1], internal[2])
        self.points_in += 1
        if self.truncated:
            return
        self.cur = list(p)
        self._emit(p, line, kind)

    # -- the same surface as the C type ---------------------------------------------------------
    def add(self, cut: bool, flagged: bool, start: Vec, end: Vec, center: Vec | None,
            plane: tuple[int, int, int], sweep: float, radius: float, line: int) -> None:
        kind = FLAGGED if flagged else (CUT if cut else RAPID)
        sd = (start[0] * self.xscale, start[1], start[2])
        if not self.have_any:
            self.have_any = True
            self._point(start, line, JUMP)
        elif sum((sd[i] - self.cur[i]) ** 2 for i in range(3)) > 1e-12:
            self._point(start, line, JUMP)
        if center is None:
            self._point(end, line, kind)
            return
        tol = self.tol / (self.xscale if self.xscale > 1.0 else 1.0)
        arc = Motion("arc", line, start, end, center=center, plane=plane, sweep=sweep, radius=radius)
        for p in arc_points(arc, tol)[1:]:
            self._point(p, line, kind)

    def finish(self) -> None:
        self._flush()

    def buffers(self) -> tuple[bytes, bytes, bytes]:
        return _le(self.pos), _le(self.line), self.kind.tobytes()

    def stats(self) -> dict[str, Any]:
        return {"vertices": len(self.line), "tolerance": self.tol, "points_in": self.points_in,
                "coarsened": self.coarsened, "truncated": int(self.truncated), "overdraw_removed": int(self.dedupe)}


def _dist_sq_to_segment(q: tuple[float, float, float], a: list[float], b: tuple[float, float, float]) -> float:
    d0, d1, d2 = b[0] - a[0], b[1] - a[1], b[2] - a[2]
    w0, w1, w2 = q[0] - a[0], q[1] - a[1], q[2] - a[2]
    l2 = d0 * d0 + d1 * d1 + d2 * d2
    s = 0.0
    if l2 > 0.0:
        s = min(1.0, max(0.0, (w0 * d0 + w1 * d1 + w2 * d2) / l2))
    e0, e1, e2 = w0 - s * d0, w1 - s * d1, w2 - s * d2
    return e0 * e0 + e1 * e1 + e2 * e2


def _le(values: array) -> bytes:  # type: ignore[type-arg]
    if struct.pack("=I", 1) != struct.pack("<I", 1):  # pragma: no cover - big-endian hosts
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


class Sink:
    """Receives a program's motions from the gate (Python lines here, fast-path lines in C via ``native``)."""

    def __init__(self, tolerance: float, max_vertices: int = MAX_VERTICES, x_scale: float = 1.0,
                 *, pure: bool = False) -> None:
        cls = PyToolpath if pure or _CToolpath is None else _CToolpath
        self.native: Any = cls(tolerance, max_vertices, x_scale)

    def motions(self, motions: list[Motion], flagged: bool) -> None:
        add = self.native.add
        for m in motions:
            if m.kind == "dwell":
                continue
            arc = m.kind == "arc" and m.center is not None
            add(m.kind != "traverse", flagged, m.start, m.end, m.center if arc else None, m.plane, m.sweep,
                m.radius, m.line)


@dataclass
class Toolpath:
    """A built toolpath: the header the browser reads and the three arrays."""

    header: dict[str, Any]
    positions: bytes
    lines: bytes
    kinds: bytes
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def vertices(self) -> int:
        return len(self.kinds)

    def unpack(self) -> tuple[list[tuple[float, ...]], list[int], list[int]]:
        """Points, lines and kinds as Python lists (for tests and tools; the browser reads the arrays)."""
        pos, lines = array("f"), array("I")
        pos.frombytes(self.positions)
        lines.frombytes(self.lines)
        return [tuple(pos[3 * i:3 * i + 3]) for i in range(len(lines))], list(lines), list(self.kinds)

    def encode(self) -> bytes:
        n = self.vertices
        header = dict(self.header, vertices=n, layout={
            "positions": "float32 x,y,z per vertex", "lines": "uint32 per vertex", "kinds": "uint8 per vertex",
            "kind_names": list(KIND_NAMES)})
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 4)
        return b"".join((MAGIC, struct.pack("<II", VERSION, len(text)), text, self.positions, self.lines,
                         self.kinds))


def decode(data: bytes) -> Toolpath:
    """The inverse of :meth:`Toolpath.encode` (tests and tools; the browser has its own reader)."""
    if data[:4] != MAGIC:
        raise ValueError("not a labbridge toolpath")
    version, hlen = struct.unpack_from("<II", data, 4)
    if version != VERSION:
        raise ValueError(f"toolpath format {version}, expected {VERSION}")
    header = json.loads(data[12:12 + hlen])
    n = header["vertices"]
    at = 12 + hlen
    positions = data[at:at + 12 * n]
    lines = data[at + 12 * n:at + 16 * n]
    kinds = data[at + 16 * n:at + 17 * n]
    return Toolpath(header, positions, lines, kinds)


def tolerance_for(bounds: dict[str, dict[str, float]] | None) -> float:
    """The display resolution for a path with these bounds (display units, mm)."""
    if not bounds:
        return 0.01
    extent = max((bounds["max"][a] - bounds["min"][a] for a in bounds["min"]), default=0.0)
    return max(extent, 1.0) / SCREEN_PX


def machine_header(machine_id: str, machine: Machine) -> dict[str, Any]:
    """What the view draws around the path: envelope, keep-out boxes, machine and work zero, the lathe's axis."""
    diameter = machine.is_lathe and machine.diameter_mode
    g54 = machine.offset("G54") if "G54" in machine.work_offsets else (0.0, 0.0, 0.0)
    return {
        "machine": machine_id,
        "machine_name": machine.name,
        "lathe": machine.is_lathe,
        "diameter": diameter,
        "axes": [a for a in _AXES if a in machine.envelope],
        "envelope": {a: list(v) for a, v in machine.envelope.items()},
        "keep_out": [{"name": k.name, "min": dict(k.min), "max": dict(k.max)} for k in machine.keep_out],
        "machine_zero": [0.0, 0.0, 0.0],
        "work_zero": [float(v) for v in g54],
        "home": [float(v) for v in machine.home_position()],
    }


class SmallReads:
    """A binary stream read in small chunks, so a build in a worker thread lets go of the GIL often.

    The gate's C fast path keeps the GIL for a whole chunk; at 64 KiB that is a few milliseconds, short
    enough for the server's event loop to answer others while a million-line program is read."""

    def __init__(self, stream: BinaryIO, size: int = 64 * 1024) -> None:
        self.stream = stream
        self.size = size

    def read(self, n: int = -1) -> bytes:
        return self.stream.read(self.size if n < 0 else min(n, self.size))


def build_toolpath(source: str | Path | bytes | BinaryIO, machine_id: str, machine: Machine,
                   bounds: dict[str, dict[str, float]] | None = None, *, program_name: str = "<program>",
                   max_vertices: int = MAX_VERTICES, tolerance: float | None = None,
                   pure: bool = False) -> Toolpath:
    """Read the program once through the safety gate and keep its path at the display resolution.

    ``bounds`` (the check report's) sets the tolerance; without them the envelope's extent does.
    """
    from labbridge.safety.program import ProgramChecker

    if tolerance is None:
        tolerance = tolerance_for(bounds or _envelope_bounds(machine))
    checker = ProgramChecker(machine_id, machine, program_name, fast=not pure)
    x_scale = 1.0 / checker.interp.x_scale
    sink = Sink(tolerance, max_vertices, x_scale, pure=pure)
    checker.attach_sink(sink)
    if isinstance(source, bytes):
        checker.read(SmallReads(io.BytesIO(source)))
    elif isinstance(source, (str, Path)):
        with open(source, "rb") as fh:
            checker.read(SmallReads(fh))
    else:
        checker.read(SmallReads(source))
    report = checker.finish()
    native = sink.native
    native.finish()
    positions, lines, kinds = native.buffers()
    stats = dict(native.stats())
    flagged = sorted({d.line for d in report.diagnostics if d.severity == "error"})
    header = machine_header(machine_id, machine)
    header.update(program=program_name, lines_total=report.lines, ok=report.ok, bounds=report.bounds,
                  tolerance=stats["tolerance"], points_in=stats["points_in"], coarsened=stats["coarsened"],
                  truncated=bool(stats["truncated"]), flagged_lines=flagged[:5000],
                  estimated_seconds=round(report.estimated_seconds, 3))
    return Toolpath(header, positions, lines, kinds, stats)


def _envelope_bounds(machine: Machine) -> dict[str, dict[str, float]]:
    env = machine.envelope
    return {"min": {a: v[0] for a, v in env.items()}, "max": {a: v[1] for a, v in env.items()}}
