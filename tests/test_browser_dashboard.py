"""The dashboard in Debian's Chromium (Playwright), against ``labbridge serve --demo`` on a simulated GRBL.

Covers the issue's proof: sign in; watch the readout change while a job runs; hold
it and see Hold; upload a program that leaves the envelope and see the error on its
line and in red in the preview; a viewer on a phone sees state but no controls.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser_support import ARTIFACTS, CHROMIUM, browser  # noqa: F401 (fixture)
from tests.web_support import ADMIN_PASSWORD, ROOT, ServerProcess, admin_first_sign_in, password_of, write_lab_config

pytestmark = [pytest.mark.browser, pytest.mark.slow]


JOB = "\n".join(
    ["G21 G90 G54", "G0 Z5", "G0 X0 Y0", "M3 S9000", "G1 Z-0.5 F200"]
    + [f"G1 X{60 if i % 2 == 0 else 0} Y{i * 2} F500" for i in range(1, 40)]
    + ["G0 Z5", "M5", "M30"]
) + "\n"
OUTSIDE = "G21 G90 G54\nG0 Z5\nG0 X10 Y10\nG1 X-120 Y10 F300\nG0 X10\nM30\n"  # line 4 leaves the envelope


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    tmp = tmp_path_factory.mktemp("browser")
    config = write_lab_config(tmp / "machines.yaml", unreachable=False)
    proc = ServerProcess(["serve", "--demo", "--port", "0", "--config", str(config), "--data-dir", str(tmp / "data"),
                          "--poll-hz", "10", "--log-level", "warning"], cwd=ROOT)
    try:
        assert proc.password, "the one-time admin password was not printed"
        client = httpx.Client(base_url=proc.url, timeout=30)
        token = admin_first_sign_in(client, proc.password)
        auth = {"Authorization": f"Bearer {token}"}
        for role in ("viewer", "operator", "trainer", "technician"):
            r = client.post("/api/users", headers=auth, json={"username": role, "password": password_of(role),
                                                              "role": role})
            assert r.status_code == 201, r.text
        proc.admin_token = token  # type: ignore[attr-defined]
        yield proc
    finally:
        proc.stop()


def sign_in(browser: Any, server: ServerProcess, user: str, password: str, **context_kw: Any) -> Any:
    # Playwright evaluates wait_for_function predicates with eval, which the dashboard's CSP forbids;
    # test_dashboard_runs_under_its_csp checks the app itself without this bypass.
    context = browser.new_context(bypass_csp=True, **context_kw)
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    page.goto(server.url + "/")
    page.fill("#login-form input[name=username]", user)
    page.fill("#login-form input[name=password]", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector('.card[data-machine="mill-1"]')
    page.wait_for_function("document.querySelector('.card[data-machine=\"mill-1\"] .badge').textContent !== '…'")
    return page


def badge(page: Any) -> str:
    return str(page.text_content('.card[data-machine="mill-1"] .badge'))


def wait_badge(page: Any, *states: str, timeout: float = 60_000) -> None:
    page.wait_for_function(
        "states => states.includes(document.querySelector('.card[data-machine=\"mill-1\"] .badge').textContent)",
        arg=list(states), timeout=timeout)


def test_the_sign_in_form_cannot_be_sent_before_the_script_wires_it(browser: Any, server: ServerProcess) -> None:
    """Sent natively (a fast Enter on a slow phone), the form would put the password into the URL."""
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(server.url + "/")
    assert page.is_disabled("#login-form button[type=submit]")
    page.fill("#login-form input[name=username]", "admin")
    page.fill("#login-form input[name=password]", "secret-typed-early")
    page.press("#login-form input[name=password]", "Enter")
    page.wait_for_timeout(300)
    assert "secret-typed-early" not in page.url
    context.close()
    page = sign_in(browser, server, "admin", ADMIN_PASSWORD)  # with the script, the same form signs in
    assert "?" not in page.url
    page.context.close()


def test_sign_in_wrong_password_then_right(browser: Any, server: ServerProcess) -> None:
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.goto(server.url + "/")
    page.fill("#login-form input[name=username]", "operator")
    page.fill("#login-form input[name=password]", "not the password")
    page.click("#login-form button[type=submit]")
    page.wait_for_function("document.querySelector('#login-error').textContent.length > 0")
    assert "wrong user name or password" in page.text_content("#login-error")
    page.fill("#login-form input[name=password]", password_of("operator"))
    page.click("#login-form button[type=submit]")
    page.wait_for_selector('.card[data-machine="mill-1"]')
    assert "operator (operator)" in page.text_content("#whoami")
    page.screenshot(path=str(ARTIFACTS / "dashboard-signed-in.png"), full_page=True)
    context.close()


def test_job_runs_readout_moves_and_hold_shows_hold(browser: Any, server: ServerProcess) -> None:
    page = sign_in(browser, server, "operator", password_of("operator"))
    card = '.card[data-machine="mill-1"]'
    if badge(page) == "Alarm":  # homing is required after power-up
        page.click(f"{card} button:has-text('Home')")
    wait_badge(page, "Idle")
    # the trainer's part: paste, check, submit
    page.click("#nav a[data-view=programs]")
    page.fill("#program-name", "zigzag.nc")
    page.fill("#program-text", JOB)
    page.select_option("#program-machine", "mill-1")
    page.click("#check-btn")
    page.wait_for_selector("#check-summary .ok")
    page.click("#submit-btn")
    page.wait_for_function("document.querySelector('#submit-status').textContent.startsWith('queued as #')")
    # the operator starts it from the machine card
    page.click("#nav a[data-view=machines]")
    page.click(f"{card} .card-queue button.start")
    wait_badge(page, "Run")
    x0 = page.text_content(f"{card} .wpos-X")
    page.wait_for_function(
        "x0 => document.querySelector('.card[data-machine=\"mill-1\"] .wpos-X').textContent !== x0", arg=x0)
    page.wait_for_function(
        "parseFloat(document.querySelector('.card[data-machine=\"mill-1\"] .bar').style.width) > 0")
    assert "zigzag.nc" in page.text_content(f"{card} .job-title")
    assert "rpm" in page.text_content(f"{card} .spindle")
    page.screenshot(path=str(ARTIFACTS / "job-running.png"), full_page=True)
    # the big HOLD button is always there
    assert page.is_visible("#hold-all")
    page.click("#hold-all")
    wait_badge(page, "Hold")
    held_at = page.text_content(f"{card} .wpos-X")
    page.screenshot(path=str(ARTIFACTS / "job-hold.png"), full_page=True)
    page.wait_for_timeout(500)
    assert page.text_content(f"{card} .wpos-X") == held_at  # nothing moves in Hold
    page.click(f"{card} button:has-text('Cancel')")
    wait_badge(page, "Idle", "Alarm")
    page.click("#nav a[data-view=queue]")
    page.wait_for_selector("#jobs-table tr.out-cancelled td:has-text('zigzag.nc')")
    page.screenshot(path=str(ARTIFACTS / "queue-and-jobs.png"), full_page=True)
    assert not page.errors, page.errors


def test_program_leaving_envelope_is_shown_on_its_line_and_in_red(browser: Any, server: ServerProcess,
                                                                  tmp_path: Path) -> None:
    page = sign_in(browser, server, "trainer", password_of("trainer"))
    page.click("#nav a[data-view=programs]")
    upload = tmp_path / "student-outside.nc"
    upload.write_text(OUTSIDE)
    page.set_input_files("#program-file", str(upload))
    assert page.input_value("#program-name") == "student-outside.nc"
    page.click("#check-btn")
    page.wait_for_selector("#check-summary .error")
    diag = page.locator("#diagnostics li.error", has_text="envelope").first
    assert "line 4" in diag.text_content()
    diag.click()
    page.wait_for_selector("#listing li#L4.error.current")
    assert page.text_content("#listing li#L4").strip() == "G1 X-120 Y10 F300"
    page.wait_for_selector("#view-xy[data-bad]")  # the toolpath arrives after the report
    assert int(page.get_attribute("#view-xy", "data-bad")) >= 1
    red = page.evaluate("""() => {
        const c = document.querySelector('#view-xy');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i+1] < 60 && d[i+2] < 60) n++;
        return n;
    }""")
    assert red > 20, "the violating segment is not drawn in red"
    assert page.is_hidden(".submit-row")  # a program with errors cannot be queued
    page.screenshot(path=str(ARTIFACTS / "program-outside-envelope.png"), full_page=True)


def test_upload_refuses_binary_file(browser: Any, server: ServerProcess, tmp_path: Path) -> None:
    page = sign_in(browser, server, "trainer", password_of("trainer"))
    page.click("#nav a[data-view=programs]")
    binary = tmp_path / "photo.nc"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    page.set_input_files("#program-file", str(binary))
    page.click("#check-btn")
    page.wait_for_selector("#check-summary .error")
    assert "binary" in page.text_content("#check-summary")


def test_viewer_on_a_phone_sees_state_but_no_controls(browser: Any, server: ServerProcess) -> None:
    page = sign_in(browser, server, "viewer", password_of("viewer"),
                   viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    card = '.card[data-machine="mill-1"]'
    assert badge(page) in ("Idle", "Alarm", "Run", "Hold")
    assert page.text_content(f"{card} .mpos-X") != "—"
    for selector in ("#hold-all", f"{card} .controls button", f"{card} .jogpad", f"{card} .ovr",
                     "#nav a[data-view=programs]", "#nav a[data-view=users]", "#nav a[data-view=diagnostics]"):
        for el in page.query_selector_all(selector):
            assert not el.is_visible(), f"{selector} is visible to a viewer"
    width = page.evaluate("document.querySelector('.card').getBoundingClientRect().width")
    assert width <= 390  # one column, no sideways scrolling
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(ARTIFACTS / "viewer-phone.png"), full_page=True)


def test_technician_sees_diagnostics(browser: Any, server: ServerProcess) -> None:
    page = sign_in(browser, server, "technician", password_of("technician"))
    assert not page.is_visible("#nav a[data-view=programs]")
    page.click("#nav a[data-view=diagnostics]")
    page.wait_for_selector("#settings-table")
    assert "Grbl 1.1" in page.text_content("#diag-body")
    assert page.locator("#settings-table th", has_text="$110").count() == 1
    assert "X maximum rate (mm/min)" in page.text_content("#settings-table")
    assert page.locator("#settings-table button", has_text="Edit").count() > 10  # technicians may write settings
    page.screenshot(path=str(ARTIFACTS / "technician-diagnostics.png"), full_page=True)


def test_admin_adds_a_user_then_disabling_them_ends_their_session(browser: Any, server: ServerProcess) -> None:
    admin = sign_in(browser, server, "admin", ADMIN_PASSWORD)
    admin.click("#nav a[data-view=users]")
    admin.fill("#user-form input[name=username]", "student1")
    admin.fill("#user-form input[name=password]", password_of("student1"))
    admin.select_option("#user-form select[name=role]", "viewer")
    admin.click("#user-form button[type=submit]")
    admin.wait_for_selector('#users-table tr[data-user="student1"]')
    student = sign_in(browser, server, "student1", password_of("student1"))
    student.wait_for_selector("#link-state.up")
    admin.click('#users-table tr[data-user="student1"] button:has-text("Disable")')
    student.wait_for_selector("#view-login:not([hidden])")
    assert "sign in again" in student.text_content("#login-error")
    admin.click("#nav a[data-view=audit]")
    admin.wait_for_selector("#audit-table td:has-text('user.change')")
    admin.screenshot(path=str(ARTIFACTS / "admin-audit.png"), full_page=True)


def test_dashboard_runs_under_its_csp_and_offline(browser: Any, server: ServerProcess) -> None:
    context = browser.new_context()
    page = context.new_page()
    outside: list[str] = []
    console: list[str] = []
    page.on("request", lambda req: outside.append(req.url) if not req.url.startswith(server.url) else None)
    page.on("console", lambda msg: console.append(msg.text) if msg.type == "error" else None)
    page.goto(server.url + "/docs")
    page.wait_for_selector("text=labbridge", timeout=30_000)
    page.goto(server.url + "/")
    page.fill("#login-form input[name=username]", "viewer")
    page.fill("#login-form input[name=password]", password_of("viewer"))
    page.click("#login-form button[type=submit]")
    page.wait_for_selector('.card[data-machine="mill-1"] .mpos-X', timeout=30_000)
    page.wait_for_selector("#link-state.up", timeout=30_000)  # the websocket is live
    assert not outside, f"requests left the server: {outside}"
    assert not [c for c in console if "Content Security Policy" in c], console
    context.close()


def test_user_changes_own_password(browser: Any, server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        r = client.post("/api/users", headers={"Authorization": f"Bearer {server.admin_token}"},  # type: ignore[attr-defined]
                        json={"username": "pat", "password": password_of("pat", "old"), "role": "trainer"})
        assert r.status_code == 201, r.text
    page = sign_in(browser, server, "pat", password_of("pat", "old"))
    answers = iter([password_of("pat", "old"), password_of("pat", "new")])
    page.on("dialog", lambda dialog: dialog.accept(next(answers)))
    page.click("#password")
    page.wait_for_selector("#view-login:not([hidden])")
    assert "Password changed" in page.text_content("#login-error")
    page.fill("#login-form input[name=username]", "pat")
    page.fill("#login-form input[name=password]", password_of("pat", "new"))
    page.click("#login-form button[type=submit]")
    page.wait_for_selector('.card[data-machine="mill-1"]')


def test_every_view_shows_words_not_catalog_keys(browser: Any, server: ServerProcess) -> None:
    """The ES modules load, and every text they put on the page came through the English catalog."""
    import json
    import re

    keys = json.loads((ROOT / "labbridge/server/static/locales/en.json").read_text(encoding="utf-8"))
    groups = "|".join(sorted({k.split(".")[0] for k in keys}))
    looks_like_key = re.compile(rf"^({groups})\.[A-Za-z_]+$")  # what t() returns for a key with no message
    page = sign_in(browser, server, "admin", ADMIN_PASSWORD)
    assert page.evaluate("document.documentElement.lang") == "en"
    texts_js = """() => {
        const out = [];
        const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        while (walk.nextNode()) {  // the audit log shows the server's action names (job.start...) as they are
            if (!walk.currentNode.parentElement.closest('#audit-table tbody')) out.push(walk.currentNode.textContent.trim());
        }
        for (const el of document.querySelectorAll('[title], [placeholder]'))
            out.push(el.getAttribute('title') || '', el.getAttribute('placeholder') || '');
        return out;
    }"""
    for view in ("machines", "programs", "queue", "diagnostics", "users", "audit"):
        page.click(f"#nav a[data-view={view}]")
        page.wait_for_selector(f"#view-{view}:not([hidden])")
        page.wait_for_timeout(300)
        raw = sorted(text for text in page.evaluate(texts_js) if looks_like_key.match(text))
        assert not raw, f"{view}: keys shown instead of words: {raw}"
    assert page.text_content("#nav a[data-view=machines]") == "Machines"
    assert not page.errors, page.errors
