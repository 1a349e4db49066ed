"""The dashboard's words: every key the ES modules and index.html use is in the English catalog, and the catalog
holds no key nothing uses. Words the server sends (``word("state", st.state)``) count as using every key of their
group; other keys are written out whole in ``t("…")`` so that this test can see them. Also: the page loads only module scripts from labbridge itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "labbridge" / "server" / "static"
JS_FILES = sorted((STATIC / "js").rglob("*.js"))

T_CALL = re.compile(r"\bt\(\s*((?:[^,()]|\([^()]*\))*)")         # first argument of t(...)
LITERAL = re.compile(r'"([a-z_]+\.[a-zA-Z_]+)"')
BUILT_KEY = re.compile(r"\bt\(\s*`")
WORD_GROUP = re.compile(r'\b(?:word|explain)\(\s*"([a-z_]+)"')  # explain(): codes with a meaning (issue #11)
PAGES = ("index.html", "join.html")  # the dashboard and the students' join page (issue #11)
HTML_KEY = re.compile(r'data-i18n="([^"]+)"')
HTML_ATTR_KEYS = re.compile(r'data-i18n-attr="([^"]+)"')


def catalog() -> dict[str, object]:
    return json.loads((STATIC / "locales" / "en.json").read_text(encoding="utf-8"))


def used_keys() -> tuple[set[str], set[str]]:
    """Literal keys, and the prefixes of the word groups."""
    literal: set[str] = set()
    prefixes: set[str] = set()
    for path in JS_FILES:
        src = path.read_text(encoding="utf-8")
        for arg in T_CALL.findall(src):
            literal.update(LITERAL.findall(arg))
        prefixes.update(f"{g}." for g in WORD_GROUP.findall(src))
    for page in PAGES:
        html = (STATIC / page).read_text(encoding="utf-8")
        literal.update(HTML_KEY.findall(html))
        for spec in HTML_ATTR_KEYS.findall(html):
            literal.update(pair.split(":", 1)[1].strip() for pair in spec.split(";"))
    return literal, prefixes


def test_the_modules_are_found() -> None:
    names = {p.relative_to(STATIC / "js").as_posix() for p in JS_FILES}
    assert {"main.js", "api.js", "store.js", "ws.js", "i18n.js"} <= names
    assert any(n.startswith("views/") for n in names)


def test_keys_are_written_out_whole() -> None:
    for path in JS_FILES:
        assert not BUILT_KEY.search(path.read_text(encoding="utf-8")), f"{path.name}: t() with a built key"


def test_every_key_used_has_an_english_message() -> None:
    literal, _ = used_keys()
    missing = sorted(literal - catalog().keys())
    assert not missing, f"keys used by the dashboard but missing from locales/en.json: {missing}"


def test_every_english_message_is_used() -> None:
    literal, prefixes = used_keys()
    unused = sorted(k for k in catalog() if k not in literal and not any(k.startswith(p) for p in prefixes))
    assert not unused, f"messages in locales/en.json that no module or index.html uses: {unused}"


def test_plural_messages_have_an_other_form() -> None:
    for key, msg in catalog().items():
        if isinstance(msg, dict):
            assert "other" in msg, f"{key}: a plural message needs the 'other' form"
        else:
            assert isinstance(msg, str), key


def test_page_loads_only_its_own_module_scripts() -> None:
    for page, entry in (("index.html", "main.js"), ("join.html", "join.js")):
        html = (STATIC / page).read_text(encoding="utf-8")
        scripts = re.findall(r"<script\b[^>]*>", html)
        assert scripts == [f'<script type="module" src="/js/{entry}">'], (page, scripts)
        assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html), f"{page}: inline script: the CSP forbids it"
    for path in JS_FILES:
        for target in re.findall(r'^\s*import\b[^"]*"([^"]+)"', path.read_text(encoding="utf-8"), re.M):
            assert target.startswith("."), f"{path.name} imports {target}: modules load from labbridge only"
            assert (path.parent / target).resolve().is_file(), f"{path.name} imports {target}, which does not exist"
