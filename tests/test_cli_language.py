"""The CLI in the student's language (issue #11): same codes, lines, JSON keys and exit codes; only words change.

``--lang`` beats ``LABBRIDGE_LANG`` beats ``LC_ALL``/``LC_MESSAGES``/``LANG``; the ``--help``
of ``check`` and ``stream`` and the usage errors a student meets are translated too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from labbridge import i18n
from labbridge.cli import language
from tests.conftest import CONFIG_PATH, EXAMPLES, ROOT

LINE = re.compile(r"^(?P<prog>.+):(?P<line>\d+): (?P<sev>error|warning)\[(?P<code>[a-z-]+)\]: (?P<msg>.+)$")
STUDENT = str(EXAMPLES / "student-first-try.nc")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("LABBRIDGE_LANG", "LC_ALL", "LC_MESSAGES", "LANG")}
    return subprocess.run([sys.executable, "-m", "labbridge.cli.main", *args], capture_output=True, text=True,
                          env={**base, **(env or {})}, cwd=ROOT, timeout=60)


def diagnostics(stdout: str) -> list[tuple[str, str, str, str]]:
    found = [LINE.match(line) for line in stdout.strip().splitlines()[:-1]]
    assert all(found), stdout
    return [(m["line"], m["sev"], m["code"], m["msg"]) for m in found if m]


def test_check_in_lithuanian_has_the_same_codes_and_lines_as_english() -> None:
    english = run("check", STUDENT, "--machine", "mill-1", "--config", str(CONFIG_PATH))
    lithuanian = run("check", STUDENT, "--machine", "mill-1", "--config", str(CONFIG_PATH), "--lang", "lt")
    assert english.returncode == lithuanian.returncode == 1
    en, lt = diagnostics(english.stdout), diagnostics(lithuanian.stdout)
    assert [d[:3] for d in en] == [d[:3] for d in lt] and len(en) >= 7
    for (_l, _s, code, en_msg), (_l2, _s2, _c, lt_msg) in zip(en, lt):
        assert en_msg != lt_msg, f"{code} is still English: {lt_msg}"
    assert "staklių mill-1" in lithuanian.stdout and "pastūm" in lithuanian.stdout  # machining words, not English
    verdict = lithuanian.stdout.strip().splitlines()[-1]
    assert "ATMESTA" in verdict and "7 klaidos" in verdict and "12 eilučių" in verdict and "1 įspėjimas" in verdict
    assert lithuanian.stderr == ""


@pytest.fixture(scope="module")
def english_json() -> dict[str, object]:
    english = run("check", STUDENT, "-m", "mill-1", "--json", "--config", str(CONFIG_PATH))
    assert english.returncode == 1
    return dict(json.loads(english.stdout))


@pytest.mark.parametrize("lang", ["lt", "de"])
def test_json_keys_codes_and_lines_never_change(lang: str, english_json: dict[str, object]) -> None:
    other = run("check", STUDENT, "-m", "mill-1", "--json", "--config", str(CONFIG_PATH), "--lang", lang)
    assert other.returncode == 1
    en, tr = english_json, json.loads(other.stdout)
    assert set(tr) == set(en) and {k: v for k, v in tr.items() if k != "diagnostics"} == \
        {k: v for k, v in en.items() if k != "diagnostics"}
    strip = [[{k: v for k, v in d.items() if k != "message"} for d in r["diagnostics"]] for r in (en, tr)]
    assert strip[0] == strip[1]
    assert all(a["message"] != b["message"] for a, b in zip(en["diagnostics"], tr["diagnostics"]))


def test_the_language_is_chosen_by_flag_then_labbridge_lang_then_the_locale() -> None:
    args = ("check", STUDENT, "-m", "mill-1", "--config", str(CONFIG_PATH))
    verdict = lambda r: r.stdout.strip().splitlines()[-1]  # noqa: E731
    assert "ABGELEHNT" in verdict(run(*args, env={"LANG": "de_DE.UTF-8"}))
    everything = {"LANG": "de_DE.UTF-8", "LC_MESSAGES": "lv_LV.UTF-8", "LC_ALL": "et_EE.UTF-8"}
    assert "TAGASI LÜKATUD" in verdict(run(*args, env=everything))  # LC_ALL beats LC_MESSAGES beats LANG
    assert "NORAIDĪTS" in verdict(run(*args, "--lang", "lv", env={**everything, "LABBRIDGE_LANG": "lt"}))
    # the same order, without starting a process for each case
    env = {"LANG": "de_DE.UTF-8", "LC_MESSAGES": "lv_LV.UTF-8"}
    assert i18n.from_environment(env) == "lv"
    assert i18n.from_environment({**env, "LABBRIDGE_LANG": "lt"}) == "lt"
    assert i18n.from_environment({"LANG": "fr_FR.UTF-8"}) == "en"  # a language labbridge does not speak
    assert i18n.from_environment({"LC_ALL": "C", "LANG": "de_DE.UTF-8"}) == "en"
    bad = run(*args, "--lang", "fr")
    assert bad.returncode == 2 and "en, lt, lv, et, de" in bad.stderr and "Traceback" not in bad.stderr
    with pytest.raises(language.LanguageChoiceError, match="LABBRIDGE_LANG=klingon"):
        saved = os.environ.get("LABBRIDGE_LANG")
        os.environ["LABBRIDGE_LANG"] = "klingon"
        try:
            language.choose(["check"])
        finally:
            os.environ["LABBRIDGE_LANG"] = saved or "en"
            i18n.set_process_language("en")


@pytest.mark.parametrize(("lang", "words"), [
    ("lt", ("Naudojimas:", "Parinktys", "Patikrinti PROGRAMĄ", "Parodyti šį pranešimą")),
    ("de", ("Aufruf:", "Optionen", "PROGRAMM gegen Arbeitsraum", "Diese Hilfe anzeigen")),
])
def test_help_of_check_and_stream_is_translated(lang: str, words: tuple[str, ...]) -> None:
    check = run("check", "--help", "--lang", lang)
    assert check.returncode == 0
    text = " ".join(check.stdout.split())
    for word in words:
        assert word in text, (word, check.stdout)
    stream = run("stream", "--help", env={"LABBRIDGE_LANG": lang})
    assert stream.returncode == 0 and words[0] in stream.stdout and "--check-mode" in stream.stdout
    assert "Do not ask for confirmation" not in stream.stdout


def test_usage_errors_are_translated_with_the_same_exit_code() -> None:
    missing = run("check", STUDENT, "--lang", "lv")
    assert missing.returncode == 2 and "Trūkst opcijas '--machine' / '-m'." in missing.stderr
    assert "labbridge check --help" in missing.stderr
    unknown = run("stream", STUDENT, "--machin", "mill-1", "--lang", "et")
    assert unknown.returncode == 2 and "Sellist valikut pole: --machin" in unknown.stderr
    nofile = run("check", "nope.nc", "-m", "mill-1", "--config", str(CONFIG_PATH), "--lang", "lt")
    assert nofile.returncode == 2 and "nope.nc: tokio failo nėra" in nofile.stderr
    with i18n.language("de"):  # the config's own refusal, in the caller's language
        from labbridge.config import load_config
        from labbridge.errors import ConfigError

        with pytest.raises(ConfigError, match="keine Maschine 'mill-9'"):
            load_config(CONFIG_PATH).machine("mill-9", "config")


def test_usage_messages_are_rebuilt_from_the_error_fields() -> None:
    """Each kind of usage error the toolkit raises is matched (a toolkit that rewords it shows up here)."""
    from typer.testing import CliRunner

    from labbridge.cli.main import app

    seen = []
    for args in (["check", STUDENT], ["check", STUDENT, "--machin", "x"], ["check", STUDENT, "-m"],
                 ["check", STUDENT, STUDENT, "-m", "mill-1"]):
        result = CliRunner().invoke(app, args, standalone_mode=False)
        with i18n.language("de"):
            seen.append(language.usage_message(result.exception))
    assert seen[0].startswith("Option '--machine' / '-m' fehlt")
    assert seen[1].startswith("Unbekannte Option: --machin")
    assert seen[2] == "Option '-m' braucht einen Wert."
    assert seen[3].startswith("Unerwartete zusätzliche Argumente:")


def test_accept_language_and_environment_parsing() -> None:
    assert i18n.from_accept_language("lt-LT,lt;q=0.9,en-US;q=0.8,en;q=0.7") == "lt"
    assert i18n.from_accept_language("fr-CH, fr;q=0.9, de;q=0.8, *;q=0.5") == "de"
    assert i18n.from_accept_language("en;q=0.2, lv;q=0.9") == "lv"
    assert i18n.from_accept_language("et;q=0, de") == "de"
    assert i18n.from_accept_language("xx, yy") is None and i18n.from_accept_language("") is None
    assert i18n.from_environment({"LANG": "lv_LV.UTF-8"}) == "lv"
    assert i18n.from_environment({"LANG": "lv_LV.UTF-8", "LC_ALL": "C.UTF-8"}) == "en"
    assert i18n.from_environment({}) == "en"
    with pytest.raises(ValueError):
        i18n.from_environment({"LABBRIDGE_LANG": "tlh"})
    assert language.scan_argv(["check", "x.nc", "--lang=lv"]) == "lv"
    assert language.scan_argv(["check", "--", "--lang", "lv"]) is None


def test_the_compiled_catalogs_ship_with_the_package() -> None:
    """`make catalogs` writes the .mo files the package data lists; they load as GNU catalogs."""
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["labbridge"]
    assert "locale/*/LC_MESSAGES/*.mo" in data and "locale/*/LC_MESSAGES/*.po" in data
    for lang in ("lt", "lv", "et", "de"):
        assert (Path(i18n.LOCALE_DIR) / lang / "LC_MESSAGES" / "labbridge.po").is_file()
