"""Diagnostics: what the safety gate tells a student, a trainer and the tools built on it.

``code`` values are stable (other tools match on them); ``message`` says what is
wrong and how to fix it. ``grbl_error`` is the number GRBL itself would answer
(``error:N``) when the controller would reject the block too, so the GRBL
simulator can reuse the interpreter and answer as the firmware does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    line: int
    severity: Severity
    code: str
    message: str
    grbl_error: int | None = None

    def to_json(self) -> dict[str, object]:
        return {"line": self.line, "severity": self.severity, "code": self.code, "message": self.message}

    def format(self, program: str) -> str:
        """Compiler-style: ``PROGRAM:LINE: error[CODE]: message``."""
        return f"{program}:{self.line}: {self.severity}[{self.code}]: {self.message}"


# The stable codes, with what each means. Tests assert that every code here is emitted by some program.
CODES: dict[str, str] = {
    "envelope": "motion leaves the machine's travel envelope",
    "keep-out": "motion enters a keep-out box (vise, fixture, chuck)",
    "spindle-speed": "spindle speed above the machine's maximum",
    "feed-rate": "feed rate above the machine's maximum",
    "no-feed-rate": "feed motion without a feed rate (GRBL error 22)",
    "arc-radius-mismatch": "arc end point is not on the arc's circle",
    "arc-zero-radius": "arc with zero radius",
    "arc-impossible": "R arc whose end point is further than the diameter",
    "arc-no-offsets": "IJK arc with no offset in the arc's plane",
    "unsupported": "word, code or construct the controller does not support",
    "unsupported-cycle": "canned cycle labbridge does not simulate",
    "line-too-long": "block longer than the controller's line buffer",
    "spindle-off-cut": "feed motion while the spindle is off",
    "g96-no-clamp": "constant surface speed (G96) without a G50 spindle clamp",
    "no-program-end": "the program never ends with M2 or M30",
    "tool-change": "tool change on a machine without a changer",
    "syntax": "the block cannot be read (bad number, missing value, stray character)",
    "modal-conflict": "two words of the same modal group in one block",
    "repeated-word": "the same word twice in one block",
    "missing-word": "a command lacks a word it needs",
    "invalid-value": "a word's value is out of its allowed range",
    "unused-word": "a word that no command in the block uses (GRBL error 36)",
    "no-axis-words": "a command that needs axis words has none",
    "binary": "the file is not text (NUL bytes, invalid UTF-8)",
    "forbidden-code": "a code the lab has forbidden on this machine",
    "after-end": "blocks after M2/M30 are never executed",
    "probe": "probe move problem (no target, zero length)",
    "too-many-diagnostics": "further diagnostics were suppressed",
}
