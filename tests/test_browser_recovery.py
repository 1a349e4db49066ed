"""The interrupted-job banner in Debian's Chromium: a record left ``running`` by a process that was killed becomes
``interrupted`` when ``labbridge serve --demo`` starts, and the dashboard shows it above the machine cards with
the machine's state and the operator's actions (stop spindle and coolant, resume from a line, dismiss)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labbridge.streaming.job import Job, JobState
from labbridge.streaming.records import JobStore
from labbridge.streaming.recovery import process_owner
from tests.browser_support import ARTIFACTS, CHROMIUM, LAUNCH_ARGS
from tests.web_support import ROOT, ServerProcess, admin_ready, write_lab_config

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def killed_owner() -> str:
    """The owner string of a real process that was then killed with SIGKILL."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    owner = process_owner(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    return owner


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    config = write_lab_config(tmp_path / "machines.yaml", unreachable=False)
    program = tmp_path / "part.nc"
    program.write_text("G21 G90 G54\nG0 Z5\nM3 S8000\nG0 X0 Y0\nG1 Z-1 F200\nG1 X20 F500\nG0 Z5\nM5\nM30\n")
    with JobStore(tmp_path / "data") as store:
        job = Job("0123456789ab", "mill-1", str(program), "part.nc", "0" * 64, "operator", JobState.RUNNING,
                  lines_total=9, lines_sent=7, lines_acked=6, last_acked_line=6, last_sent_line=7, executed_line=6,
                  started_at=time.time() - 30, owner=killed_owner())
        store.create(job)
    proc = ServerProcess(["serve", "--demo", "--port", "0", "--config", str(config), "--data-dir",
                          str(tmp_path / "data"), "--log-level", "warning"], cwd=ROOT)
    try:
        yield proc
    finally:
        proc.stop()


def test_the_banner_shows_the_interruption_and_its_actions(server: ServerProcess) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            page: Any = browser.new_context().new_page()
            page.set_default_timeout(30_000)
            page.goto(server.url + "/")
            page.fill("#login-form input[name=username]", "admin")
            page.fill("#login-form input[name=password]", admin_ready(server))
            page.click("#login-form button[type=submit]")
            banner = page.wait_for_selector('.interruption[data-machine="mill-1"]')
            text = banner.text_content()
            assert "mill-1: the last job was interrupted — part.nc" in text
            assert "the bridge stopped at" in text and "executed line 6" in text
            assert page.input_value(".interruption .resume-line") == "6"  # the line the machine reached
            page.wait_for_selector(".interruption-now:has-text('Now: ')")
            for button in ("Stop spindle and coolant", "Resume", "Dismiss"):
                assert page.is_visible(f".interruption button:has-text('{button}')")
            page.screenshot(path=str(ARTIFACTS / "dashboard-interrupted-job.png"), full_page=True)
            page.click(".interruption button.dismiss")
            page.wait_for_selector('.interruption[data-machine="mill-1"]', state="detached")
        finally:
            browser.close()
