"""Sign-in throttling that slows a guesser down without locking anyone else out.

Failures are counted per (user name, client): the lab's admin cannot be locked out
by a student guessing from another device. After a few free failures each further
attempt from that pair must wait longer (1 s, 2 s, 4 s … up to a minute); nothing is
ever locked, and a right password after the wait gets in.

Behind one NAT every phone has the same address. So a browser that has signed in as
a user before carries a signed *device cookie* for that user; its attempts are
counted under the cookie, not the address, and a guesser without it cannot slow
them down (OWASP's "device cookies").

The check is atomic: only one password check per (user, client) runs at a time, so
a burst of parallel guesses is checked one by one, each failure adding its wait.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from labbridge.i18n import _

DEVICE_COOKIE = "labbridge_device"


class Throttled(Exception):
    """This (user, client) must wait before its next sign-in attempt (HTTP 429)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Record:
    failures: int = 0
    last: float = 0.0
    not_before: float = 0.0
    busy: bool = False


class LoginThrottle:
    """Per (user, client) failure counts with growing waits; ``begin`` reserves the one check allowed at a time."""

    def __init__(self, free: int = 3, base: float = 1.0, max_delay: float = 60.0, forget: float = 900.0,
                 max_keys: int = 100_000) -> None:
        self.free = free
        self.base = base
        self.max_delay = max_delay
        self.forget = forget
        self.max_keys = max_keys
        self._records: dict[tuple[str, str], _Record] = {}
        self._lock = threading.Lock()

    def delay_after(self, failures: int) -> float:
        """The wait before the next attempt once ``failures`` have been made."""
        if failures < self.free:
            return 0.0
        return min(self.base * 2 ** (failures - self.free), self.max_delay)

    def begin(self, username: str, client: str) -> _Attempt:
        """Reserve a password check for (user, client), or raise Throttled saying how long to wait."""
        key = (username.lower(), client)
        now = time.monotonic()
        with self._lock:
            record = self._records.get(key)
            if record is not None and now - record.last > self.forget and not record.busy:
                record = None
                del self._records[key]
            if record is None:
                if len(self._records) >= self.max_keys:
                    self._prune(now)
                record = self._records[key] = _Record()
            if record.busy:
                raise Throttled(_("another sign-in for this user from here is being checked; try again in a "
                                  "moment"), 1.0)
            if now < record.not_before:
                wait = record.not_before - now
                raise Throttled(_("too many wrong passwords for this user from here; wait {seconds} s and try again "
                                  "(nothing is locked: the right password works after the wait)").format(
                    seconds=f"{wait:.0f}"), wait)
            record.busy = True
        return _Attempt(self, key)

    def _finish(self, key: tuple[str, str], ok: bool) -> None:
        now = time.monotonic()
        with self._lock:
            record = self._records.get(key)
            if record is None:
                return
            record.busy = False
            if ok:
                del self._records[key]
                return
            record.failures += 1
            record.last = now
            record.not_before = now + self.delay_after(record.failures)

    def _prune(self, now: float) -> None:
        stale = [k for k, r in self._records.items() if not r.busy and now - r.last > self.forget]
        for key in stale or list(self._records)[: len(self._records) // 2]:
            if not self._records[key].busy:
                del self._records[key]


class _Attempt:
    """One reserved password check; report its outcome exactly once."""

    def __init__(self, throttle: LoginThrottle, key: tuple[str, str]) -> None:
        self._throttle = throttle
        self._key = key
        self._done = False

    def succeeded(self) -> None:
        self._end(True)

    def failed(self) -> None:
        self._end(False)

    def _end(self, ok: bool) -> None:
        if not self._done:
            self._done = True
            self._throttle._finish(self._key, ok)


class DeviceCookies:
    """Signed ``user:nonce`` cookies naming a browser that has signed in as that user before."""

    def __init__(self, key_file: Path | None = None) -> None:
        self._key = _load_key(key_file) if key_file is not None else secrets.token_bytes(32)

    def issue(self, username: str) -> str:
        nonce = secrets.token_urlsafe(12)
        return f"{nonce}.{self._sign(username, nonce)}"

    def client_id(self, cookie: str | None, username: str) -> str | None:
        """``device:<nonce>`` if the cookie was issued to ``username`` by this server, else None."""
        if not cookie or "." not in cookie:
            return None
        nonce, _, signature = cookie.partition(".")
        if hmac.compare_digest(signature, self._sign(username, nonce)):
            return f"device:{nonce}"
        return None

    def _sign(self, username: str, nonce: str) -> str:
        mac = hmac.new(self._key, f"{username.lower()}:{nonce}".encode(), hashlib.sha256)
        return mac.hexdigest()[:32]


def _load_key(path: Path) -> bytes:
    """The signing key kept in the data dir (0600), created on first use; a fresh one if it cannot be kept."""
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    except OSError:
        pass
    key = secrets.token_bytes(32)
    try:
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_bytes(key)
    except OSError:
        pass  # a full disk: cookies then last until the next restart
    return key
