"""Which language a person reads, and the gettext catalogs behind it.

labbridge speaks English (the message ids), Lithuanian, Latvian, Estonian and
German. Catalogs live in ``labbridge/locale/<lang>/LC_MESSAGES/labbridge.po`` and
are compiled to ``.mo`` by ``make catalogs`` (Babel); a missing or stale ``.mo``
is compiled from its ``.po`` in memory on first use, so a fresh clone never shows
a stale translation.

The language is a context variable: the CLI sets it once (``--lang``, then
``LABBRIDGE_LANG``, then ``LC_ALL``/``LC_MESSAGES``/``LANG``), the web server per
request from ``Accept-Language``. Only human text changes with the language:
codes, JSON keys, exit codes and log events never do.

Messages are marked for extraction with ``_()`` (translated now), ``ngettext()``
(plural forms: Lithuanian and Latvian have three) and ``N_()`` (marked, translated
later, e.g. help texts defined at import time). Texts stored for later readers (job
records) stay English and are rendered per reader by :func:`localize` (see the last
section).
"""

from __future__ import annotations

import gettext as _gettext
import io
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path

LANGUAGES: tuple[str, ...] = ("en", "lt", "lv", "et", "de")
LANGUAGE_NAMES: dict[str, str] = {
    "en": "English", "lt": "Lietuvių", "lv": "Latviešu", "et": "Eesti", "de": "Deutsch",
}
"""Each language named in itself, as a picker shows it."""
DEFAULT = "en"
DOMAIN = "labbridge"
LOCALE_DIR = Path(__file__).parent / "locale"
LANG_ENV = "LABBRIDGE_LANG"

_current: ContextVar[str | None] = ContextVar("labbridge_language", default=None)
_process_language = DEFAULT
"""The language of threads that did not inherit a context (the CLI sets it once)."""


def _compiled(po_path: Path) -> bytes:
    """A ``.po`` file compiled to ``.mo`` bytes in memory (Babel), for a clone where make was not run."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po_path.open("rb") as fh:
        catalog = read_po(fh, locale=po_path.parent.parent.name, domain=po_path.stem)
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def load_catalog(lang: str, domain: str = DOMAIN, locale_dir: Path = LOCALE_DIR) -> _gettext.NullTranslations:
    """The compiled catalog of ``domain`` for ``lang``; English (the ids) when there is none."""
    base = locale_dir / lang / "LC_MESSAGES" / domain
    po, mo = base.with_suffix(".po"), base.with_suffix(".mo")
    if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as fh:
            return _gettext.GNUTranslations(fh)
    if po.exists():
        return _gettext.GNUTranslations(io.BytesIO(_compiled(po)))
    return _gettext.NullTranslations()


@lru_cache(maxsize=None)
def translations(lang: str, domain: str = DOMAIN) -> _gettext.NullTranslations:
    return load_catalog(lang, domain)


def current() -> str:
    """The language of this request or command."""
    return _current.get() or _process_language


def set_process_language(lang: str) -> None:
    """The CLI's choice, for this context and for threads started without one."""
    global _process_language
    _process_language = lang
    _current.set(lang)


@contextmanager
def language(lang: str | None) -> Iterator[str]:
    """Run a block in ``lang`` (unknown or None: the current language)."""
    chosen = normalize(lang) or current() if lang else current()
    token = _current.set(chosen)
    try:
        yield chosen
    finally:
        _current.reset(token)


def _(message: str) -> str:
    """``message`` in the current language."""
    return translations(current()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The plural form for ``n`` in the current language (three forms in Lithuanian and Latvian)."""
    return translations(current()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark ``message`` for the catalogs without translating it yet (translated where it is shown)."""
    return message


_TAG = re.compile(r"^([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)*(?:\.[\w-]+)?(?:@\w+)?$")


def normalize(tag: str | None) -> str | None:
    """``lt-LT``, ``de_DE.UTF-8``, ``LV`` → a supported language code; anything else → None."""
    if not tag:
        return None
    match = _TAG.match(tag.strip())
    if match is None:
        return None
    code = match.group(1).lower()
    return code if code in LANGUAGES else None


def from_accept_language(header: str | None) -> str | None:
    """The best supported language of an HTTP ``Accept-Language`` header (q-values honoured), or None."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:32]):
        tag, _sep, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _eq, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        lang = normalize(tag)
        if lang is not None and quality > 0:
            ranked.append((-quality, index, lang))
    return min(ranked)[2] if ranked else None


def from_environment(env: Mapping[str, str] | None = None) -> str:
    """``LABBRIDGE_LANG``, else the POSIX locale (``LC_ALL`` beats ``LC_MESSAGES`` beats ``LANG``), else English.

    An unsupported ``LABBRIDGE_LANG`` raises ValueError (the caller says what to set); an unsupported
    system locale simply means English.
    """
    env = os.environ if env is None else env
    explicit = env.get(LANG_ENV, "").strip()
    if explicit:
        lang = normalize(explicit)
        if lang is None:
            raise ValueError(explicit)
        return lang
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name, "").strip()
        if value:
            return normalize(value) or DEFAULT
    return DEFAULT


# ---------------------------------------------------------------------------- stored texts, read later
# Texts that are stored in English and read in the reader's language.
#
# A job's outcome ("cancelled after line 19 (soft reset: ...); the machine stopped on
# line 5") is written once, by a runner that has no reader, into a record that many
# people read later: the dashboard, ``labbridge jobs``, ``labbridge stream``, each in
# its own language. So the record and the log keep the English text (stable, greppable)
# and :func:`localize` renders it for the current reader.
#
# Each English template is registered with :func:`phrase` (its text marked with ``N_``
# so Babel extracts it). :func:`localize` finds the template a stored text was made
# from (placeholders become captures), translates the template, and renders each
# captured value the same way, so a note inside a message inside a message is
# translated too. Pieces joined by ``"; "`` are rendered one by one. Anything it does
# not recognise (a controller's own words, a file name, an OS error) stays as it was.

_FIELD = re.compile(r"\{(\w+)\}")
_TEMPLATES: dict[str, re.Pattern[str]] = {}
_ordered: list[tuple[str, re.Pattern[str]]] = []
SEPARATOR = "; "
_MAX_DEPTH = 4
WIDE_FIELDS = frozenset({"detail", "error", "reason"})
"""Fields that may hold several ``"; "``-joined pieces (an exception's text, notes); others hold one piece."""


def _pattern(template: str) -> re.Pattern[str]:
    parts, seen, pos = [], set(), 0
    for match in _FIELD.finditer(template):
        parts.append(re.escape(template[pos:match.start()]))
        name = match.group(1)
        capture = ".+?" if name in WIDE_FIELDS else "(?:(?!; ).)+?"
        parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>{capture})")
        seen.add(name)
        pos = match.end()
    parts.append(re.escape(template[pos:]))
    return re.compile("".join(parts), re.DOTALL)


def phrase(template: str) -> str:
    """Register an English ``template`` (``{name}`` fields only, no format specs) that :func:`localize` renders."""
    literal = _FIELD.sub("", template)
    if len(literal.strip(" :;,.()—-")) < 4:
        raise ValueError(f"template {template!r} has too little fixed text to be recognised")
    if template not in _TEMPLATES:
        _TEMPLATES[template] = _pattern(template)
        # The most specific template (the most fixed text) is tried first.
        _ordered[:] = sorted(_TEMPLATES.items(), key=lambda item: -len(_FIELD.sub("", item[0])))
        _render.cache_clear()
    return template


def localize(text: str | None, lang: str | None = None) -> str:
    """``text`` (English, as stored) in ``lang`` or the current language; unknown parts stay as they are."""
    if not text:
        return text or ""
    lang = lang or current()
    if lang == DEFAULT:
        return text
    return _render(text, lang, 0) or _pieces(text, lang, 0)


@lru_cache(maxsize=4096)
def _render(text: str, lang: str, depth: int) -> str | None:
    """``text`` translated when it is a known message or a registered template filled in; else None."""
    catalog = translations(lang)
    plain = catalog.gettext(text)
    if plain != text:
        return plain
    if depth >= _MAX_DEPTH:
        return None
    for template, pattern in _ordered:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        values = {name: _render(value, lang, depth + 1) or _pieces(value, lang, depth + 1)
                  for name, value in match.groupdict().items()}
        try:
            return catalog.gettext(template).format(**values)
        except (KeyError, IndexError, ValueError):
            continue
    return None


def _pieces(text: str, lang: str, depth: int) -> str:
    """``"a; b; c"`` rendered piece by piece (the longest run of pieces that is one message wins)."""
    parts = text.split(SEPARATOR)
    if len(parts) == 1 or depth >= _MAX_DEPTH:
        return text
    out, start = [], 0
    while start < len(parts):
        for end in range(len(parts), start, -1):
            if end - start == len(parts):
                continue  # the whole text was tried by the caller
            rendered = _render(SEPARATOR.join(parts[start:end]), lang, depth + 1)
            if rendered is not None:
                out.append(rendered)
                start = end
                break
        else:
            out.append(parts[start])
            start += 1
    return SEPARATOR.join(out)
