"""GRBL settings as a technician reads them: each ``$n`` named, and where they disagree with the config."""

from __future__ import annotations

from typing import Any

from labbridge.config import Machine
from labbridge.protocols.grbl_codes import SETTINGS


def describe(settings: dict[int, float]) -> dict[str, dict[str, Any]]:
    """Each ``$n`` with its value, GRBL's name for it and its unit."""
    return {str(n): {"value": v, "name": SETTINGS.get(n, ("unknown", ""))[0], "unit": SETTINGS.get(n, ("", ""))[1]}
            for n, v in sorted(settings.items())}


def mismatches(settings: dict[int, float], machine: Machine) -> list[str]:
    """Warnings for technicians where the controller's settings disagree with config/machines.yaml."""
    s, m, out = settings, machine, []
    for i, axis in enumerate("XYZ"):
        if axis not in m.envelope:
            continue
        low, high = m.envelope[axis]
        span = high - low
        travel = s.get(130 + i)
        if travel is not None and abs(travel - span) > 0.5:
            out.append(f"${130 + i} ({axis} max travel) is {travel:g} mm but the config's envelope spans "
                       f"{span:g} mm ({low:g}..{high:g}): soft limits and homing use ${130 + i}")
        rate = s.get(110 + i)
        expected = m.rapid(axis)
        if rate is not None and abs(rate - expected) > max(1.0, 0.01 * expected):
            out.append(f"${110 + i} ({axis} max rate) is {rate:g} mm/min but the config says {expected:g} mm/min "
                       f"(rapid_rate/max_feed): estimates and checks assume the config's value")
    rpm = s.get(30)
    if rpm is not None and abs(rpm - m.spindle.max_rpm) > 0.5:
        out.append(f"$30 (max spindle speed) is {rpm:g} rpm but the config's spindle.max_rpm is "
                   f"{m.spindle.max_rpm:g}: S words map to a different spindle speed than checked")
    homing = s.get(22)
    if homing is not None and bool(homing) != m.homing_required:
        out.append(f"$22 (homing) is {'on' if homing else 'off'} but the config has homing_required: "
                   f"{'true' if m.homing_required else 'false'}")
    soft = s.get(20)
    if soft is not None and not soft:
        out.append("$20 (soft limits) is off: GRBL will not stop a move beyond its travel; only labbridge's "
                   "check does")
    return out
