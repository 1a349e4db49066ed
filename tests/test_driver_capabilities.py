"""Drivers declare what they can do through capability protocols; the server asks those, never getattr.

GRBL can hold, resume, home, unlock, reset, jog, override, read and write settings and stream line by line;
a Fanuc-style control over Modbus/OPC UA can hold and take programs by DNC, nothing more. The dashboard's
buttons come from the same protocols, and a command the driver lacks is refused with a reason.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labbridge.config import load_config
from labbridge.drivers.base import (
    Driver, HasDiagnostics, HasSettings, Holds, Homes, Jogs, Overrides, Polls, Resets, Resumes, Streams, StreamsLines,
    Unlocks, capabilities,
)
from labbridge.drivers.fanuc import FanucDriver
from labbridge.drivers.grbl import GrblDriver
from labbridge.server.lab import CommandError, Lab

ROOT = Path(__file__).resolve().parents[1]
CONFIG = load_config(ROOT / "config" / "machines.yaml")
EVERYTHING = (Driver, Holds, Polls, Resumes, Homes, Unlocks, Resets, Jogs, Overrides, HasSettings, HasDiagnostics,
              Streams, StreamsLines)


def has(driver: object) -> set[str]:
    return {p.__name__ for p in EVERYTHING if isinstance(driver, p)}


def test_grbl_driver_capabilities() -> None:
    driver = GrblDriver("mill-1", CONFIG.machine("mill-1"), port="/nonexistent/tty")
    assert has(driver) == {p.__name__ for p in EVERYTHING} - {"Streams"}
    assert capabilities(driver) == ["feed_hold", "cycle_start", "home", "unlock", "soft_reset", "jog", "jog_cancel",
                                    "override", "read_settings", "write_setting"]
    assert driver.reconnects is True
    assert driver.diagnostics()["build_info"] is None  # nothing read from the controller yet


def test_fanuc_driver_capabilities() -> None:
    driver = FanucDriver("lathe-1", CONFIG.machine("lathe-1"))
    assert has(driver) == {"Driver", "Holds", "HasDiagnostics", "Streams"}
    assert capabilities(driver) == ["feed_hold", "stream"]
    link = driver.diagnostics()["link"]
    assert link["dnc_port"] == CONFIG.machine("lathe-1").connection.dnc.port  # type: ignore[union-attr]


def test_no_driver_no_capabilities() -> None:
    assert capabilities(None) == []
    assert not isinstance(object(), Driver)


async def test_lab_refuses_what_the_driver_cannot_do(tmp_path: Path) -> None:
    from labbridge.server.store import Store

    store = Store(tmp_path)
    try:
        lab = Lab(CONFIG, store)
        await lab.prepare()  # drivers built, nothing connected
        with pytest.raises(CommandError, match="lathe-1 is not connected"):
            await lab.jog("lathe-1", {"X": 1.0}, 100.0, True)
        lathe = lab.runtime("lathe-1")
        assert isinstance(lathe.driver, FanucDriver)
        lathe.state.update(connected=True)  # as if its Modbus link were up
        attempts = {"jog": lambda: lab.jog("lathe-1", {"X": 1.0}, 100.0, True), "home": lambda: lab.home("lathe-1"),
                    "read settings": lambda: lab.read_settings("lathe-1"),
                    "override": lambda: lab.set_override("lathe-1", "feed", 120)}
        for what, attempt in attempts.items():
            with pytest.raises(CommandError, match=f"the fanuc-lathe driver has no {what}"):
                await attempt()
        assert lab.diagnostics("lathe-1")["settings"] is None  # no HasSettings: nothing to show
    finally:
        store.close()


def test_server_asks_protocols_not_attributes() -> None:
    """No getattr/hasattr/callable probing of drivers left in the server."""
    probe = re.compile(r"(getattr|hasattr)\([^)]*driver|callable\(getattr")
    for path in (ROOT / "labbridge" / "server").rglob("*.py"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not probe.search(line), f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
