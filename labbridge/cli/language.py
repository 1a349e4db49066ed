"""The CLI's language: chosen before any text is printed, help texts and usage errors included.

``--lang {en,lt,lv,et,de}`` beats ``LABBRIDGE_LANG`` beats the POSIX locale
(``LC_ALL``/``LC_MESSAGES``/``LANG``). The choice is made by scanning the command
line before the toolkit parses it, because ``--help`` and usage errors are
printed while parsing.

Help texts are written with ``N_()`` where commands are defined (at import, in
English) and translated here when the command tree is built. The CLI toolkit
(typer, with its own copy of click) writes its words in English: the help page's
panel titles are typer's module constants and are set here from our catalog;
``LocalizedCommand`` (the class of ``check`` and ``stream``) says "Usage:" and
"--help" in the chosen language; and :func:`usage_message` rewords the usage
errors a student meets (a missing option or argument, an unknown option, an option
without its value, extra arguments) from the error's own fields.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from labbridge import i18n
from labbridge.i18n import N_, _

RICH_CONSTANTS = {
    "DEFAULT_STRING": N_("[default: {}]"),
    "ENVVAR_STRING": N_("[env var: {}]"),
    "REQUIRED_LONG_STRING": N_("[required]"),
    "ARGUMENTS_PANEL_TITLE": N_("Arguments"),
    "OPTIONS_PANEL_TITLE": N_("Options"),
    "COMMANDS_PANEL_TITLE": N_("Commands"),
    "ERRORS_PANEL_TITLE": N_("Error"),
    "ABORTED_TEXT": N_("Aborted."),
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
    localize_toolkit()
    return lang


def localize_toolkit() -> None:
    """Put the help page's panel titles and markers of the CLI toolkit into the current language."""
    rich_utils = importlib.import_module("typer.rich_utils")
    for attr, msgid in RICH_CONSTANTS.items():
        setattr(rich_utils, attr, _(msgid))


class LocalizedCommand(TyperCommand):
    """A command whose usage line and --help option speak the chosen language."""

    def format_usage(self, ctx: Any, formatter: Any) -> None:
        formatter.write_usage(ctx.command_path, " ".join(self.collect_usage_pieces(ctx)), prefix=_("Usage:") + " ")

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.help = _("Show this message and exit.")
        return option


_REQUIRES_VALUE = re.compile(r"^Option '(?P<name>[^']+)' requires (?:an argument|\d+ arguments)\.$")
_EXTRA_ARGS = re.compile(r"^Got unexpected extra argument(?:s|\(s\))? \((?P<args>.*)\)$")


def usage_message(exc: Any) -> str:
    """A usage error in the current language, rebuilt from its fields (the toolkit's English if unknown)."""
    kind = type(exc).__name__
    if kind == "MissingParameter":
        param = getattr(exc, "param", None)
        name = param.get_error_hint() if param is not None else ""
        what = getattr(exc, "param_type", None) or (param.param_type_name if param is not None else "parameter")
        if what == "option":
            return _("Missing option {name}.").format(name=name)
        if what == "argument":
            return _("Missing argument {name}.").format(name=name)
        return _("Missing parameter {name}.").format(name=name)
    if kind == "NoSuchOption" and getattr(exc, "option_name", None):
        text = _("No such option: {name}").format(name=exc.option_name)
        if getattr(exc, "possibilities", None):
            text += " " + _("(possible options: {options})").format(options=", ".join(sorted(exc.possibilities)))
        return text
    message = str(getattr(exc, "message", "") or "")
    if (match := _REQUIRES_VALUE.match(message)) is not None:
        return _("Option {name} needs a value.").format(name=repr(match["name"]))
    if (match := _EXTRA_ARGS.match(message)) is not None:
        return _("Unexpected extra arguments: {args}").format(args=match["args"])
    return str(exc.format_message())


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
