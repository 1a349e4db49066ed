"""The CLI's language: chosen before any text is printed, help texts included.

``--lang {en,lt,lv,et,de}`` beats ``LABBRIDGE_LANG`` beats the POSIX locale
(``LC_ALL``/``LC_MESSAGES``/``LANG``). The choice is made by scanning the command
line before the toolkit parses it, because ``--help`` and usage errors are
printed while parsing.

Help texts are written with ``N_()`` where commands are defined (at import, in
English) and translated here when the command tree is built. Usage errors and the
help page's own words ("Usage:", "Options", "Missing option …") come from the CLI
toolkit (click, through typer), which looks them up with the standard ``gettext``
function it imported; a second catalog, ``toolkit``, carries those of its messages
a student meets, and is handed to the toolkit's modules here.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from labbridge import i18n
from labbridge.i18n import N_

TOOLKIT_DOMAIN = "toolkit"
TOOLKIT_MODULES = (
    "click.core", "click.exceptions", "click.types", "click.parser", "click.decorators", "click.formatting",
    "click.termui", "typer.core", "typer.main", "typer.rich_utils",
)
RICH_CONSTANTS = {
    "DEFAULT_STRING": "[default: {}]",
    "ENVVAR_STRING": "[env var: {}]",
    "REQUIRED_LONG_STRING": "[required]",
    "ARGUMENTS_PANEL_TITLE": "Arguments",
    "OPTIONS_PANEL_TITLE": "Options",
    "COMMANDS_PANEL_TITLE": "Commands",
    "ERRORS_PANEL_TITLE": "Error",
    "ABORTED_TEXT": "Aborted.",
}
"""typer's help-page words, computed once when its module is imported: set again in the chosen language."""

LangOption = Annotated[
    str | None,
    typer.Option("--lang", help=N_("Language of messages: en, lt, lv, et or de (default: $LABBRIDGE_LANG, "
                                   "else the system locale)."),
                 show_default=False, metavar="LANG"),
]
"""Declared by the commands students and trainers use; the value was already applied by :func:`choose`."""


class LanguageChoiceError(ValueError):
    """--lang or LABBRIDGE_LANG names a language labbridge does not speak."""


def scan_argv(argv: Sequence[str]) -> str | None:
    """The value of ``--lang`` on a command line (``--lang lt`` or ``--lang=lt``), or None."""
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--lang" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--lang="):
            return arg.split("=", 1)[1]
    return None


def choose(argv: Sequence[str]) -> str:
    """Pick the CLI's language and apply it to the process; raises LanguageChoiceError for an unknown one."""
    given = scan_argv(argv)
    if given is not None:
        lang = i18n.normalize(given)
        if lang is None or lang != given.strip().lower():
            raise LanguageChoiceError(i18n._("--lang {value}: choose one of {choices}").format(
                value=given, choices=", ".join(i18n.LANGUAGES)))
    else:
        try:
            lang = i18n.from_environment()
        except ValueError as exc:
            raise LanguageChoiceError(i18n._("{env}={value}: choose one of {choices}").format(
                env=i18n.LANG_ENV, value=exc, choices=", ".join(i18n.LANGUAGES))) from None
    i18n.set_process_language(lang)
    localize_toolkit(lang)
    return lang


def localize_toolkit(lang: str) -> None:
    """Give the CLI toolkit's modules the ``toolkit`` catalog of ``lang`` for their own messages."""
    catalog = i18n.translations(lang, TOOLKIT_DOMAIN)
    for name in TOOLKIT_MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "_"):
            module._ = catalog.gettext  # type: ignore[attr-defined]
        if hasattr(module, "ngettext"):
            module.ngettext = catalog.ngettext  # type: ignore[attr-defined]
    rich_utils = importlib.import_module("typer.rich_utils")
    for attr, msgid in RICH_CONSTANTS.items():
        setattr(rich_utils, attr, catalog.gettext(msgid))


def localize_help(command: Any) -> None:
    """Translate the help of ``command``, its parameters and its subcommands (marked with ``N_``)."""
    for attr in ("help", "short_help", "epilog"):
        text = getattr(command, attr, None)
        if isinstance(text, str) and text:
            setattr(command, attr, i18n._(text))
    for param in getattr(command, "params", []):
        text = getattr(param, "help", None)
        if isinstance(text, str) and text:
            param.help = i18n._(text)
    for sub in getattr(command, "commands", {}).values():
        localize_help(sub)
