"""structlog configured in one place: JSON lines when not on a terminal, readable lines when on one.

Every job event carries machine, job id and user; bind them with ``log.bind(...)``.
"""

from __future__ import annotations

import logging
from collections import deque
import sys
from typing import Any, TextIO

import structlog

_configured = False
RECENT_EVENTS: deque[dict[str, Any]] = deque(maxlen=1000)
"""The latest log events, for technicians' diagnostics in the dashboard."""


def _ensure_context(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Every event names its machine, job and user (null when not about one)."""
    for key in ("machine", "job", "user"):
        event.setdefault(key, None)
    return event


def _remember(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    RECENT_EVENTS.append(dict(event))
    return event


def configure_logging(level: str = "info", stream: TextIO | None = None, json: bool | None = None) -> None:
    """Set up structlog once. Logs go to stderr so that stdout stays for command output."""
    global _configured
    out = stream if stream is not None else sys.stderr
    if json is None:
        json = not out.isatty()
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _ensure_context,
            _remember,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    _configured = True


def get_logger(**context: Any) -> Any:
    """A bound logger; configures defaults on first use."""
    if not _configured:
        configure_logging(level="warning")
    return structlog.get_logger("labbridge").bind(**context)
