"""Errors a person sees. Each carries a message that says what, where and what to do."""

from __future__ import annotations


class LabbridgeError(Exception):
    """Base of every error labbridge reports to a person (never shown as a traceback)."""


class ConfigError(LabbridgeError):
    """The lab config is missing, unreadable or invalid (CLI exit code 2)."""


class ProgramReadError(LabbridgeError):
    """A G-code program file cannot be opened or read (CLI exit code 2)."""


class ConnectionLost(LabbridgeError):
    """The link to a controller went away."""


class GateRejected(LabbridgeError):
    """The safety gate rejected a program for a machine: nothing was sent. ``report`` says why, line by line."""

    def __init__(self, message: str, report: object) -> None:
        super().__init__(message)
        self.report = report


class InterlockError(LabbridgeError):
    """A job may not start; the message names the interlock that refused it."""

    def __init__(self, interlock: str, message: str) -> None:
        super().__init__(message)
        self.interlock = interlock
