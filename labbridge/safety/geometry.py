"""The one arc kernel, and box geometry, for the safety gate and everything that draws or runs its motions.

Every arc in labbridge goes through these functions: the interpreter (centre from
R, signed sweep), the checks (true extremes), the run-time estimator and the GRBL
simulator (GRBL's own chord segmentation), and the dashboard's preview (points
along the path). The C fast path (_fastcheck.c) uses the same formulas under the
same names, and a differential test holds the two together.

Conventions: ``plane`` is (a, b, n), indices into (X, Y, Z) of the plane's first
and second axes and of its normal (the helical axis). ``sweep`` is the signed
angle in radians from start to end around the centre: positive counter-clockwise
(G3), negative clockwise (G2), as GRBL's mc_arc computes ``angular_travel``.
Arcs are bounded by their true extremes: a quarter circle crossing the +a
direction reaches centre.a + radius although neither end point does.
"""

from __future__ import annotations

import math

from labbridge.safety.motion import Motion, Vec

TWO_PI = 2.0 * math.pi
ARC_ANGULAR_TRAVEL_EPSILON = 5e-7  # GRBL's own tolerance for "end == start means a full circle"
MAX_ARC_POINTS = 100_000  # points per arc at most, whatever the tolerance asks for


def arc_center_offset(dx: float, dy: float, radius: float, clockwise: bool) -> tuple[float, float] | None:
    """Centre of an R arc as an offset (i, j) from its start, by GRBL's formula (gcode.c, radius mode).

    ``dx, dy`` go from start to end in the plane. A negative radius asks for the arc over 180 degrees.
    None when no such circle exists: the chord is longer than the diameter, or start and end are the same
    point in the plane (GRBL then divides by zero and runs on a NaN centre)."""
    h_x2_div_d = 4.0 * radius * radius - dx * dx - dy * dy
    chord = math.hypot(dx, dy)
    if h_x2_div_d < 0.0 or chord == 0.0 or not math.isfinite(h_x2_div_d):
        return None
    h_x2_div_d = -math.sqrt(h_x2_div_d) / chord
    if not clockwise:
        h_x2_div_d = -h_x2_div_d
    if radius < 0.0:
        h_x2_div_d = -h_x2_div_d
    i = 0.5 * (dx - dy * h_x2_div_d)
    j = 0.5 * (dy + dx * h_x2_div_d)
    if not (math.isfinite(i) and math.isfinite(j)):
        return None
    return i, j


def arc_sweep(start: Vec, end: Vec, center: Vec, plane: tuple[int, int, int], clockwise: bool) -> float:
    """Signed angle travelled from start to end around centre, as GRBL's mc_arc computes it."""
    a, b, _ = plane
    ra, rb = start[a] - center[a], start[b] - center[b]
    ta, tb = end[a] - center[a], end[b] - center[b]
    travel = math.atan2(ra * tb - rb * ta, ra * ta + rb * tb)
    if clockwise:
        if travel >= -ARC_ANGULAR_TRAVEL_EPSILON:
            travel -= TWO_PI
    elif travel <= ARC_ANGULAR_TRAVEL_EPSILON:
        travel += TWO_PI
    return travel


def arc_length(radius: float, sweep: float, linear: float = 0.0) -> float:
    """Length of a (helical) arc: the circle part and the travel along the normal axis."""
    return math.hypot(abs(sweep) * radius, linear)


def _cardinals_crossed(start_angle: float, sweep: float) -> list[tuple[float, int]]:
    """(fraction of the sweep, k) for each axis direction k*pi/2 the arc passes, in order of travel."""
    out = []
    full = abs(sweep) >= TWO_PI - 1e-12
    for k in range(4):
        cardinal = k * (math.pi / 2.0)
        delta = (cardinal - start_angle) % TWO_PI if sweep > 0 else (start_angle - cardinal) % TWO_PI
        if full or delta <= abs(sweep):
            out.append((min(delta / abs(sweep), 1.0) if sweep else 0.0, k))
    return sorted(out)


