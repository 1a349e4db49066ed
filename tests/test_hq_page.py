"""Headquarters' page, read as files: its first-password form says what the lab's dashboard says (the HQ page is
English only, so it carries the lab's English catalog text), and it loads nothing from outside headquarters."""

from __future__ import annotations

import json
import re

from tests.web_support import ROOT

HQ = ROOT / "labbridge" / "fleet" / "hq" / "static"
LAB_EN = ROOT / "labbridge" / "server" / "static" / "locales" / "en.json"
FORM_KEYS = ("firstpw.title", "firstpw.intro", "firstpw.new", "firstpw.repeat", "firstpw.rules", "firstpw.submit")


def test_first_password_form_uses_the_lab_dashboards_words() -> None:
    english = json.loads(LAB_EN.read_text(encoding="utf-8"))
    page = (HQ / "index.html").read_text(encoding="utf-8")
    form = page[page.index('<form id="first-password-form"'):page.index("</form>", page.index("first-password-form"))]
    shown = [t.strip() for t in re.findall(r">([^<>]+)<", form) if t.strip()]
    assert shown == [english[k] for k in FORM_KEYS]
    assert f'"{english["firstpw.mismatch"]}"' in (HQ / "hq.js").read_text(encoding="utf-8")


def test_the_page_loads_only_its_own_files() -> None:
    page = (HQ / "index.html").read_text(encoding="utf-8")
    sources = re.findall(r'(?:src|href)="([^"#]+)"', page)
    assert sources and all(s.startswith("/") and not s.startswith("//") for s in sources), sources
    assert "<script>" not in page and " style=" not in page, "inline code would break the CSP default-src 'self'"
