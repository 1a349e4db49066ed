"""Who may do what: roles, password hashing, bearer tokens and the login rate limit.

Safe by default: every API route but login and the static dashboard needs a valid
token, and every action is checked against the caller's role. Stop always wins:
any signed-in role except viewer may hold or cancel; starting motion needs an
operator. Tokens are random, stored only as SHA-256 hashes, and revocable.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import Enum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from labbridge.i18n import _
from labbridge.server.store import Store, User, sha256


class Role(str, Enum):
    VIEWER = "viewer"
    TRAINER = "trainer"
    OPERATOR = "operator"
    TECHNICIAN = "technician"
    ADMIN = "admin"


class Action(str, Enum):
    """Everything the API lets someone do; each route names exactly one."""

    VIEW = "view"  # machine state, the queue, the program list
    PROGRAM_UPLOAD = "program.upload"
    PROGRAM_CHECK = "program.check"
    QUEUE_SUBMIT = "queue.submit"
    QUEUE_REMOVE = "queue.remove"
    JOB_START = "job.start"
    JOB_RESUME = "job.resume"
    HOLD = "hold"
    CANCEL = "cancel"
    HOME = "home"
    UNLOCK = "unlock"
    JOG = "jog"
    OVERRIDE = "override"
    RESET = "reset"
    DIAGNOSTICS = "diagnostics"
    SETTINGS_READ = "settings.read"
    SETTINGS_WRITE = "settings.write"
    USERS = "users"
    AUDIT = "audit"
    CLASS_MANAGE = "class.manage"  # open and close classes, see their submissions, approve into the queue


_STOP = {Action.VIEW, Action.HOLD, Action.CANCEL}
PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.VIEWER: frozenset({Action.VIEW}),
    Role.TRAINER: frozenset(_STOP | {Action.PROGRAM_UPLOAD, Action.PROGRAM_CHECK, Action.QUEUE_SUBMIT,
                                     Action.QUEUE_REMOVE, Action.CLASS_MANAGE}),
    Role.OPERATOR: frozenset(_STOP | {Action.PROGRAM_UPLOAD, Action.PROGRAM_CHECK, Action.QUEUE_SUBMIT,
                                      Action.QUEUE_REMOVE, Action.JOB_START, Action.JOB_RESUME, Action.HOME,
                                      Action.UNLOCK, Action.JOG, Action.OVERRIDE, Action.RESET,
                                      Action.CLASS_MANAGE}),
    Role.TECHNICIAN: frozenset(_STOP | {Action.DIAGNOSTICS, Action.SETTINGS_READ, Action.SETTINGS_WRITE,
                                        Action.AUDIT}),
    Role.ADMIN: frozenset(Action),
}
"""The whole policy in one table (the admin may do everything, including users)."""


def allowed(role: str, action: Action) -> bool:
    try:
        return action in PERMISSIONS[Role(role)]
    except ValueError:
        return False


@dataclass(frozen=True)
class Principal:
    """A signed-in caller: the user and the token they used (so that it can be revoked)."""

    username: str
    role: str
    token_id: str

    def can(self, action: Action) -> bool:
        return allowed(self.role, action)

    def permissions(self) -> list[str]:
        return sorted(a.value for a in Action if self.can(a))


class AuthError(Exception):
    """Bad credentials, missing/expired/revoked token (HTTP 401) or rate limited (429)."""

    def __init__(self, message: str, status: int = 401, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class LoginLimiter:
    """At most ``attempts`` failed logins per ``window`` seconds per client address and per user name."""

    def __init__(self, attempts: int = 5, window: float = 60.0) -> None:
        self.attempts = attempts
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and q[0] < now - self.window:
            q.popleft()
        return q

    def check(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                q = self._recent(key, now)
                if len(q) >= self.attempts:
                    wait = q[0] + self.window - now
                    raise AuthError(_("too many failed sign-ins; wait {seconds} s and try again").format(
                        seconds=f"{wait:.0f}"), status=429, retry_after=wait)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def succeeded(self, username_key: str) -> None:
        with self._lock:
            self._failures.pop(username_key, None)


class Auth:
    """Users, passwords and tokens on top of the store."""

    TOKEN_TTL = 12 * 3600.0

    def __init__(self, store: Store, hasher: PasswordHasher | None = None, limiter: LoginLimiter | None = None) -> None:
        self.store = store
        self.hasher = hasher or PasswordHasher()
        self.limiter = limiter or LoginLimiter()
        self._dummy_hash = self.hasher.hash(secrets.token_hex(8))

    @staticmethod
    def new_password() -> str:
        return secrets.token_urlsafe(12)

    def create_user(self, username: str, password: str, role: str) -> User:
        validate_username(username)
        Role(role)
        validate_password(password)
        if self.store.get_user(username) is not None:
            raise ValueError(f"user {username!r} already exists")
        return self.store.add_user(username, self.hasher.hash(password), role)

    def set_password(self, username: str, password: str) -> None:
        validate_password(password)
        self.store.update_user(username, password_hash=self.hasher.hash(password))

    def ensure_admin(self, reset: bool = False) -> str | None:
        """Create the first admin (or reset its password); returns the one-time password, or None."""
        existing = self.store.get_user("admin")
        if existing is not None and not reset:
            return None
        password = self.new_password()
        if existing is None:
            self.store.add_user("admin", self.hasher.hash(password), Role.ADMIN.value)
        else:
            self.store.update_user("admin", password_hash=self.hasher.hash(password), role=Role.ADMIN.value,
                                   disabled=False)
            self.store.revoke_user_tokens("admin")
        return password

    def login(self, username: str, password: str, client: str) -> tuple[str, dict[str, object], User]:
        """Verify the password and issue a token; raises AuthError (401 or 429)."""
        keys = (f"ip:{client}", f"user:{username}")
        self.limiter.check(*keys)
        found = self.store.get_user(username)
        ok = False
        if found is None:
            try:  # same work as a real check, so that timing does not reveal which names exist
                self.hasher.verify(self._dummy_hash, password)
            except (VerificationError, InvalidHashError):
                pass
        else:
            user, stored = found
            try:
                ok = self.hasher.verify(stored, password) and not user.disabled
            except (VerificationError, InvalidHashError):
                ok = False
        if not ok or found is None:
            self.limiter.failed(*keys)
            raise AuthError(_("wrong user name or password"))
        user = found[0]
        self.limiter.succeeded(keys[1])
        if self.hasher.check_needs_rehash(found[1]):
            self.store.update_user(username, password_hash=self.hasher.hash(password))
        token = secrets.token_urlsafe(32)
        token_id = secrets.token_hex(8)
        info = self.store.add_token(token_id, sha256(token.encode()), user.username, self.TOKEN_TTL)
        return token, info, user

    def authenticate(self, token: str | None) -> Principal:
        """The principal behind a bearer token; raises AuthError(401) if missing, unknown, expired or revoked."""
        if not token:
            raise AuthError(_("sign in first (no token given)"))
        row = self.store.token_by_hash(sha256(token.encode()))
        if row is None:
            raise AuthError(_("unknown token; sign in again"))
        if row["revoked_at"] is not None:
            raise AuthError(_("this token was revoked; sign in again"))
        if row["expires_at"] < time.time():
            raise AuthError(_("this token has expired; sign in again"))
        found = self.store.get_user(row["username"])
        if found is None or found[0].disabled:
            raise AuthError(_("this user no longer exists or is disabled"))
        return Principal(found[0].username, found[0].role, row["id"])


def validate_username(name: str) -> None:
    if not (1 <= len(name) <= 64) or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError("user names are 1-64 letters, digits, '-', '_' or '.'")


def validate_password(password: str) -> None:
    if len(password) < 8:
        raise ValueError("passwords need at least 8 characters")
