"""Limits on what one client may send: request bodies per route, and websocket messages per second.

Every HTTP route has a body limit, checked against Content-Length before a byte of
the body is read and counted again as it streams (chunked bodies have no length).
Sign-in takes a few KB; programs keep their 10 MB; everything else 64 KB. Websocket
messages are paced per connection by a token bucket: a client over its rate is
simply not read until it is back under it (the flood waits in its own socket
buffers, not in the server's memory or time), and one that stays over it for long
is closed.
"""

from __future__ import annotations

import time

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from labbridge.server.classes import MAX_PROGRAM_BYTES, too_large

AUTH_BODY = 4 * 1024
DEFAULT_BODY = 64 * 1024
CLASS_SUBMISSION_BODY = MAX_PROGRAM_BYTES * 6 + 4096  # a class program (<= 256 KB) in JSON: escapes up to 6x
MULTIPART_SLACK = 64 * 1024
WS_MESSAGE_MAX = 64 * 1024
WS_FIRST_MESSAGE_MAX = 4 * 1024
DRAIN_MAX = 1024 * 1024
"""A refused body up to this size (or up to twice its route's limit, so that a program a little over 10 MB gets
its answer too) is read and dropped before the answer, so that closing the connection with unread bytes (a TCP
reset) cannot destroy the 413 before the client reads it; bigger ones are not read at all."""


def body_limit(path: str, method: str, max_upload: int) -> int:
    """The most bytes a request to ``path`` may carry."""
    if path.startswith("/api/auth/"):
        return AUTH_BODY
    if method == "POST" and path == "/api/programs":
        return max_upload + MULTIPART_SLACK
    if method == "POST" and path == "/api/programs/text":
        return 2 * max_upload + MULTIPART_SLACK  # JSON escapes every newline and quote
    if method == "POST" and _is_class_submission(path):
        return CLASS_SUBMISSION_BODY  # the class route checks the program's own 256 KB, in the student's language
    return DEFAULT_BODY


def _is_class_submission(path: str) -> bool:
    parts = path.strip("/").split("/")
    return len(parts) == 4 and parts[:2] == ["api", "classes"] and parts[3] == "submissions"


def _describe(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n // 1024} KB"


class BodyLimit:
    """Refuse request bodies over their route's limit (413) before they are read or stored."""

    def __init__(self, app: ASGIApp, max_upload: int) -> None:
        self.app = app
        self.max_upload = max_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"], scope["method"], self.max_upload)
        if limit == CLASS_SUBMISSION_BODY:
            message = too_large()
        elif limit > DEFAULT_BODY:
            message = (f"the upload is larger than the {(limit - MULTIPART_SLACK) / (1024 * 1024):.1f} MB limit; "
                       "split the program")
        else:
            message = f"the request body is larger than the {_describe(limit)} this route accepts"
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            if length.isdigit() and int(length) <= max(DRAIN_MAX, 2 * limit):
                await _drain(receive)
            response = JSONResponse({"detail": message}, status_code=413, headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, message, headers={"Connection": "close"})
            return msg

        await self.app(scope, limited, send)


async def _drain(receive: Receive) -> None:
    """Read and drop a (small) refused body."""
    while True:
        msg = await receive()
        if msg["type"] != "http.request" or not msg.get("more_body"):
            return


class TokenBucket:
    """``rate`` messages per second with bursts of ``burst``; ``take`` says how long to wait for the next one."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self) -> float:
        """Spend one token; returns 0 if one was there, else the seconds until it will have been earned."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate
