"""Who may do what: roles, password hashing, bearer tokens and sign-in throttling.

Safe by default: every API route but login and the static dashboard needs a valid
token, and every action is checked against the caller's role. Stop always wins:
any signed-in role except viewer may hold or cancel; starting motion needs an
operator. Tokens are random, stored only as SHA-256 hashes, and revocable; they
expire after a while and sooner when unused (``last_used`` is recorded). A token
issued for a one-time password may only change that password; a share-link token
is a viewer with no user behind it. Checking a token never waits for the disk (the
store keeps tokens in memory), so a hold is never slowed by storage.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from enum import Enum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from labbridge.server.passwords import check_password
from labbridge.i18n import _
from labbridge.server.store import Store, User, sha256
from labbridge.server.throttle import LoginThrottle, Throttled


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
    RECORDS = "records"  # program texts, queue notes, job records (not for viewers: live state only)
    STORAGE = "storage"  # see whether the data dir can be written
    SHARE = "share"  # make and revoke view-only share links
    DRY_RUN = "dry_run"  # rehearse a queued program on the machine's digital twin (nothing moves)
    CLASS_MANAGE = "class.manage"  # open and close classes, see their submissions, approve into the queue


_STOP = {Action.VIEW, Action.HOLD, Action.CANCEL, Action.RECORDS}
PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.VIEWER: frozenset({Action.VIEW}),
    Role.TRAINER: frozenset(_STOP | {Action.PROGRAM_UPLOAD, Action.PROGRAM_CHECK, Action.QUEUE_SUBMIT,
                                     Action.QUEUE_REMOVE, Action.DRY_RUN, Action.CLASS_MANAGE}),
    Role.OPERATOR: frozenset(_STOP | {Action.PROGRAM_UPLOAD, Action.PROGRAM_CHECK, Action.QUEUE_SUBMIT,
                                      Action.QUEUE_REMOVE, Action.DRY_RUN, Action.JOB_START, Action.JOB_RESUME, Action.HOME,
                                      Action.UNLOCK, Action.JOG, Action.OVERRIDE, Action.RESET,
                                      Action.STORAGE, Action.SHARE, Action.CLASS_MANAGE}),
    Role.TECHNICIAN: frozenset(_STOP | {Action.DIAGNOSTICS, Action.SETTINGS_READ, Action.SETTINGS_WRITE,
                                        Action.AUDIT, Action.STORAGE}),
    Role.ADMIN: frozenset(Action),
}
"""The whole policy in one table (the admin may do everything, including users)."""


def allowed(role: str, action: Action) -> bool:
    try:
        return action in PERMISSIONS[Role(role)]
    except ValueError:
        return False


class Scope(str, Enum):
    """What a token may be used for."""

    FULL = "full"  # everything the user's role allows
    PASSWORD = "password"  # only POST /api/auth/password (signed in with a one-time password)
    SHARE = "share"  # a class's view-only share link: live state, nothing else


@dataclass(frozen=True)
class Principal:
    """A signed-in caller: the user and the token they used (so that it can be revoked)."""

    username: str
    role: str
    token_id: str
    scope: str = Scope.FULL.value

    def can(self, action: Action) -> bool:
        return self.scope != Scope.PASSWORD.value and allowed(self.role, action)

    def permissions(self) -> list[str]:
        return sorted(a.value for a in Action if self.can(a))


class UserExists(ValueError):
    """A user of that name is already there (HTTP 409)."""


class AuthError(Exception):
    """Bad credentials, missing/expired/revoked token (HTTP 401) or throttled (429)."""

    def __init__(self, message: str, status: int = 401, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class Auth:
    """Users, passwords and tokens on top of the store."""

    TOKEN_TTL = 12 * 3600.0
    IDLE_TIMEOUT = 2 * 3600.0
    TOUCH_EVERY = 15.0  # seconds between last_used writes of one token

    def __init__(self, store: Store, hasher: PasswordHasher | None = None, throttle: LoginThrottle | None = None,
                 idle_timeout: float | None = None) -> None:
        self.store = store
        self.hasher = hasher or PasswordHasher()
        self.throttle = throttle or LoginThrottle()
        self.idle_timeout = idle_timeout or self.IDLE_TIMEOUT
        self._dummy_hash = self.hasher.hash(secrets.token_hex(8))

    @staticmethod
    def new_password() -> str:
        return secrets.token_urlsafe(12)

    def create_user(self, username: str, password: str, role: str) -> User:
        validate_username(username)
        Role(role)
        validate_password(password, username)
        if self.store.get_user(username) is not None:
            raise UserExists(_("user {name} already exists").format(name=repr(username)))
        return self.store.add_user(username, self.hasher.hash(password), role)

    def set_password(self, username: str, password: str) -> None:
        validate_password(password, username)
        self.store.update_user(username, password_hash=self.hasher.hash(password), must_change=False)

    def ensure_admin(self, reset: bool = False) -> str | None:
        """Create the first admin (or reset its password); returns the one-time password, or None.

        The one-time password only lets its holder choose a new one (it was printed on a terminal)."""
        existing = self.store.get_user("admin")
        if existing is not None and not reset:
            return None
        password = self.new_password()
        if existing is None:
            self.store.add_user("admin", self.hasher.hash(password), Role.ADMIN.value, must_change=True)
        else:
            self.store.update_user("admin", password_hash=self.hasher.hash(password), role=Role.ADMIN.value,
                                   disabled=False, must_change=True)
            self.store.revoke_user_tokens("admin")
        return password

    def verify(self, username: str, password: str, client: str) -> User:
        """Check a password, throttled per (user, client); raises AuthError (401 or 429)."""
        try:
            attempt = self.throttle.begin(username, client)
        except Throttled as exc:
            raise AuthError(str(exc), status=429, retry_after=exc.retry_after) from None
        ok = False
        try:
            found = self.store.get_user(username)
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
        finally:
            attempt.succeeded() if ok else attempt.failed()
        if not ok or found is None:
            raise AuthError(_("wrong user name or password"))
        if self.hasher.check_needs_rehash(stored):
            try:
                self.store.update_user(username, password_hash=self.hasher.hash(password))
            except Exception:
                pass  # a full disk: the old hash still works
        return found[0]

    def login(self, username: str, password: str, client: str) -> tuple[str, dict[str, object], User]:
        """Verify the password and issue a token; raises AuthError (401 or 429)."""
        user = self.verify(username, password, client)
        scope = Scope.PASSWORD if user.must_change else Scope.FULL
        token, info = self.issue(user.username, self.TOKEN_TTL, scope)
        return token, info, user

    def issue(self, username: str, ttl: float, scope: Scope, label: str = "") -> tuple[str, dict[str, object]]:
        token = secrets.token_urlsafe(32)
        info = self.store.add_token(secrets.token_hex(8), sha256(token.encode()), username, ttl, scope.value, label)
        return token, info

    def authenticate(self, token: str | None, touch: bool = True) -> Principal:
        """The principal behind a bearer token; raises AuthError(401) if missing, unknown, expired, idle or revoked.

        ``touch`` records the use (``last_used``, at most every TOUCH_EVERY seconds)."""
        if not token:
            raise AuthError(_("sign in first (no token given)"))
        row = self.store.token_by_hash(sha256(token.encode()))
        if row is None:
            raise AuthError(_("unknown token; sign in again"))
        if row["revoked_at"] is not None:
            raise AuthError(_("this token was revoked; sign in again"))
        now = time.time()
        if row["expires_at"] < now:
            raise AuthError(_("this token has expired; sign in again"))
        scope = row.get("scope") or Scope.FULL.value
        last = row["last_used"] or row["created_at"]
        if scope != Scope.SHARE.value and now - last > self.idle_timeout:
            raise AuthError(_("signed out after {minutes} minutes without use; sign in again").format(
                minutes=f"{self.idle_timeout / 60:.0f}"))
        if scope == Scope.SHARE.value:
            principal = Principal(row["username"], Role.VIEWER.value, row["id"], scope)
        else:
            found = self.store.get_user(row["username"])
            if found is None or found[0].disabled:
                raise AuthError(_("this user no longer exists or is disabled"))
            principal = Principal(found[0].username, found[0].role, row["id"], scope)
        if touch and now - last >= self.TOUCH_EVERY:
            self.store.touch_token(row["id"], now)
        return principal


def validate_username(name: str) -> None:
    if not (1 <= len(name) <= 64) or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(_("user names are 1-64 letters, digits, '-', '_' or '.'"))


def validate_password(password: str, username: str | None = None) -> None:
    """The policy of :mod:`labbridge.server.passwords` (raises ValueError saying which rule)."""
    check_password(password, username)
