"""Turn one line of G-code into words, the way the controller's own reader would.

GRBL's reader (protocol.c) drops spaces and control characters, parenthesis and
semicolon comments, ignores ``/`` and upper-cases letters; what is left must fit
its line buffer. Fanuc-style controls read the same words plus O-numbers. The
lexer reports what it cleaned away so the checker can explain line-length errors
in the controller's terms.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from labbridge.i18n import _

# A word is a letter and a number; anything else (a stray character, a letter with no number) is
# captured by the third group so the lexer can say exactly what it could not read. Only ASCII digits are
# digits: Python's own \d (and float()) would read full-width or Arabic-Indic digits, which no controller does.
_WORD = re.compile(r"([A-Z])([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))|([A-Z][-+]?\.?)|(.)", re.ASCII)
_SPACE = re.compile(r"[\x00-\x20]+")
_NOT_ASCII = re.compile(r"[^\x00-\x7f]")
_LINE_END = re.compile(r"\r\n?|\n")
_REALTIME = frozenset("?!~")

MAX_INT_DIGITS = 8  # GRBL's nuts_bolts.c: digits of a number read_float keeps
FANUC_MAX_DIGITS = 8  # Fanuc-style controls refuse longer numbers (alarm PS0003 "too many digits")
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TINY = 1.401298464324817e-45  # below this GRBL's float is 0


def split_lines(text: str) -> list[str]:
    """Lines as GRBL's protocol.c ends them: at CR, at LF, and at CR LF (one end, not an empty line between).

    Unlike ``str.splitlines`` this never splits at form feed, vertical tab or Unicode separators, which
    GRBL drops inside a line."""
    lines = _LINE_END.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def grbl_read_float(number: str) -> float:
    """The value GRBL 1.1h's read_float gives ``number`` (sign, ASCII digits, at most one point).

    It keeps the first 8 digits, leading zeros included, and drops the rest: digits dropped before the point
    still scale the value, digits after it are lost (``0.000000001`` is 0). The exponent is an int8_t, as in
    the firmware. The result is exact in double; GRBL then holds it as a 32-bit float, which differs by less
    than 6e-8 of the value, and becomes 0 or infinity beyond the float's range."""
    negative = number[0] == "-"
    body = number.lstrip("+-")
    digits = body.replace(".", "")
    if len(digits) <= MAX_INT_DIGITS:
        value = float(body)
    else:
        point = body.find(".")
        whole = len(body) if point < 0 else point
        kept = digits[:MAX_INT_DIGITS]
        exp = -max(0, MAX_INT_DIGITS - whole) if whole < MAX_INT_DIGITS else whole - MAX_INT_DIGITS
        exp = (exp + 128) % 256 - 128  # int8_t
        value = float(f"{kept}e{exp}")
    if value > FLOAT32_MAX:
        value = math.inf
    elif value < FLOAT32_TINY:
        value = 0.0
    return -value if negative else value


def significant_digits(number: str) -> int:
    """Digits of a number without the leading zeros of its whole part (what a Fanuc-style control counts)."""
    body = number.lstrip("+-")
    point = body.find(".")
    whole, frac = (body, "") if point < 0 else (body[:point], body[point + 1:])
    return len(whole.lstrip("0")) + len(frac)


@dataclass(slots=True)
class Lexed:
    """One block after cleaning: its words, or why it could not be read."""

    words: list[tuple[str, float, str]]  # (letter, value, number text as written)
    cleaned: str  # what the controller would hold in its line buffer
    block_delete: bool = False
    error: str | None = None
    error_grbl: int | None = None
    unclosed_comment: bool = False
    message: str | None = None  # (MSG, ...) comment text
    special: str | None = None  # "%", "$", "#", "[", "O" for constructs the caller judges per dialect
    notes: list[str] | None = None  # numbers the controller reads differently from how they are written


def strip_comments(raw: str) -> tuple[str, bool, str | None]:
    """Remove ``( )`` and ``;`` comments; return (rest, unclosed, MSG text)."""
    if "(" not in raw and ";" not in raw:
        return raw, False, None
    out: list[str] = []
    message = None
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == ";":
            break
        if c == "(":
            end = raw.find(")", i + 1)
            if end < 0:
                return "".join(out), True, message
            body = raw[i + 1 : end]
            if body[:4].upper() == "MSG,":
                message = body[4:].strip()
            i = end + 1
            continue
        out.append(c)
        i += 1
    return "".join(out), False, message


