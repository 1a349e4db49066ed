"""Helpers for the web server tests: build the app on a temp data dir, sign in users by role."""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from labbridge.config import LabConfig, parse_config
from labbridge.sim import start_simulator
from labbridge.server.api.deps import ServerSettings
from labbridge.server.app import build_context, create_app

ROOT = Path(__file__).resolve().parent.parent
CONFIG_PATH = ROOT / "config" / "machines.yaml"
ROLES = ("viewer", "trainer", "operator", "technician", "admin")
PASSWORD = "correct horse battery"
ADMIN_PASSWORD = "the lab runs on coffee"


def password_of(user: str, which: str = "") -> str:
    """A password for ``user`` that the password policy accepts (it never contains the user name)."""
    return f"silver lathe {which} {sum(map(ord, user))}".replace("  ", " ")
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


def lab_config_data(machines: tuple[str, ...] = ("mill-1",), unreachable: bool = True) -> dict[str, Any]:
    """The shipped config (as YAML data) cut down to ``machines``; with ``unreachable`` their ports point nowhere."""
    data = yaml.safe_load(CONFIG_PATH.read_text())
    data["machines"] = {k: copy.deepcopy(v) for k, v in data["machines"].items() if k in machines}
    if unreachable:
        for m in data["machines"].values():
            conn = m.get("connection", {})
            if "serial" in conn:
                conn["serial"]["port"] = "/nonexistent/labbridge-test-tty"
    return data  # type: ignore[no-any-return]


def lab_config(machines: tuple[str, ...] = ("mill-1",), unreachable: bool = True) -> LabConfig:
    """:func:`lab_config_data`, parsed, for a server run in this process."""
    return parse_config(lab_config_data(machines, unreachable), "test config")


def write_lab_config(path: Path, machines: tuple[str, ...] = ("mill-1",), unreachable: bool = True) -> Path:
    """:func:`lab_config_data` written to ``path`` for a server process (``--config``); returns ``path``."""
    path.write_text(yaml.safe_dump(lab_config_data(machines, unreachable)))
    return path


def settings(tmp: Path, config: LabConfig | None = None, **kw: Any) -> ServerSettings:
    if kw.pop("demo", False):
        kw["simulators"] = start_simulator
    return ServerSettings(config=config or lab_config(), data_dir=tmp, **kw)


def admin_first_sign_in(client: Any, one_time_password: str) -> str:
    """Sign in with the printed one-time password, choose ADMIN_PASSWORD as the dashboard asks, sign in again;
    returns the admin's full token. ``client`` is a TestClient or an httpx.Client on a running server."""
    r = client.post("/api/auth/login", json={"username": "admin", "password": one_time_password})
    assert r.status_code == 200 and r.json()["must_change_password"], r.text
    r = client.post("/api/auth/password", headers={"Authorization": f"Bearer {r.json()['token']}"},
                    json={"old_password": one_time_password, "new_password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    r = client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 200 and not r.json()["must_change_password"], r.text
    return str(r.json()["token"])


def admin_ready(server: Any) -> str:
    """The admin's password on a running server, choosing it (once) at the one-time password's first sign-in."""
    if not getattr(server, "admin_chosen", False):
        import httpx

        with httpx.Client(base_url=server.url, timeout=60) as client:
            admin_first_sign_in(client, server.password)
        server.admin_chosen = True
    return ADMIN_PASSWORD


class Api:
    """A TestClient plus tokens for one user per role."""

    def __init__(self, client: TestClient, ctx: Any) -> None:
        self.client = client
        self.ctx = ctx
        self.tokens: dict[str, str] = {}

    def login(self, username: str, password: str) -> dict[str, Any]:
        r = self.client.post("/api/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return r.json()

    def first_admin_sign_in(self) -> str:
        return admin_first_sign_in(self.client, self.ctx.admin_password)

    def add_users(self) -> None:
        self.tokens["admin"] = self.first_admin_sign_in()
        for role in ROLES:
            if role == "admin":
                continue
            r = self.call("admin", "POST", "/api/users", json={"username": role, "password": PASSWORD, "role": role})
            assert r.status_code == 201, r.text
            self.tokens[role] = self.login(role, PASSWORD)["token"]

    def headers(self, role: str | None) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}

    def call(self, role: str | None, method: str, path: str, **kw: Any) -> Any:
        return self.client.request(method, path, headers=self.headers(role), **kw)


@contextmanager
def running_app(tmp: Path, config: LabConfig | None = None, with_users: bool = True, extend: Any = None,
                **kw: Any) -> Iterator[Api]:
    """The app on ``tmp``; ``extend(ctx)`` may add services (e.g. the fleet link) before it is built."""
    s = settings(tmp, config, **kw)
    ctx = build_context(s, hasher=FAST_HASHER)  # keep the suite fast; production uses argon2's defaults
    if extend is not None:
        extend(ctx)
    app = create_app(s, ctx)
    with TestClient(app) as client:
        api = Api(client, ctx)
        if with_users:
            api.add_users()
        yield api


def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``labbridge serve`` in a subprocess on a free loopback port; reads the URL and admin password."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        cmd = [sys.executable, "-m", "labbridge.cli.main", *args]
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        self.url = ""
        self.password = ""
        self.lines: list[str] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._drain_err, daemon=True).start()
        deadline = time.monotonic() + 60
        assert self.proc.stdout is not None
        while time.monotonic() < deadline and not (self.url and self.password):
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if "dashboard at " in line:
                self.url = line.split("dashboard at ", 1)[1].split()[0].rstrip("/")
            if "one-time password: " in line:
                self.password = line.rsplit(": ", 1)[1].strip()
        if not self.url:
            self.stop()
            raise AssertionError("server did not start: " + "".join(self.lines) + "".join(self.stderr[-30:]))
        threading.Thread(target=self._drain_out, daemon=True).start()

    def _drain_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def _drain_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
