"""Accounts: the one-time admin password, the password policy, idle tokens, share links, what viewers see,
what the audit records, and the data directory's permissions."""

from __future__ import annotations

import stat
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

from labbridge.server.passwords import WeakPassword, check_password
from tests.web_support import ADMIN_PASSWORD, PASSWORD, Api, running_app


@pytest.fixture
def api(tmp_path: Path) -> Any:
    with running_app(tmp_path) as api:
        yield api


def test_one_time_admin_password_only_allows_choosing_a_new_one(tmp_path: Path) -> None:
    with running_app(tmp_path, with_users=False) as api:
        once = api.login("admin", api.ctx.admin_password)
        assert once["must_change_password"] and once["permissions"] == []
        auth = {"Authorization": f"Bearer {once['token']}"}
        for method, path in (("GET", "/api/machines"), ("GET", "/api/users"), ("GET", "/api/auth/me"),
                             ("POST", "/api/users"), ("GET", "/api/audit")):
            r = api.client.request(method, path, headers=auth, json={})
            assert r.status_code == 403 and "new password" in r.json()["detail"], (method, path, r.text)
        with api.client.websocket_connect("/ws") as ws:
            ws.send_json({"type": "auth", "token": once["token"]})
            assert "new password" in ws.receive_json()["message"]
        r = api.client.post("/api/auth/password", headers=auth,
                            json={"old_password": api.ctx.admin_password, "new_password": "admin1234"})
        assert r.status_code == 422 and "common" in r.json()["detail"]
        r = api.client.post("/api/auth/password", headers=auth,
                            json={"old_password": api.ctx.admin_password, "new_password": ADMIN_PASSWORD})
        assert r.status_code == 200
        assert api.client.get("/api/machines", headers=auth).status_code == 401  # that token is gone
        r = api.client.post("/api/auth/login", json={"username": "admin", "password": api.ctx.admin_password})
        assert r.status_code == 401  # the printed password works once only
        full = api.login("admin", ADMIN_PASSWORD)
        assert not full["must_change_password"] and "users" in full["permissions"]
        denied = api.ctx.store.audit_log(limit=20, username="admin")
        assert any(e["outcome"] == "denied" and "one-time" in e["detail"] for e in denied)


@pytest.mark.parametrize("password, user, rule", [
    ("Password1!", "pat", "common"), ("p@ssw0rd2024", "pat", "common"), ("qwertyuiop", "pat", "common"),
    ("slaptazodis", "pat", "common"), ("Passwort123", "pat", "common"), ("administrator", "pat", "common"),
    ("patricia-rocks", "patricia", "user name"), ("aaaaaaaaaa", "pat", "three"), ("1234567890", "pat", "common"), ("12345678901", "pat", "digits"),
    ("90210444", "pat", "digits"), ("short", "pat", "8 characters"),
])
def test_password_policy_refuses(password: str, user: str, rule: str) -> None:
    with pytest.raises(WeakPassword, match=rule):
        check_password(password, user)


@pytest.mark.parametrize("password", ["correct horse battery", "BlueTruck7Vilnius", "kf8#mQ2!lz", "the lab runs on coffee"])
def test_password_policy_accepts(password: str) -> None:
    check_password(password, "pat")


def test_policy_applies_to_new_users_and_changes(api: Api) -> None:
    r = api.call("admin", "POST", "/api/users", json={"username": "ruta", "password": "ruta2024!", "role": "viewer"})
    assert r.status_code == 422 and "user name" in r.json()["detail"]
    r = api.call("admin", "PATCH", "/api/users/viewer", json={"password": "iloveyou123"})
    assert r.status_code == 422 and "common" in r.json()["detail"]
    refused = api.ctx.store.audit_log(limit=5, username="admin")
    assert {e["action"] for e in refused if e["outcome"] == "refused"} >= {"user.create", "user.change"}


def test_idle_tokens_expire_and_last_use_is_recorded(api: Api) -> None:
    api.ctx.auth.TOUCH_EVERY = 0.0
    assert api.call("viewer", "GET", "/api/machines").status_code == 200
    mine = api.call("viewer", "GET", "/api/tokens").json()
    assert mine[0]["last_used"] is not None and mine[0]["last_used"] > time.time() - 30
    api.ctx.auth.idle_timeout = 0.5
    time.sleep(0.8)
    r = api.call("viewer", "GET", "/api/machines")
    assert r.status_code == 401 and "without use" in r.json()["detail"]


def test_websocket_rechecks_its_token_on_a_timer(api: Api) -> None:
    api.ctx.settings.ws_recheck = 0.2
    with api.client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "auth", "token": api.tokens["operator"]})
        assert ws.receive_json()["type"] == "hello"
        token_id = api.ctx.auth.authenticate(api.tokens["operator"]).token_id
        api.ctx.store.revoke_token(token_id)  # revoked behind the hub's back: only the timer can notice
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                message = ws.receive_json()  # the client stays silent all along
                assert message["type"] in ("error", "ping")
        assert closed.value.code == 4001