def arc_bounds(start: Vec, end: Vec, center: Vec, plane: tuple[int, int, int], radius: float,
               sweep: float) -> tuple[list[float], list[float]]:
    """Per-axis (min, max) of an arc's swept path, including the helical axis."""
    a, b, _ = plane
    lo = [min(start[i], end[i]) for i in range(3)]
    hi = [max(start[i], end[i]) for i in range(3)]
    start_angle = math.atan2(start[b] - center[b], start[a] - center[a])
    for _, k in _cardinals_crossed(start_angle, sweep):
        if k == 0:
            hi[a] = max(hi[a], center[a] + radius)
        elif k == 1:
            hi[b] = max(hi[b], center[b] + radius)
        elif k == 2:
            lo[a] = min(lo[a], center[a] - radius)
        else:
            lo[b] = min(lo[b], center[b] - radius)
    return lo, hi


def arc_extremes(m: Motion) -> tuple[list[float], list[float]]:
    """Per-axis (min, max) of an arc motion's swept path."""
    assert m.center is not None
    return arc_bounds(m.start, m.end, m.center, m.plane, m.radius, m.sweep)


def grbl_arc_segments(sweep: float, radius: float, tolerance: float) -> int:
    """How many chords GRBL's mc_arc cuts an arc into for arc tolerance ``$12`` (0 or 1: one straight line)."""
    denominator = math.sqrt(tolerance * (2.0 * radius - tolerance)) if 2.0 * radius > tolerance > 0.0 else 0.0
    if denominator <= 0.0:
        return 0
    segments = math.floor(abs(0.5 * sweep * radius) / denominator)
    return int(min(segments, 65535))  # uint16_t in the firmware


def arc_path(start: Vec, end: Vec, center: Vec, plane: tuple[int, int, int], sweep: float,
             segments: int) -> list[Vec]:
    """End points of ``segments`` equal chords from start to end (start excluded, end exact), as mc_arc places
    them: the start's radius vector rotated by equal angles, the normal axis moving linearly."""
    a, b, n = plane
    if segments <= 1:
        return [end]
    ra, rb = start[a] - center[a], start[b] - center[b]
    step = sweep / segments
    linear = (end[n] - start[n]) / segments
    points: list[Vec] = []
    for i in range(1, segments):
        c, s = math.cos(i * step), math.sin(i * step)
        p = [0.0, 0.0, 0.0]
        p[a] = center[a] + ra * c - rb * s
        p[b] = center[b] + ra * s + rb * c
        p[n] = start[n] + linear * i
        points.append((p[0], p[1], p[2]))
    points.append(end)
    return points


def arc_points(m: Motion, tolerance: float = 0.01) -> list[Vec]:
    """Points along an arc motion, start and end included, whose chords stay within ``tolerance`` of it, plus
    the points where it crosses an axis direction, so the polyline reaches the arc's true extremes."""
    assert m.center is not None
    a, b, n = m.plane
    r = max(m.radius, 1e-9)
    # Chord sagitta s = r (1 - cos(theta/2)) <= tolerance.
    theta = 2.0 * math.acos(1.0 - tolerance / r) if tolerance < r else math.pi / 2.0
    steps = min(max(2, math.ceil(abs(m.sweep) / theta)), MAX_ARC_POINTS)
    start_angle = math.atan2(m.start[b] - m.center[b], m.start[a] - m.center[a])
    fractions = sorted({i / steps for i in range(1, steps)} |
                       {f for f, _ in _cardinals_crossed(start_angle, m.sweep) if 0.0 < f < 1.0})
    ra, rb = m.start[a] - m.center[a], m.start[b] - m.center[b]
    linear = m.end[n] - m.start[n]
    pts: list[Vec] = [m.start]
    for f in fractions:
        c, s = math.cos(m.sweep * f), math.sin(m.sweep * f)
        p = [0.0, 0.0, 0.0]
        p[a] = m.center[a] + ra * c - rb * s
        p[b] = m.center[b] + ra * s + rb * c
        p[n] = m.start[n] + linear * f
        pts.append((p[0], p[1], p[2]))
    pts.append(m.end)
    return pts


