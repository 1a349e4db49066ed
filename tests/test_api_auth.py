"""Sign-in, tokens and their revocation (REST and websocket), rate limiting, users, audit, persistence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

from tests.web_support import ADMIN_PASSWORD, PASSWORD, Api, running_app


@pytest.fixture
def api(tmp_path: Path) -> Any:
    with running_app(tmp_path) as api:
        yield api


def test_passwords_are_hashed_with_argon2(api: Api) -> None:
    found = api.ctx.store.get_user("viewer")
    assert found is not None
    stored = found[1]
    assert stored.startswith("$argon2") and PASSWORD not in stored
    raw = api.ctx.store.path.read_bytes()
    assert PASSWORD.encode() not in raw
    assert api.tokens["viewer"].encode() not in raw  # only token hashes are stored


def test_login_failures_are_audited_and_slowed_down(api: Api) -> None:
    api.client.cookies.clear()  # no device cookie: counted by address
    for _ in range(3):
        r = api.client.post("/api/auth/login", json={"username": "viewer", "password": "wrong password"})
        assert r.status_code == 401 and "wrong user name or password" in r.json()["detail"]
    r = api.client.post("/api/auth/login", json={"username": "viewer", "password": PASSWORD})
    assert r.status_code == 429 and "wait" in r.json()["detail"] and "nothing is locked" in r.json()["detail"]
    assert int(r.headers["retry-after"]) > 0
    rows = api.ctx.store.audit_log(limit=10, action="login")
    by_outcome = {e["outcome"]: e for e in rows if e["outcome"] != "ok"}
    assert by_outcome["failed"]["count"] == 3 and by_outcome["rate-limited"]["count"] == 1
    assert "from testclient" in by_outcome["failed"]["detail"]
    # unknown users get the same answer as wrong passwords
    r = api.client.post("/api/auth/login", json={"username": "nobody-here", "password": "x"})
    assert r.status_code in (401, 429) and "nobody-here" not in r.json()["detail"]


def test_me_reports_role_and_permissions(api: Api) -> None:
    me = api.call("trainer", "GET", "/api/auth/me").json()
    assert me["username"] == "trainer" and me["role"] == "trainer"
    assert "queue.submit" in me["permissions"] and "job.start" not in me["permissions"]


def test_logout_revokes_the_token(api: Api) -> None:
    assert api.call("viewer", "GET", "/api/machines").status_code == 200
    assert api.call("viewer", "POST", "/api/auth/logout").status_code == 200
    r = api.call("viewer", "GET", "/api/machines")
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_admin_revokes_a_token_and_its_websocket_closes(api: Api) -> None:
    token_id = api.login("operator", PASSWORD)["token_id"]
    operator_token = api.client.post("/api/auth/login", json={"username": "operator", "password": PASSWORD}).json()
    with api.client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "auth", "token": operator_token["token"]})
        assert ws.receive_json()["type"] == "hello"
        ws.send_json({"type": "subscribe", "machines": ["mill-1"]})
        kinds = {ws.receive_json()["type"], ws.receive_json()["type"]}
        assert kinds == {"subscribed", "snapshot"}
        r = api.call("admin", "DELETE", f"/api/tokens/{operator_token['token_id']}")
        assert r.status_code == 200 and r.json()["websockets_closed"] == 1
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_json()
        assert closed.value.code == 4001
    r = api.client.get("/api/machines", headers={"Authorization": f"Bearer {operator_token['token']}"})
    assert r.status_code == 401
    # the operator's other token still works
    assert token_id != operator_token["token_id"]
    audit = api.ctx.store.audit_log(limit=1, action="token.revoke")[0]
    assert audit["username"] == "admin" and operator_token["token_id"] in audit["detail"]


def test_users_may_revoke_only_their_own_tokens(api: Api) -> None:
    admin_tokens = api.call("admin", "GET", "/api/tokens").json()
    mine = api.call("trainer", "GET", "/api/tokens").json()
    assert {t["username"] for t in mine} == {"trainer"}
    assert len(admin_tokens) > len(mine)
    other = next(t for t in admin_tokens if t["username"] == "operator")
    assert api.call("trainer", "DELETE", f"/api/tokens/{other['id']}").status_code == 403
    assert api.call("trainer", "DELETE", f"/api/tokens/{mine[0]['id']}").status_code == 200
    assert api.call("trainer", "GET", "/api/machines").status_code == 401


def test_user_changes_revoke_tokens(api: Api) -> None:
    r = api.call("admin", "PATCH", "/api/users/technician", json={"role": "viewer"})
    assert r.status_code == 200 and r.json()["role"] == "viewer"
    assert api.call("technician", "GET", "/api/machines").status_code == 401
    tok = api.login("technician", PASSWORD)["token"]
    r = api.client.get("/api/machines/mill-1/diagnostics", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 403
    assert api.call("admin", "PATCH", "/api/users/technician", json={"disabled": True}).status_code == 200
    r = api.client.post("/api/auth/login", json={"username": "technician", "password": PASSWORD})
    assert r.status_code == 401
    assert api.call("admin", "PATCH", "/api/users/admin", json={"role": "viewer"}).status_code == 409
    assert api.call("admin", "DELETE", "/api/users/admin").status_code == 409
    assert api.call("admin", "DELETE", "/api/users/viewer").status_code == 200
    assert api.call("viewer", "GET", "/api/machines").status_code == 401


def test_create_user_validation(api: Api) -> None:
    r = api.call("admin", "POST", "/api/users", json={"username": "trainer", "password": "long enough", "role": "viewer"})
    assert r.status_code == 409 and "exists" in r.json()["detail"]
    r = api.call("admin", "POST", "/api/users", json={"username": "x y", "password": "long enough", "role": "viewer"})
    assert r.status_code == 422
    r = api.call("admin", "POST", "/api/users", json={"username": "pat", "password": "short", "role": "viewer"})
    assert r.status_code == 422
    r = api.call("admin", "POST", "/api/users", json={"username": "pat", "password": "long enough", "role": "root"})
    assert r.status_code == 422


def test_change_own_password(api: Api) -> None:
    r = api.call("viewer", "POST", "/api/auth/password", json={"old_password": "nope", "new_password": "new password 1"})
    assert r.status_code == 403
    r = api.call("viewer", "POST", "/api/auth/password", json={"old_password": PASSWORD, "new_password": "new password 1"})
    assert r.status_code == 200
    assert api.call("viewer", "GET", "/api/machines").status_code == 401
    api.login("viewer", "new password 1")


def test_websocket_needs_auth_and_same_origin(api: Api) -> None:
    with api.client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "subscribe", "machines": "*"})
        assert ws.receive_json()["type"] == "error"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4001
    with api.client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "auth", "token": "forged"})
        assert "not signed in" in ws.receive_json()["message"]
    with pytest.raises(WebSocketDisconnect) as refused:
        with api.client.websocket_connect("/ws", headers={"Origin": "http://evil.example"}) as ws:
            ws.receive_json()
    assert refused.value.code == 1008
    assert api.ctx.store.audit_log(limit=1, action="ws.connect")[0]["outcome"] == "denied"
    # same origin as the Host header is accepted
    with api.client.websocket_connect("/ws", headers={"Origin": "http://testserver"}) as ws:
        ws.send_json({"type": "auth", "token": api.tokens["viewer"]})
        assert ws.receive_json()["type"] == "hello"


def test_websocket_checks_role_per_message(api: Api) -> None:
    with api.client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "auth", "token": api.tokens["viewer"]})
        hello = ws.receive_json()
        assert hello["role"] == "viewer" and hello["machines"] == ["mill-1"]
        ws.send_json({"type": "hold", "machine": "mill-1", "id": 7})
        reply = ws.receive_json()
        assert reply["type"] == "error" and reply["id"] == 7 and "viewer" in reply["message"]
        ws.send_json({"type": "subscribe", "machines": ["mill-1", "nope"]})
        msgs = [ws.receive_json(), ws.receive_json()]
        sub = next(m for m in msgs if m["type"] == "subscribed")
        snap = next(m for m in msgs if m["type"] == "snapshot")
        assert sub["unknown"] == ["nope"] and snap["state"]["machine"] == "mill-1"
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"
    denied = api.ctx.store.audit_log(limit=1, username="viewer")[0]
    assert denied["action"] == "hold" and denied["outcome"] == "denied"
    with api.client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "auth", "token": api.tokens["trainer"]})
        ws.receive_json()
        ws.send_json({"type": "hold", "machine": "mill-1", "id": 8})
        reply = ws.receive_json()
        assert reply["id"] == 8 and reply["type"] == "error" and "mill-1" in reply["message"]  # allowed, but offline
    assert api.ctx.store.audit_log(limit=1, username="trainer", action="hold")[0]["outcome"] == "failed"


def test_state_persists_across_restart(tmp_path: Path) -> None:
    with running_app(tmp_path) as api:
        h = api.call("trainer", "POST", "/api/programs/text", json={"name": "keep.nc", "text": "G0 X-1\nM30\n"}).json()
        entry = api.call("trainer", "POST", "/api/queue", json={"program": h["hash"], "machine": "mill-1"}).json()
        api.ctx.store.update_queue(entry["id"], state="running")  # as if a job was cut off by a power loss
        trainer_token = api.tokens["trainer"]
        revoked = api.tokens["operator"]
        api.call("operator", "POST", "/api/auth/logout")
    with running_app(tmp_path, with_users=False) as api:
        assert api.ctx.admin_password is None  # the admin exists: no new one-time password
        api.login("admin", ADMIN_PASSWORD)  # the password chosen at the first sign-in
        r = api.client.get("/api/programs", headers={"Authorization": f"Bearer {trainer_token}"})
        assert r.status_code == 200 and r.json()[0]["name"] == "keep.nc"
        assert api.client.get("/api/machines", headers={"Authorization": f"Bearer {revoked}"}).status_code == 401
        assert api.ctx.store.queue_entry(entry["id"])["state"] == "interrupted"
        actions = {e["action"] for e in api.ctx.store.audit_log(limit=500)}
        assert {"login", "user.create", "program.upload", "queue.submit", "logout"} <= actions