def lex(raw: str, grbl: bool = True) -> Lexed:
    """Read one line as GRBL (``grbl``) or a Fanuc-style control would. Never raises: problems come back in
    ``error``, with the number GRBL would answer in ``error_grbl`` (None where only labbridge refuses)."""
    text, unclosed, message = strip_comments(raw)
    text = _SPACE.sub("", text)
    block_delete = False
    if text.startswith("/"):
        block_delete = True
        text = text[1:]
    if grbl and "/" in text:
        text = text.replace("/", "")  # GRBL ignores block delete wherever it stands
    odd = _NOT_ASCII.search(text)
    if odd is not None:
        return _not_ascii(text, odd.group(), grbl, block_delete)
    text = text.upper()
    if not text:
        return Lexed([], "", block_delete, unclosed_comment=unclosed, message=message)
    first = text[0]
    if first == "%":
        if text.strip("%"):
            return Lexed([], text, block_delete, _("text after '%' on a tape-framing line; put it on its own line"), 1)
        return Lexed([], text, block_delete, special="%")
    if first == "$":
        return Lexed([], text, block_delete, special="$")
    if "#" in text or "[" in text:
        return Lexed([], text, block_delete, special="#" if "#" in text else "[")
    words: list[tuple[str, float, str]] = []
    notes: list[str] = []
    for m in _WORD.finditer(text):
        letter = m.group(1)
        if letter is not None:
            number = m.group(2)
            if grbl:
                value = grbl_read_float(number)
                words.append((letter, value, number))
                if len(number) > MAX_INT_DIGITS and value != float(number):
                    notes.append(_("GRBL reads {word} as {letter}{value:.10g}: it keeps only the first {n} digits of "
                                   "a number; write fewer digits").format(word=letter + number, letter=letter,
                                                                            value=value, n=MAX_INT_DIGITS))
                continue
            if significant_digits(number) > FANUC_MAX_DIGITS:
                return Lexed(words, text, block_delete,
                             _("{word} has more than {n} digits: the control refuses it (alarm 'too many digits'); "
                               "write at most 3 decimals in mm, 4 in inches").format(word=letter + number,
                                                                                     n=FANUC_MAX_DIGITS), 2)
            words.append((letter, float(number), number))
            continue
        bad_word = m.group(3)
        if bad_word is not None:
            return Lexed(
                words, text, block_delete,
                _("'{letter}' has no number after it: write a value such as {letter}10 or remove the letter").format(
                    letter=bad_word[0]),
                2,
            )
        bad = m.group(4)
        if grbl and bad in _REALTIME:
            # serial.c takes these out of the stream before the line is built and acts on them (status report,
            # feed hold, cycle start): GRBL answers no error, so none is claimed; the block is still refused.
            return Lexed(words, text, block_delete, _(
                "{char} is a realtime command to GRBL (status report, feed hold or cycle start): it acts the moment "
                "it arrives and is dropped from the line; remove it from the program").format(char=repr(bad)), None)
        if bad == ".":
            why = _("a number has two decimal points or a stray '.'; write numbers like 12.5")
        else:
            why = _("unexpected character {char}: every word is a letter followed by a number, e.g. X12.5").format(
                char=repr(bad))
        return Lexed(words, text, block_delete, why, 1)
    return Lexed(words, text, block_delete, unclosed_comment=unclosed, message=message, notes=notes or None)


def _not_ascii(text: str, odd: str, grbl: bool, block_delete: bool) -> Lexed:
    """A character outside ASCII in a block (comments may hold any text)."""
    what = _("the character {char} (U+{code:04X}) is not plain ASCII").format(char=repr(odd), code=ord(odd))
    if odd.isdigit():
        what += ": " + _("only 0-9 are digits in G-code")
    elif odd.isspace():
        what += ": " + _("use an ordinary space in G-code")
    if not grbl:
        return Lexed([], text, block_delete, _("{what}; only comments may hold other characters").format(what=what), 1)
    # GRBL's serial input drops every byte above 0x7F, so GRBL reads the block without it.
    seen = lex(_NOT_ASCII.sub("", text), grbl=True)
    if seen.error is not None:
        return Lexed([], text, block_delete, _("{what}; GRBL drops it and then reads the block as '{block}': "
                                               "{error}").format(what=what, block=seen.cleaned, error=seen.error),
                     seen.error_grbl)
    if seen.cleaned:
        why = _("{what}; GRBL would drop it and run '{block}' instead of what is written, so labbridge refuses the "
                "block: retype it with ASCII characters").format(what=what, block=seen.cleaned)
    else:
        why = _("{what}; GRBL would drop it and read an empty line instead of what is written, so labbridge refuses "
                "the block: retype it with ASCII characters").format(what=what)
    return Lexed([], text, block_delete, why, None)