def segment_hits_box(p0: Vec, p1: Vec, lo: Vec, hi: Vec) -> bool:
    """True if the segment p0→p1 passes through the open interior of the box [lo, hi] (slab test)."""
    t0, t1 = 0.0, 1.0
    eps = 1e-9
    for i in range(3):
        d = p1[i] - p0[i]
        if abs(d) < 1e-15:
            if p0[i] <= lo[i] + eps or p0[i] >= hi[i] - eps:
                return False
            continue
        ta = (lo[i] - p0[i]) / d
        tb = (hi[i] - p0[i]) / d
        if ta > tb:
            ta, tb = tb, ta
        t0 = max(t0, ta)
        t1 = min(t1, tb)
        if t1 - t0 <= eps:
            return False
    return True


def motion_hits_box(m: Motion, lo: Vec, hi: Vec) -> bool:
    """Whether a motion's swept path enters the box (arcs tested chord by chord)."""
    if m.kind == "arc":
        mlo, mhi = arc_extremes(m)
        if any(mhi[i] <= lo[i] or mlo[i] >= hi[i] for i in range(3)):
            return False
        # Chords lie inside the arc by at most the tolerance, so test them against the box grown by it:
        # never misses a real hit, at worst flags an arc passing within 0.01 mm of the box.
        tol = 0.01
        grown_lo = (lo[0] - tol, lo[1] - tol, lo[2] - tol)
        grown_hi = (hi[0] + tol, hi[1] + tol, hi[2] + tol)
        pts = arc_points(m, tol)
        return any(segment_hits_box(pts[i], pts[i + 1], grown_lo, grown_hi) for i in range(len(pts) - 1))
    return segment_hits_box(m.start, m.end, lo, hi)


def distance_to_motion(m: Motion, p: Vec) -> float:
    """How far ``p`` lies from a motion's path (a segment, or a helical arc); where a machine could be on it."""
    if m.kind == "arc" and m.center is not None:
        return _distance_to_arc(m, p)
    a, b = m.start, m.end
    d = (b[0] - a[0], b[1] - a[1], b[2] - a[2])
    length2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    t = 0.0
    if length2 > 1e-18:
        t = ((p[0] - a[0]) * d[0] + (p[1] - a[1]) * d[1] + (p[2] - a[2]) * d[2]) / length2
        t = min(1.0, max(0.0, t))
    return math.dist(p, (a[0] + t * d[0], a[1] + t * d[1], a[2] + t * d[2]))


def _distance_to_arc(m: Motion, p: Vec) -> float:
    assert m.center is not None
    a, b, n = m.plane
    c = m.center
    sweep = m.sweep
    start_angle = math.atan2(m.start[b] - c[b], m.start[a] - c[a])
    angle = math.atan2(p[b] - c[b], p[a] - c[a])
    travelled = ((angle - start_angle) if sweep > 0 else (start_angle - angle)) % TWO_PI
    ends = min(math.dist(p, m.start), math.dist(p, m.end))
    if travelled > abs(sweep) and abs(sweep) < TWO_PI:
        return ends  # beyond the arc's ends: the nearest end point
    turns = max(1, int(abs(sweep) // TWO_PI) + 1)
    radial = abs(math.hypot(p[a] - c[a], p[b] - c[b]) - m.radius)
    best = ends
    for k in range(turns):  # a helix of several turns passes this angle once per turn
        fraction = (travelled + k * TWO_PI) / abs(sweep) if sweep else 0.0
        if fraction > 1.0:
            break
        along = m.start[n] + (m.end[n] - m.start[n]) * fraction
        best = min(best, math.hypot(radial, p[n] - along))
    return best
