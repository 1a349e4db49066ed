"""Spindle-drive profiles: named Modbus register maps in ``config/profiles/*.yaml``.

A machine's ``connection.modbus.profile`` names one; its own ``map`` entries override the profile's. Reading
these files (and ``$LABBRIDGE_PROFILES``) is configuration, so it lives here, beside ``config``, and the
register codec (:mod:`labbridge.protocols.modbus_registers`) stays free of I/O.

May import ``labbridge.config`` and ``labbridge.errors``.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from labbridge.config import ModbusConnection, RegisterField
from labbridge.errors import ConfigError

INSTALLED = Path(__file__).resolve().parents[1] / "config" / "profiles"


def profile_dirs() -> list[Path]:
    """Where ``profile:`` names are looked up: $LABBRIDGE_PROFILES, ./config/profiles, the install's."""
    dirs = []
    if env := os.environ.get("LABBRIDGE_PROFILES"):
        dirs.append(Path(env))
    dirs.append(Path("config/profiles"))
    dirs.append(INSTALLED)
    return dirs


def available_profiles() -> list[str]:
    names = {p.stem for d in profile_dirs() if d.is_dir() for p in d.glob("*.yaml")}
    return sorted(names)


def load_profile(name: str) -> dict[str, RegisterField]:
    """The register map of profile ``name``; ConfigError naming the known profiles if there is none."""
    for directory in profile_dirs():
        path = directory / f"{name}.yaml"
        if path.is_file():
            break
    else:
        known = ", ".join(available_profiles()) or "none found"
        raise ConfigError(f"Modbus profile {name!r} not found; available: {known} (config/profiles/*.yaml)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return {key: RegisterField.model_validate(value) for key, value in (data.get("map") or {}).items()}
    except (yaml.YAMLError, ValidationError, AttributeError, OSError) as exc:
        raise ConfigError(f"{path}: invalid profile: {exc}") from None


def merged_map(modbus: ModbusConnection) -> dict[str, RegisterField]:
    """The profile's map (if any) overlaid with the machine's own entries."""
    fields: dict[str, RegisterField] = {}
    if modbus.profile:
        fields.update(load_profile(modbus.profile))
    fields.update(modbus.map)
    return fields
