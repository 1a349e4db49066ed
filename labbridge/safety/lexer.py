"""Turn one line of G-code into words, the way the controller's own reader would.

GRBL's reader (protocol.c) drops spaces and control characters, parenthesis and
semicolon comments, ignores ``/`` and upper-cases letters; what is left must fit
its line buffer. Fanuc-style controls read the same words plus O-numbers. The
lexer reports what it cleaned away so the checker can explain line-length errors
in the controller's terms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A word is a letter and a number; anything else (a stray character, a letter with no number) is
# captured by the third group so the lexer can say exactly what it could not read.
_WORD = re.compile(r"([A-Z])([-+]?(?:\d+\.?\d*|\.\d+))|([A-Z][-+]?\.?)|(.)")
_SPACE = re.compile(r"[\x00-\x20]+")


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


def lex(raw: str) -> Lexed:
    """Read one line. Never raises: problems come back in ``error``."""
    text, unclosed, message = strip_comments(raw)
    text = _SPACE.sub("", text)
    block_delete = False
    if text.startswith("/"):
        block_delete = True
        text = text[1:]
    text = text.upper()
    if not text:
        return Lexed([], "", block_delete, unclosed_comment=unclosed, message=message)
    first = text[0]
    if first == "%":
        if text.strip("%"):
            return Lexed([], text, block_delete, "text after % on a tape-framing line; put it on its own line", 1)
        return Lexed([], text, block_delete, special="%")
    if first == "$":
        return Lexed([], text, block_delete, special="$")
    if "#" in text or "[" in text:
        return Lexed([], text, block_delete, special="#" if "#" in text else "[")
    words: list[tuple[str, float, str]] = []
    for m in _WORD.finditer(text):
        letter = m.group(1)
        if letter is not None:
            number = m.group(2)
            words.append((letter, float(number), number))
            continue
        bad_word = m.group(3)
        if bad_word is not None:
            return Lexed(
                words, text, block_delete,
                f"'{bad_word[0]}' has no number after it: write a value such as {bad_word[0]}10 or remove the letter",
                2,
            )
        bad = m.group(4)
        if ord(bad) > 0x7E:
            why = f"the character {bad!r} cannot be part of G-code; only comments may hold other characters"
        elif bad == ".":
            why = "a number has two decimal points or a stray '.'; write numbers like 12.5"
        else:
            why = f"unexpected character {bad!r}: every word is a letter followed by a number, e.g. X12.5"
        return Lexed(words, text, block_delete, why, 1)
    if block_delete:
        pass
    return Lexed(words, text, block_delete, unclosed_comment=unclosed, message=message)
