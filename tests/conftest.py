"""Shared fixtures: the shipped lab config and helpers to build machine configs for tests."""

from __future__ import annotations

import asyncio
import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from labbridge.config import LabConfig, Machine, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
CONFIG_PATH = ROOT / "config" / "machines.yaml"
EXAMPLES = ROOT / "examples"
TRACES = ROOT / "tests" / "traces"

# Tests read English messages unless they choose a language themselves: the computer's own locale (LANG=de_DE...)
# must not change what the CLI subprocesses print.
os.environ["LABBRIDGE_LANG"] = "en"


@pytest.fixture(scope="session")
def lab() -> LabConfig:
    return load_config(CONFIG_PATH)


@pytest.fixture(scope="session")
def raw_config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG_PATH.read_text())


def make_machine(**overrides: Any) -> Machine:
    """A plain 3-axis GRBL test mill: envelope 0..100 on X/Y, -50..0 on Z, no offsets, no keep-out."""
    data: dict[str, Any] = {
        "name": "test mill",
        "controller": "grbl",
        "envelope": {"X": [0, 100], "Y": [0, 100], "Z": [-50, 0]},
        "spindle": {"max_rpm": 10000},
        "max_feed": 1000,
    }
    for key, value in overrides.items():
        data[key] = value
    return parse_config({"machines": {"t": copy.deepcopy(data)}}, "test").machines["t"]


async def wait_for(condition: Callable[[], object], timeout: float = 20.0) -> None:
    """Poll ``condition`` every 20 ms until it holds; fail the test if it does not within ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)