def test_viewers_see_live_state_only(api: Api) -> None:
    program = api.call("trainer", "POST", "/api/programs/text",
                       json={"name": "secret-part.nc", "text": "G0 X-1\nM30\n"}).json()["hash"]
    api.call("trainer", "POST", "/api/queue", json={"program": program, "machine": "mill-1", "note": "for Ona"})
    assert api.call("viewer", "GET", "/api/machines").status_code == 200
    assert api.call("viewer", "GET", "/api/machines/mill-1").status_code == 200
    for path in ("/api/programs", f"/api/programs/{program}", "/api/queue", "/api/queue?all=true", "/api/jobs"):
        r = api.call("viewer", "GET", path)
        assert r.status_code == 403 and "live state only" in r.json()["detail"], path
    assert api.call("trainer", "GET", "/api/queue").json()[0]["note"] == "for Ona"


def test_share_link_is_a_revocable_expiring_viewer(api: Api) -> None:
    r = api.call("operator", "POST", "/api/share", json={"label": "class 7b", "hours": 2})
    assert r.status_code == 201, r.text
    share = r.json()
    assert share["qr_svg"].startswith("data:image/svg+xml") and "#share=" in share["url"]
    assert 7100 < share["expires_at"] - time.time() <= 7200
    token = share["url"].split("#share=", 1)[1]
    auth = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/api/machines", headers=auth).status_code == 200
    assert api.client.get("/api/programs", headers=auth).status_code == 403
    assert api.client.post("/api/machines/mill-1/hold", headers=auth).status_code == 403
    assert api.client.post("/api/auth/password", headers=auth, json={"old_password": "x", "new_password": "y"}
                           ).status_code == 403
    assert [s["label"] for s in api.call("admin", "GET", "/api/share").json()] == ["class 7b"]
    with api.client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "auth", "token": token})
        hello = ws.receive_json()
        assert hello["role"] == "viewer" and hello["username"] == "share:class 7b"
        assert api.call("operator", "DELETE", f"/api/share/{share['id']}").json()["websockets_closed"] == 1
        with pytest.raises(WebSocketDisconnect):
            while True:
                ws.receive_json()
    assert api.client.get("/api/machines", headers=auth).status_code == 401
    assert api.call("admin", "GET", "/api/share").json() == []
    assert api.call("trainer", "POST", "/api/share", json={"label": "x"}).status_code == 403
    actions = [(e["action"], e["outcome"]) for e in api.ctx.store.audit_log(limit=10, username="operator")]
    assert ("share.create", "ok") in actions and ("share.revoke", "ok") in actions


def test_audit_records_new_roles_exact_settings_and_refusals(api: Api) -> None:
    r = api.call("admin", "PATCH", "/api/users/technician", json={"role": "operator"})
    assert r.status_code == 200
    entry = api.ctx.store.audit_log(limit=1, action="user.change")[0]
    assert entry["detail"] == "technician: role technician -> operator"
    tech = api.login("technician", PASSWORD)["token"]
    api.call("admin", "PATCH", "/api/users/technician", json={"role": "technician"})
    tech = api.login("technician", PASSWORD)["token"]
    r = api.client.put("/api/machines/mill-1/settings/$110", json={"value": " 1500 ; $111=9"},
                       headers={"Authorization": f"Bearer {tech}"})
    assert r.status_code == 409  # the machine is offline; the attempt is still recorded as sent
    entry = api.ctx.store.audit_log(limit=1, action="settings.write")[0]
    assert "'$110' = ' 1500 ; $111=9'" in entry["detail"]
    r = api.client.post("/api/machines/mill-1/jog", content=b'{"x": 1, "feed": NaN}',
                        headers={**api.headers("operator"), "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "feed"]
    entry = api.ctx.store.audit_log(limit=1, username="operator")[0]
    assert entry["outcome"] == "refused" and entry["machine"] == "mill-1" and "feed" in entry["detail"]


def test_data_dir_and_database_are_private(api: Api) -> None:
    data = api.ctx.store.data_dir
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "programs").stat().st_mode) == 0o700
    for name in ("labbridge.sqlite", "labbridge.sqlite-wal", "labbridge.sqlite-shm", "device-cookie.key"):
        path = data / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    assert (data / "labbridge.sqlite").exists()


def test_an_existing_open_data_dir_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "labbridge.sqlite").touch(mode=0o644)
    with running_app(data, with_users=False):
        pass
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "labbridge.sqlite").stat().st_mode) == 0o600
