"""Both fleet dashboards in Debian's Chromium: the lab shows its link and a pending settings change the
operator refuses; headquarters lists the lab and asks it for a machine's diagnostics, and its first sign-in
with the printed one-time password asks for a new one. Screenshots in test-artifacts/."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.browser_support import ARTIFACTS, CHROMIUM, LAUNCH_ARGS
from labbridge.fleet import topics
from tests.fleet_support import Broker, lab_data, pub
from tests.web_support import ADMIN_PASSWORD, ROOT, ServerProcess, admin_ready, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    running = Broker(tmp_path_factory.mktemp("browser-fleet-broker"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def fleet(broker: Broker,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess, Any]]:
    """Headquarters, one lab (``serve``) on the broker, and Chromium."""
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("browser-fleet")
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


def open_page(browser: Any, server: ServerProcess) -> Any:
    """A page under the server's own CSP (no bypass), collecting script errors in ``page.errors``."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    page.goto(server.url + "/")
    return page


def submit_sign_in(page: Any, user: str, password: str) -> None:
    page.fill("#login-form input[name=username]", user)
    page.fill("#login-form input[name=password]", password)
    page.click("#login-form button[type=submit]")


def open_signed_in(browser: Any, server: ServerProcess) -> Any:
    page = open_page(browser, server)
    submit_sign_in(page, "admin", admin_ready(server))
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


def choose(page: Any, password: str, repeat: str | None = None) -> None:
    page.fill("#first-password-form input[name=password]", password)
    page.fill("#first-password-form input[name=repeat]", password if repeat is None else repeat)
    page.click("#first-password-form button[type=submit]")


def test_headquarters_first_sign_in_asks_for_a_new_password(fleet: Any, broker: Broker, tmp_path: Path) -> None:
    """A fresh ``labbridge fleet``: the one-time password leads to the password form, not to a page of 403s."""
    _lab, _hq, browser = fleet
    (tmp_path / "hq.yaml").write_text(yaml.safe_dump({"fleet": {"broker": broker.url, "username": "hq-fresh"}}))
    hq = ServerProcess(["fleet", "--port", "0", "--config", str(tmp_path / "hq.yaml"), "--data-dir",
                        str(tmp_path / "hq")], cwd=ROOT)
    try:
        assert hq.password, "the one-time admin password was not printed"
        page = open_page(browser, hq)
        submit_sign_in(page, "admin", hq.password)
        page.wait_for_selector("#first-password-form", state="visible")
        assert page.is_hidden("#topbar") and page.is_hidden("#view-labs")
        assert page.evaluate("sessionStorage.getItem('hq.token')") is None, "a password-only token is not kept"
        choose(page, "silver lathe 42", "silver lathe 43")
        page.wait_for_selector("#first-password-error:has-text('The two passwords differ')")
        choose(page, "Password1!")
        page.wait_for_selector("#first-password-error:has-text('one of the most common passwords')")
        choose(page, "admin is here 2026")
        page.wait_for_selector("#first-password-error:has-text('must not contain the user name')")
        page.screenshot(path=str(ARTIFACTS / "fleet-hq-first-password-refused.png"))
        assert page.is_visible("#first-password-form") and page.is_hidden("#view-labs")
        choose(page, ADMIN_PASSWORD)
        page.wait_for_selector('section.lab[data-lab="truck-1"] .card[data-machine="mill-1"]')
        assert page.text_content("#whoami") == "admin (admin)" and page.is_hidden("#view-first-password")
        page.screenshot(path=str(ARTIFACTS / "fleet-hq-first-password-done.png"))
        page.reload()  # the full token is kept for the tab: still signed in
        page.wait_for_selector('section.lab[data-lab="truck-1"] .card[data-machine="mill-1"]')
        assert page.errors == []
        with httpx.Client(base_url=hq.url, timeout=60) as client:
            once = client.post("/api/auth/login", json={"username": "admin", "password": hq.password})
            assert once.status_code == 401, "the one-time password works once"
            r = client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
            assert r.status_code == 200 and not r.json()["must_change_password"], r.text
            audit = client.get("/api/audit?limit=50", headers={"Authorization": f"Bearer {r.json()['token']}"}).json()
        outcomes = [a["outcome"] for a in audit if a["action"] == "password.change"]
        assert sorted(outcomes) == ["ok", "refused", "refused"], outcomes
    finally:
        hq.stop()


def test_a_labs_page_shows_its_active_alarms_recent_events_and_jobs(fleet: Any, broker: Broker) -> None:
    """Issue 10's lab page: active alarms, recent events and jobs of one lab, kept live; lab text stays text."""
    _lab, hq, browser = fleet
    lab, now = "truck-7", time.time()
    alarm = {"code": "ALARM:1", "message": "<b>hard limit</b>", "time": now, "source": "grbl"}

    def state(alarms: list[dict[str, Any]]) -> str:
        return json.dumps({"machine": "mill-7", "connected": True, "state": "Alarm" if alarms else "Idle",
                           "alarms": alarms, "updated_at": time.time()})

    def event(seq: int, kind: str, **extra: Any) -> None:
        pub(broker, topics.events_topic(lab), json.dumps({"seq": seq, "time": now + seq, "machine": "mill-7",
                                                           "kind": kind, **extra}))

    status = {"online": True, "lab": lab, "name": "InfoMobil truck 7", "version": "0.1.0", "machines": ["mill-7"],
              "since": now - 60}
    pub(broker, topics.status_topic(lab), json.dumps(status))
    pub(broker, topics.state_topic(lab, "mill-7"), state([alarm]))
    event(1, "alarm.raised", code="ALARM:1", message="<b>hard limit</b>")
    event(2, "job.started", job_id="j7", program="bracket.nc", lines_total=40)
    event(3, "job.finished", job_id="j7", outcome="done", line=40, message="")
    page = open_signed_in(browser, hq)
    page.click(f'section.lab[data-lab="{lab}"] h2 a.lab-link')
    page.wait_for_selector("#l-alarms li:has-text('mill-7: ALARM:1')")
    assert page.text_content("#l-title") == "InfoMobil truck 7 (truck-7)"
    assert page.text_content("#l-status").startswith("online since")
    assert "<b>hard limit</b>" in page.text_content("#l-alarms li") and page.is_hidden("#l-no-alarms")
    page.wait_for_selector("#l-events tr.ev-alarm-raised:has-text('ALARM:1')")
    page.wait_for_selector("#l-jobs tr:has-text('bracket.nc'):has-text('done')")
    page.screenshot(path=str(ARTIFACTS / "fleet-hq-lab.png"), full_page=True)
    event(4, "job.started", job_id="j8", program="second.nc", lines_total=10)  # arrives while the page is open
    page.wait_for_selector("#l-jobs tr:has-text('second.nc'):has-text('running')")
    page.wait_for_selector("#l-events tr.ev-job-started:has-text('second.nc')")
    pub(broker, topics.state_topic(lab, "mill-7"), state([]))
    page.wait_for_selector("#l-no-alarms", state="visible")
    assert page.query_selector_all("#l-alarms li") == []
    pub(broker, topics.status_topic(lab), json.dumps({**status, "online": False}))
    page.wait_for_selector("#l-status:has-text('offline since')")
    assert page.errors == []
