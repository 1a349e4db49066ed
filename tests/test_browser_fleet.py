"""Both fleet dashboards in Debian's Chromium: the lab shows its link and a pending settings change the
operator refuses; headquarters lists the lab and asks it for a machine's diagnostics. Screenshots in test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.fleet_support import Broker, lab_data
from tests.test_browser_dashboard import ARTIFACTS, CHROMIUM, LAUNCH_ARGS
from tests.web_support import ROOT, ServerProcess, admin_ready, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess, Any]]:
    """A broker, headquarters, one lab (``serve``) and Chromium."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("browser-fleet")
    broker = Broker(tmp / "broker")
    (tmp / "hq.yaml").write_text(yaml.safe_dump({"fleet": {"broker": broker.url, "username": "hq"}}))
    (tmp / "lab.yaml").write_text(yaml.safe_dump(lab_data(broker.url)))
    started = []
    try:
        for args in (["fleet", "--config", str(tmp / "hq.yaml"), "--data-dir", str(tmp / "hq")],
                     ["serve", "--config", str(tmp / "lab.yaml"), "--data-dir", str(tmp / "lab")]):
            started.append(ServerProcess([*args, "--port", "0"], cwd=ROOT))
        ARTIFACTS.mkdir(exist_ok=True)
        with sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
            yield started[1], started[0], chromium
            chromium.close()
    finally:
        for server in started:
            server.stop()
        broker.stop()


def open_signed_in(browser: Any, server: ServerProcess) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    page.goto(server.url + "/")
    page.fill("#login-form input[name=username]", "admin")
    page.fill("#login-form input[name=password]", admin_ready(server))
    page.click("#login-form button[type=submit]")
    return page


def test_headquarters_lists_the_lab_and_asks_it_for_diagnostics(fleet: Any) -> None:
    _lab, hq, browser = fleet
    page = open_signed_in(browser, hq)
    page.wait_for_selector('section.lab[data-lab="truck-1"] .card[data-machine="lathe-1"]')
    assert "online" in page.text_content('section.lab[data-lab="truck-1"] h2')
    page.screenshot(path=str(ARTIFACTS / "fleet-hq-labs.png"))
    page.click('.card[data-machine="lathe-1"] header a')
    page.click("#m-actions button[data-kind=diagnostics]")
    page.wait_for_selector("#m-answer")
    assert '"machine": "lathe-1"' in page.text_content("#m-answer")
    page.fill("#change-form input[name=key]", "$110")
    page.fill("#change-form input[name=value]", "1800")
    page.fill("#change-form input[name=reason]", "X rapids feel slow")
    page.click("#change-form button[type=submit]")
    page.wait_for_selector("#m-status:has-text('settings-change: answered')")
    page.screenshot(path=str(ARTIFACTS / "fleet-hq-machine.png"))
    assert page.errors == []


def test_the_lab_shows_its_link_and_the_operator_refuses_the_change(fleet: Any) -> None:
    lab, hq, browser = fleet
    with httpx.Client(base_url=hq.url, timeout=60) as client:
        token = client.post("/api/auth/login", json={"username": "admin", "password": admin_ready(hq)}).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        wait_for(lambda: [x for x in client.get("/api/fleet/labs", headers=auth).json() if x["online"]], 60,
                 what="the lab at headquarters")
        r = client.post("/api/fleet/labs/truck-1/machines/mill-1/requests", headers=auth,
                        json={"kind": "settings-change", "args": {"key": "$111", "value": "1700", "reason": "Y"}})
        assert r.status_code == 200 and r.json()["ok"], r.text
    page = open_signed_in(browser, lab)
    page.wait_for_selector("#fleet-link:has-text('HQ link: connected')")
    item = page.wait_for_selector("#fleet-approvals li:has-text('$111 = 1700')")
    assert "asked by hq:admin" in item.text_content()
    page.screenshot(path=str(ARTIFACTS / "fleet-lab-approval.png"))
    item.query_selector("button.refuse").click()
    page.wait_for_selector("#fleet-approvals li:has-text('$111 = 1700')", state="detached")
    assert page.errors == []
