"""The password policy: long enough, not a common password, not the user's own name.

Length alone lets ``Password1!`` and ``admin1234`` through, which are the first
guesses of anyone trying. The policy refuses passwords that are, once lower-cased,
undone from leetspeak (``p@ssw0rd``) and stripped of leading/trailing digits and
symbols, a word of the bundled list (``data/common-passwords.txt``: breach-list
favourites, keyboard walks, and "password", "school", "lab" in the lab's languages)
or a repetition of one; that contain the user name; that use three characters or
fewer; or that are only digits and shorter than 12.
"""

from __future__ import annotations

import functools
import re

from labbridge.i18n import _
from pathlib import Path

MIN_LENGTH = 8
LIST_FILE = Path(__file__).parent / "data" / "common-passwords.txt"
_LEET = str.maketrans({"@": "a", "4": "a", "0": "o", "1": "i", "!": "i", "3": "e", "$": "s", "5": "s",
                       "7": "t", "+": "t", "ž": "z", "ā": "a"})
_EDGES = re.compile(r"^[\W\d_]+|[\W\d_]+$")


class WeakPassword(ValueError):
    """The password breaks the policy; the message says which rule and what to do."""


@functools.cache
def common_passwords() -> frozenset[str]:
    words = set()
    for line in LIST_FILE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            words.add(line.lower())
            words.update(_bases(line))
    words.discard("")
    return frozenset(words)


def _bases(password: str) -> set[str]:
    """The words under a password: lower case, digits and symbols cut from both ends, leetspeak undone."""
    lowered = password.lower()
    stripped = _EDGES.sub("", lowered)
    return {b for b in (stripped, stripped.translate(_LEET), _EDGES.sub("", lowered.translate(_LEET))) if b}


def _repeats_one(word: str, listed: frozenset[str]) -> bool:
    for size in range(1, len(word) // 2 + 1):
        if len(word) % size == 0 and word[:size] * (len(word) // size) == word:
            return word[:size] in listed or size <= 3
    return False


def check_password(password: str, username: str | None = None) -> None:
    """Raise WeakPassword naming the rule broken; return quietly if the password is acceptable."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(_("passwords need at least {n} characters; a short sentence is easy to remember").format(
            n=MIN_LENGTH))
    listed = common_passwords()
    lowered, bases = password.lower(), _bases(password)
    if len(set(lowered)) <= 3:
        raise WeakPassword(_("the password uses three different characters or fewer; mix more in"))
    if lowered in listed or any(b in listed or _repeats_one(b, listed) for b in bases) or _repeats_one(lowered, listed):
        raise WeakPassword(_("this is one of the most common passwords and is guessed first; pick another "
                             "(a few unrelated words work well)"))
    if username:
        name = username.lower()
        if len(name) >= 3 and (name in lowered or any(name in b for b in bases) or lowered in name
                               or lowered[::-1] == name):
            raise WeakPassword(_("the password must not contain the user name"))
    if password.isdigit() and len(password) < 12:
        raise WeakPassword(_("a password of digits only needs at least 12 of them; words are easier to remember"))
