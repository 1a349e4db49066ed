"""Every catalog holds exactly what the code uses, in every language (issue #11).

Python: the messages marked in the code (``_()``, ``ngettext()``, ``N_()``) are extracted
with Babel, as ``make messages`` does, and compared with each language's ``.po`` both
ways. Browser: each ``locales/<lang>.json`` has exactly the English catalog's keys.
Both: the ``{placeholders}`` of a translation are those of its English message (a
missing one would raise at run time), and plural messages have every form the
language needs (three in Lithuanian and Latvian), checked against CLDR's rules.
"""

from __future__ import annotations

import gettext
import json
import re
from pathlib import Path

import pytest
from babel import Locale
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from labbridge import i18n
from labbridge.protocols.grbl_codes import ALARMS, ERRORS
from labbridge.safety.diagnostics import CODES

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "labbridge"
LOCALES = ROOT / "labbridge" / "server" / "static" / "locales"
TRANSLATED = [lang for lang in i18n.LANGUAGES if lang != "en"]
PLACEHOLDER = re.compile(r"\{(\w*)(?:![rsa])?(?::[^{}]*)?\}")


# For each language, which plural form of the catalog CLDR's category of n selects (gettext orders them so).
FORM_OF = {"lt": {"one": 0, "few": 1, "many": 2, "other": 2}, "lv": {"zero": 0, "one": 1, "other": 2},
           "et": {"one": 0, "other": 1}, "de": {"one": 0, "other": 1}}


def placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


def code_messages() -> dict[object, str]:
    """Message id (a string, or a (singular, plural) pair) -> where it is used."""
    found: dict[object, str] = {}
    method_map = [("**.py", "python")]
    for filename, _lineno, message, _comments, _context in extract_from_dir(str(PACKAGE), method_map):
        key = message if isinstance(message, str) else tuple(message[:2])
        found.setdefault(key, filename)
    return found


def po_catalog(lang: str):  # type: ignore[no-untyped-def]
    with (i18n.LOCALE_DIR / lang / "LC_MESSAGES" / "labbridge.po").open("rb") as fh:
        return read_po(fh, locale=lang)


@pytest.fixture(scope="module")
def used() -> dict[object, str]:
    found = code_messages()
    assert len(found) > 100, "the extraction found almost nothing: is the Babel mapping right?"
    return found


@pytest.mark.parametrize("lang", TRANSLATED)
def test_python_catalog_has_every_message_the_code_uses(lang: str, used: dict[object, str]) -> None:
    catalog = po_catalog(lang)
    missing = []
    for key, where in used.items():
        msg = catalog.get(key if isinstance(key, str) else key[0])
        strings = [] if msg is None else ([msg.string] if isinstance(msg.string, str) else list(msg.string))
        if msg is None or msg.fuzzy or not strings or not all(strings):
            missing.append(f"{where}: {key!r}")
    assert not missing, f"{lang}: messages the code uses that labbridge.po lacks (run make messages, translate):\n" + \
        "\n".join(missing)


@pytest.mark.parametrize("lang", TRANSLATED)
def test_python_catalog_has_no_message_the_code_no_longer_uses(lang: str, used: dict[object, str]) -> None:
    ids = {k if isinstance(k, str) else k[0] for k in used}
    stale = [m.id for m in po_catalog(lang) if m.id and (m.id if isinstance(m.id, str) else m.id[0]) not in ids]
    assert not stale, f"{lang}: labbridge.po has messages no code uses any more: {stale}"


@pytest.mark.parametrize("lang", TRANSLATED)
def test_python_translations_keep_placeholders_and_plural_forms(lang: str) -> None:
    catalog = po_catalog(lang)
    expected_forms = len(set(FORM_OF[lang].values()))  # integers only: Lithuanian's "many" is for fractions
    assert catalog.num_plurals == expected_forms, f"{lang}: Plural-Forms has {catalog.num_plurals} forms"
    for msg in catalog:
        if not msg.id:
            continue
        ids = [msg.id] if isinstance(msg.id, str) else list(msg.id)
        strings = [msg.string] if isinstance(msg.string, str) else list(msg.string)
        if not isinstance(msg.id, str):
            assert len(strings) == expected_forms, f"{lang}: {ids[0]!r} has {len(strings)} plural forms"
        wanted = set(placeholders(ids[0])) | set(placeholders(ids[-1]))
        for text in strings:
            assert set(placeholders(text)) <= wanted, f"{lang}: {ids[0]!r} -> {text!r} has unknown placeholders"
            if isinstance(msg.id, str):
                assert placeholders(text) == placeholders(ids[0]), f"{lang}: {ids[0]!r} -> {text!r}"


@pytest.mark.parametrize("lang", TRANSLATED)
def test_python_plural_rule_agrees_with_cldr(lang: str) -> None:
    compiled = i18n.load_catalog(lang)
    assert isinstance(compiled, gettext.GNUTranslations), f"{lang}: no compiled catalog"
    rule = Locale.parse(lang).plural_form
    for n in range(0, 250):
        assert compiled.plural(n) == FORM_OF[lang][rule(n)], f"{lang}: n={n} picks form {compiled.plural(n)}"


