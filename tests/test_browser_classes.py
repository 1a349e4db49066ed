"""Languages and class mode in Debian's Chromium (Playwright), against ``labbridge serve --demo`` (issue #11).

- With the browser's locale set to lt-LT, lv-LV, et-EE or de-DE, every view of the dashboard and the
  students' join page show that language's catalog (every ``data-i18n`` element, the navigation, state
  names), numbers are written with a decimal comma, and the server's messages follow too.
- A student on a phone-sized screen joins by code, submits a program that leaves the envelope, sees the
  error on its line, fixes it; the trainer watches it arrive live and approves it into the queue.
- A student's name is shown as text, never as markup; the language picked is remembered for the user.
Screenshots of the join page and the trainer's class view in two languages go to test-artifacts/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.test_browser_dashboard import ARTIFACTS, browser, server, sign_in  # noqa: F401 (fixtures)
from tests.web_support import ADMIN_PASSWORD, ROOT, ServerProcess, password_of

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LOCALES = ROOT / "labbridge" / "server" / "static" / "locales"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
OUTSIDE = "G21 G90 G54\nG0 Z5\nM3 S8000\nG0 X10 Y10\nG1 Z-1 F200\nG1 X300 Y10 F300\nG0 Z5\nM5\nM30\n"
FIXED = OUTSIDE.replace("X300", "X30")
VIEWS = ("machines", "programs", "queue", "diagnostics", "users", "audit", "classes")


def catalog(lang: str) -> dict[str, Any]:
    return dict(json.loads((LOCALES / f"{lang}.json").read_text(encoding="utf-8")))


def api(server: ServerProcess, user: str, password: str) -> httpx.Client:
    """A client signed in as ``user`` (close it, e.g. with ``with``)."""
    token = httpx.post(f"{server.url}/api/auth/login", json={"username": user, "password": password},
                       timeout=30).json()["token"]
    return httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {token}"})


def open_class(server: ServerProcess, name: str = "Lesson") -> str:
    with api(server, "trainer", password_of("trainer")) as client:
        r = client.post("/api/classes", json={"name": name, "machine": "mill-1", "minutes": 60})
        assert r.status_code == 201, r.text
        return str(r.json()["code"])


def translated_elements(page: Any) -> list[tuple[str, str]]:
    """(key, shown text) of every visible element the page marks with data-i18n."""
    return list(page.evaluate("""() => [...document.querySelectorAll('[data-i18n]')]
        .filter((el) => el.offsetParent !== null || el.tagName === 'TITLE')
        .map((el) => [el.dataset.i18n, el.textContent.trim()])"""))


def assert_in_language(page: Any, lang: str, where: str) -> None:
    words = catalog(lang)
    english = catalog("en")
    assert page.evaluate("document.documentElement.lang") == lang, where
    shown = translated_elements(page)
    assert shown, f"{where}: nothing marked for translation is visible"
    for key, text in shown:
        assert text == words[key].strip(), f"{where}: {key} shows {text!r}, the {lang} catalog says {words[key]!r}"
    assert any(words[k] != english[k] for k, _ in shown), f"{where}: everything is still English"


@pytest.fixture()
def context_in(browser: Any) -> Iterator[Any]:  # noqa: F811 (fixture)
    made: list[Any] = []

    def make(locale: str, **kw: Any) -> Any:
        context = browser.new_context(bypass_csp=True, locale=locale, **kw)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


@pytest.mark.parametrize("locale", ["lt-LT", "lv-LV", "et-EE", "de-DE"])
def test_every_view_and_the_join_page_in_the_browsers_language(browser: Any, server: ServerProcess,  # noqa: F811
                                                              locale: str) -> None:
    lang = locale[:2]
    words = catalog(lang)
    page = sign_in(browser, server, "admin", ADMIN_PASSWORD, locale=locale)
    card = '.card[data-machine="mill-1"]'
    assert page.text_content(f"{card} .badge") in {v for k, v in words.items() if k.startswith("state.")}
    page.wait_for_function("document.querySelector('.card[data-machine=\"mill-1\"] .mpos-X').textContent !== '—'")
    mpos = page.text_content(f"{card} .mpos-X")
    assert "," in mpos and "." not in mpos, f"{lang}: {mpos!r} is not written with a decimal comma"
    for view in VIEWS:
        page.click(f"#nav a[data-view={view}]")
        page.wait_for_selector(f"#view-{view}:not([hidden])")
        page.wait_for_timeout(150)
        assert_in_language(page, lang, f"{lang} #{view}")
    assert page.text_content("#nav a[data-view=classes]") == words["nav.classes"]
    # the server's own messages follow the page's language
    page.click("#nav a[data-view=programs]")
    page.fill("#program-text", "   ")
    page.click("#check-btn")
    page.wait_for_selector("#check-summary .error")
    assert page.text_content("#check-summary .error") != "", lang
    with httpx.Client(base_url=server.url) as client:  # (all tests' phones are 127.0.0.1: spare its submissions)
        english = client.get("/api/classes/QQQQQQ/public").json()
        local = client.get("/api/classes/QQQQQQ/public", headers={"Accept-Language": locale}).json()
    assert english["detail"] != local["detail"] and "QQQQQQ" in local["detail"]
    assert not page.errors, page.errors

    code = open_class(server, f"Lesson {lang}")
    join = page.context.new_page()
    join.goto(f"{server.url}/join/{code}")
    join.wait_for_selector("#join-class:not([hidden])")
    assert_in_language(join, lang, f"{lang} join page")
    assert join.text_content("#join-submit") == words["join.submit"]


def test_student_on_a_phone_joins_fixes_and_the_trainer_approves(server: ServerProcess, context_in: Any) -> None:  # noqa: F811
    trainer = context_in("de-DE").new_page()
    trainer.set_default_timeout(30_000)
    trainer.goto(server.url + "/")
    trainer.fill("#login-form input[name=username]", "trainer")
    trainer.fill("#login-form input[name=password]", password_of("trainer"))
    trainer.click("#login-form button[type=submit]")
    trainer.wait_for_selector('.card[data-machine="mill-1"]')
    trainer.click("#nav a[data-view=classes]")
    trainer.fill("#class-form input[name=name]", "Planfräsen 7b")
    trainer.fill("#class-form input[name=minutes]", "45")
    trainer.click("#class-form button[type=submit]")
    trainer.wait_for_selector("#class-current:not([hidden])")
    code = trainer.text_content("#class-code").strip()
    assert len(code) == 6
    assert trainer.get_attribute("#class-qr", "src").startswith("data:image/svg+xml")
    assert trainer.evaluate("document.querySelector('#class-qr').naturalWidth") > 100  # the QR code is drawn

    student = context_in("lt-LT", **PHONE).new_page()
    student.set_default_timeout(30_000)
    errors: list[str] = []
    student.on("pageerror", lambda exc: errors.append(str(exc)))
    student.goto(server.url + "/join")
    student.fill("#join-code", code.lower())
    student.click("#join-code-form button[type=submit]")
    student.wait_for_selector("#join-class:not([hidden])")
    assert student.text_content("#join-class-name") == "Planfräsen 7b"
    assert student.url.endswith(f"/join/{code}")
    student.fill("#join-name", "Ona")
    student.fill("#join-text", OUTSIDE)
    student.click("#join-submit")
    student.wait_for_selector("#join-summary .error")
    lt = catalog("lt")
    assert student.text_content("#join-next") == lt["join.fix_next"]
    envelope = student.locator("#join-diagnostics li.error", has_text="[envelope]").first
    assert lt["check.line"].replace("{line}", "6") in envelope.text_content()
    envelope.click()
    student.wait_for_selector("#join-listing li#J6.error.current")
    assert student.text_content("#join-listing li#J6").strip() == "G1 X300 Y10 F300"
    assert int(student.get_attribute("#join-xy", "data-bad")) >= 1
    assert student.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling on a phone
    student.screenshot(path=str(ARTIFACTS / "join-page-lt-phone.png"), full_page=True)

    # the trainer's view updates by itself
    trainer.wait_for_selector("#class-attempts tbody tr")
    assert "Ona" in trainer.text_content("#class-students")
    assert "envelope" in trainer.text_content("#class-common")

    student.fill("#join-text", FIXED)
    student.click("#join-submit")
    student.wait_for_selector("#join-summary .ok")
    assert student.text_content("#join-next") == lt["join.ok_next"]
    assert student.locator("#join-attempts li").count() == 2

    trainer.wait_for_function("document.querySelectorAll('#class-attempts tbody tr').length === 2")
    trainer.wait_for_selector("#class-attempts button.approve")
    trainer.screenshot(path=str(ARTIFACTS / "class-view-de.png"), full_page=True)
    trainer.click("#class-attempts button.approve")
    trainer.wait_for_function("document.querySelectorAll('#class-attempts button.approve').length === 0")
    with api(server, "operator", password_of("operator")) as client:
        queued = [e for e in client.get("/api/queue").json() if e["note"] == "Ona"]
    assert queued and queued[0]["state"] == "queued" and queued[0]["machine"] == "mill-1"
    assert not errors, errors

    # the same class in the other two languages, for the screenshots
    student_de = context_in("de-DE", **PHONE).new_page()
    student_de.goto(f"{server.url}/join/{code}")
    student_de.wait_for_selector("#join-class:not([hidden])")
    student_de.fill("#join-name", "Jonas")
    student_de.fill("#join-text", OUTSIDE)
    student_de.click("#join-submit")
    student_de.wait_for_selector("#join-summary .error")
    assert student_de.text_content("#join-next") == catalog("de")["join.fix_next"]
    student_de.screenshot(path=str(ARTIFACTS / "join-page-de-phone.png"), full_page=True)
    trainer.select_option("#lang-picker", "lt")
    trainer.wait_for_function("document.documentElement.lang === 'lt'")
    trainer.wait_for_function("document.querySelectorAll('#class-attempts tbody tr').length === 3")
    assert trainer.text_content("#nav a[data-view=classes]") == lt["nav.classes"]
    trainer.screenshot(path=str(ARTIFACTS / "class-view-lt.png"), full_page=True)
    trainer.select_option("#lang-picker", "de")  # leave the trainer's remembered language as the test found it


def test_student_names_are_shown_as_text(server: ServerProcess, context_in: Any) -> None:  # noqa: F811
    code = open_class(server, "<i>Lesson</i>")
    name = "<img src=x onerror=document.title=1>"  # (names are at most 40 characters)
    with httpx.Client(base_url=server.url) as client:
        assert client.post(f"/api/classes/{code}/submissions", json={"student": name, "text": OUTSIDE}
                           ).status_code == 201
    page = context_in("en-GB").new_page()
    page.goto(server.url + "/")
    page.fill("#login-form input[name=username]", "trainer")
    page.fill("#login-form input[name=password]", password_of("trainer"))
    page.click("#login-form button[type=submit]")
    page.wait_for_selector('.card[data-machine="mill-1"]')
    page.click("#nav a[data-view=classes]")
    page.click(f"#class-list button[data-code=\"{code}\"]")
    page.wait_for_selector("#class-students tbody tr")
    assert page.text_content("#class-students tbody tr td") == name
    assert page.locator("#view-classes img:not(#class-qr)").count() == 0
    assert "<i>Lesson</i>" in page.text_content("#class-title")
    assert page.title() != "1"
    join = page.context.new_page()
    join.goto(f"{server.url}/join/{code}")
    join.wait_for_selector("#join-class:not([hidden])")
    assert join.text_content("#join-class-name") == "<i>Lesson</i>" and join.locator("#join-class-name i").count() == 0


def test_the_picked_language_is_remembered_for_the_user(server: ServerProcess, context_in: Any) -> None:  # noqa: F811
    first = context_in("en-US").new_page()
    first.goto(server.url + "/")
    first.select_option("#lang-picker-login", "et")
    first.wait_for_function("document.documentElement.lang === 'et'")
    assert first.text_content("#login-form button[type=submit]") == catalog("et")["signin.submit"]
    first.fill("#login-form input[name=username]", "viewer")
    first.fill("#login-form input[name=password]", password_of("viewer"))
    first.click("#login-form button[type=submit]")
    first.wait_for_selector('.card[data-machine="mill-1"]')
    first.select_option("#lang-picker", "lv")
    first.wait_for_function("document.documentElement.lang === 'lv'")
    first.wait_for_timeout(300)  # the choice is saved for the user in the background
    # another device, whose browser says English: the viewer's own choice wins once signed in
    other = context_in("en-US").new_page()
    other.goto(server.url + "/")
    assert other.evaluate("document.documentElement.lang") == "en"
    other.fill("#login-form input[name=username]", "viewer")
    other.fill("#login-form input[name=password]", password_of("viewer"))
    other.click("#login-form button[type=submit]")
    other.wait_for_function("document.documentElement.lang === 'lv'")
    assert other.text_content("#nav a[data-view=machines]") == catalog("lv")["nav.machines"]
    with api(server, "viewer", password_of("viewer")) as client:
        assert client.get("/api/preferences").json()["language"] == "lv"
        client.put("/api/preferences", json={"language": None})
