"""What every browser test shares: Debian's Chromium, how it is launched, where screenshots go, and one
module-scoped ``browser`` fixture.

The fixture asks for ``server``, which each test module defines for itself (or imports): pytest resolves it in
the requesting module, so the module's own server is up before Chromium starts and still up when it closes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.web_support import ROOT, ServerProcess

CHROMIUM = os.environ.get("LABBRIDGE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--no-first-run", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser(server: ServerProcess) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()
