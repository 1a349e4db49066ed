"""Arc and box geometry for the safety gate.

Arcs are bounded by their true extremes: a quarter-circle that crosses the +X
direction reaches centre.x + radius even though neither end point does. The
extremes are the end points plus every axis-aligned direction the sweep passes.
"""

from __future__ import annotations

import math

from labbridge.safety.motion import Motion, Vec

TWO_PI = 2.0 * math.pi
ARC_ANGULAR_TRAVEL_EPSILON = 5e-7  # GRBL's own tolerance for "end == start means a full circle"


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


def arc_extremes(m: Motion) -> tuple[list[float], list[float]]:
    """Per-axis (min, max) of an arc's swept path, including the helical axis."""
    start, end, center = m.start, m.end, m.center
    assert center is not None
    a, b, n = m.plane
    lo = [min(start[i], end[i]) for i in range(3)]
    hi = [max(start[i], end[i]) for i in range(3)]
    r = m.radius
    sweep = m.sweep
    start_angle = math.atan2(start[b] - center[b], start[a] - center[a])
    full = abs(sweep) >= TWO_PI - 1e-12
    # Cardinal directions: +a (0), +b (pi/2), -a (pi), -b (3pi/2).
    for k in range(4):
        cardinal = k * (math.pi / 2.0)
        if not full:
            if sweep > 0:
                delta = (cardinal - start_angle) % TWO_PI
            else:
                delta = (start_angle - cardinal) % TWO_PI
            if delta > abs(sweep):
                continue
        if k == 0:
            hi[a] = max(hi[a], center[a] + r)
        elif k == 1:
            hi[b] = max(hi[b], center[b] + r)
        elif k == 2:
            lo[a] = min(lo[a], center[a] - r)
        else:
            lo[b] = min(lo[b], center[b] - r)
    return lo, hi


def arc_points(m: Motion, tolerance: float = 0.01) -> list[Vec]:
    """Points along an arc whose chords deviate from it by at most ``tolerance`` (start and end included)."""
    assert m.center is not None
    a, b, n = m.plane
    r = max(m.radius, 1e-9)
    sweep = m.sweep
    # Chord sagitta s = r (1 - cos(theta/2)) <= tolerance.
    if tolerance >= r:
        steps = 4
    else:
        theta = 2.0 * math.acos(1.0 - tolerance / r)
        steps = max(2, int(math.ceil(abs(sweep) / theta)))
    steps = min(steps, 100_000)
    start_angle = math.atan2(m.start[b] - m.center[b], m.start[a] - m.center[a])
    linear_start, linear_delta = m.start[n], m.end[n] - m.start[n]
    pts: list[Vec] = []
    for i in range(steps + 1):
        t = i / steps
        if i == steps:
            pts.append(m.end)
            break
        angle = start_angle + sweep * t
        p = [0.0, 0.0, 0.0]
        p[a] = m.center[a] + r * math.cos(angle)
        p[b] = m.center[b] + r * math.sin(angle)
        p[n] = linear_start + linear_delta * t
        pts.append((p[0], p[1], p[2]))
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