def test_plural_words_come_out_right() -> None:
    """Spot checks a speaker would make: one, a few and many errors."""
    expect = {"lt": ["1 klaida", "2 klaidos", "10 klaidų", "21 klaida", "11 klaidų"],
              "lv": ["1 kļūda", "2 kļūdas", "10 kļūdu", "21 kļūda", "11 kļūdu"],
              "et": ["1 viga", "2 viga", "10 viga", "21 viga", "11 viga"],
              "de": ["1 Fehler", "2 Fehler", "10 Fehler", "21 Fehler", "11 Fehler"]}
    for lang, words in expect.items():
        with i18n.language(lang):
            got = [i18n.ngettext("{n} error", "{n} errors", n).format(n=n) for n in (1, 2, 10, 21, 11)]
        assert got == words, lang


def test_a_stale_compiled_catalog_is_not_used(tmp_path: Path) -> None:
    """A .mo older than its .po is ignored: the .po is compiled in memory instead."""
    folder = tmp_path / "lt" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    po = folder / "labbridge.po"
    po.write_text('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=utf-8\\n"\n\n'
                  'msgid "no motion"\nmsgstr "judesių nėra"\n', encoding="utf-8")
    assert i18n.load_catalog("lt", locale_dir=tmp_path).gettext("no motion") == "judesių nėra"
    mo = folder / "labbridge.mo"
    mo.write_bytes(b"not a catalog")
    import os
    os.utime(mo, (po.stat().st_mtime - 10, po.stat().st_mtime - 10))
    assert i18n.load_catalog("lt", locale_dir=tmp_path).gettext("no motion") == "judesių nėra"


# ---------------------------------------------------------------------------------------------- browser

def json_catalog(lang: str) -> dict[str, object]:
    return json.loads((LOCALES / f"{lang}.json").read_text(encoding="utf-8"))


def test_every_language_has_a_browser_catalog_and_the_picker_lists_them() -> None:
    assert sorted(p.stem for p in LOCALES.glob("*.json")) == sorted(i18n.LANGUAGES)
    picker = (ROOT / "labbridge" / "server" / "static" / "js" / "language.js").read_text(encoding="utf-8")
    listed = re.search(r"export const LANGUAGES = \{([^}]*)\}", picker)
    assert listed is not None
    assert re.findall(r"(\w+):", listed.group(1)) == list(i18n.LANGUAGES)
    for code, name in i18n.LANGUAGE_NAMES.items():
        assert f'{code}: "{name}"' in listed.group(1)


@pytest.mark.parametrize("lang", TRANSLATED)
def test_browser_catalog_has_exactly_the_english_keys(lang: str) -> None:
    english, other = json_catalog("en"), json_catalog(lang)
    assert not sorted(set(english) - set(other)), f"{lang}.json lacks {sorted(set(english) - set(other))}"
    assert not sorted(set(other) - set(english)), f"{lang}.json has keys English no longer has: " \
        f"{sorted(set(other) - set(english))}"


@pytest.mark.parametrize("lang", TRANSLATED)
def test_browser_messages_keep_placeholders_and_plural_forms(lang: str) -> None:
    english, other = json_catalog("en"), json_catalog(lang)
    categories = set(Locale.parse(lang).plural_form.tags) | {"other"}
    for key, msg in other.items():
        source = english[key]
        sources = list(source.values()) if isinstance(source, dict) else [source]
        wanted = set().union(*(placeholders(s) for s in sources))
        if isinstance(msg, dict):
            assert isinstance(source, dict), f"{lang}: {key} is plural only here"
            assert set(msg) == categories, f"{lang}: {key} has forms {sorted(msg)}, the language needs " \
                f"{sorted(categories)}"
            texts = list(msg.values())
        else:
            assert isinstance(msg, str) and not isinstance(source, dict), f"{lang}: {key}"
            texts = [msg]
        for text in texts:
            assert text.strip(), f"{lang}: {key} is empty"
            assert set(placeholders(text)) <= wanted and (isinstance(msg, dict) or
                                                           set(placeholders(text)) == wanted), \
                f"{lang}: {key}: {text!r} does not keep the placeholders {sorted(wanted)}"


def test_browser_catalog_explains_every_grbl_code_and_every_diagnostic_code() -> None:
    english = json_catalog("en")
    grbl = {k.split(".", 1)[1] for k in english if k.startswith("grbl.")}
    assert grbl == {f"error:{n}" for n in ERRORS} | {f"ALARM:{n}" for n in ALARMS}
    codes = {k.split(".", 1)[1] for k in english if k.startswith("diag_code.")}
    assert codes == set(CODES)


@pytest.mark.parametrize("lang", TRANSLATED)
def test_grbl_meanings_read_the_same_in_job_texts_and_on_the_dashboard(lang: str) -> None:
    """A stored job text names GRBL's meaning in English; read in another language it carries the same
    translation the dashboard shows for that code."""
    dashboard = json.loads((LOCALES / f"{lang}.json").read_text(encoding="utf-8"))
    for key, table in (("grbl.error:{}", ERRORS), ("grbl.ALARM:{}", ALARMS)):
        for code, meaning in table.items():
            assert i18n.translations(lang).gettext(meaning) == dashboard[key.format(code)], (lang, code)
    stored = (f"line 12 (G1 X5): the controller answered error:22 — {ERRORS[22]}; nothing after it was sent")
    read = i18n.localize(stored, lang)
    assert dashboard["grbl.error:22"] in read and ERRORS[22] not in read and "error:22" in read
