"""Sign-in throttling by (user, client): a guesser is slowed, nobody is locked out, bursts are checked one by one,
X-Forwarded-For is believed only from a configured proxy, and a flood makes one audit row per source and minute."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from labbridge.server.throttle import LoginThrottle, Throttled
from tests.web_support import PASSWORD, Api, running_app


@pytest.fixture
def api(tmp_path: Path) -> Any:
    with running_app(tmp_path) as api:
        yield api


def wrong(client: TestClient, user: str = "operator", **headers: str) -> int:
    r = client.post("/api/auth/login", json={"username": user, "password": "not the password"}, headers=headers)
    return int(r.status_code)


def right(client: TestClient, user: str = "operator", **headers: str) -> int:
    r = client.post("/api/auth/login", json={"username": user, "password": PASSWORD}, headers=headers)
    return int(r.status_code)


def test_waits_grow_but_nothing_locks() -> None:
    throttle = LoginThrottle(free=3, base=1.0, max_delay=60.0)
    assert [throttle.delay_after(n) for n in range(8)] == [0, 0, 0, 1, 2, 4, 8, 16]
    assert throttle.delay_after(40) == 60.0
    attempt = throttle.begin("ana", "10.0.0.2")
    with pytest.raises(Throttled, match="being checked"):
        throttle.begin("ana", "10.0.0.2")  # one check at a time for a pair
    throttle.begin("ana", "10.0.0.3").failed()  # another client is another pair
    throttle.begin("bob", "10.0.0.2").succeeded()  # another user too
    attempt.failed()


def test_a_right_password_from_a_client_that_is_not_guessing_gets_through(api: Api) -> None:
    trusted = TestClient(api.client.app)  # the operator's own browser: signed in before, has a device cookie
    assert right(trusted) == 200 and trusted.cookies.get("labbridge_device")
    api.client.cookies.clear()  # a guesser behind the same address (the lab's NAT), no cookie
    codes = [wrong(api.client) for _ in range(6)]
    assert codes[:3] == [401, 401, 401] and set(codes[3:]) == {429}
    assert right(api.client) == 429  # the guesser's own right guess must wait: it is slowed, not let through
    assert right(trusted) == 200  # the operator is not locked out by it
    assert right(api.client, "trainer") == 200  # nor is any other user from the guesser's address


def test_parallel_guesses_are_checked_one_at_a_time(api: Api) -> None:
    checked = []
    gate = threading.Event()

    class SlowHasher(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002 (argon2's name)
            checked.append(password)
            gate.wait(2.0)
            return bool(super().verify(hash, password))

    real = api.ctx.auth.hasher
    api.ctx.auth.hasher = SlowHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    api.client.cookies.clear()
    try:
        with ThreadPoolExecutor(30) as pool:
            futures = [pool.submit(wrong, api.client, "viewer") for _ in range(30)]
            threading.Timer(1.0, gate.set).start()
            codes = [f.result() for f in futures]
    finally:
        api.ctx.auth.hasher = real
    assert codes.count(401) <= 3 and codes.count(429) >= 27, codes
    assert len(checked) == codes.count(401)


def test_x_forwarded_for_is_ignored_unless_the_proxy_is_trusted(tmp_path: Path) -> None:
    with running_app(tmp_path / "plain") as api:
        api.client.cookies.clear()
        codes = [wrong(api.client, **{"X-Forwarded-For": f"10.0.0.{i}"}) for i in range(5)]
        assert 429 in codes  # rotating the header does not dodge the throttle
    with running_app(tmp_path / "proxied", trusted_proxies=["testclient"]) as api:
        api.client.cookies.clear()
        codes = [wrong(api.client, **{"X-Forwarded-For": f"10.0.0.{i}"}) for i in range(5)]
        assert codes == [401] * 5  # five clients behind the trusted proxy, one guess each
        rows = api.ctx.store.audit_log(limit=10, action="login")
        assert any("from 10.0.0.4" in e["detail"] for e in rows)


def test_a_flood_of_failures_is_one_audit_row_per_source_and_minute(api: Api) -> None:
    api.client.cookies.clear()
    before = len(api.ctx.store.audit_log(limit=2000))
    for i in range(60):
        wrong(api.client, f"user{i % 7}")
    rows = [e for e in api.ctx.store.audit_log(limit=2000) if e["action"] == "login" and e["outcome"] != "ok"]
    assert len(api.ctx.store.audit_log(limit=2000)) - before <= 4  # a minute boundary may split a row in two
    assert sum(e["count"] for e in rows) == 60
    assert any("names tried: user0, user1" in e["detail"] for e in rows)
    for _ in range(25):
        with pytest.raises(Exception):
            with api.client.websocket_connect("/ws", headers={"Origin": "http://evil.example"}) as ws:
                ws.receive_json()
    refused = api.ctx.store.audit_log(limit=10, action="ws.connect")
    assert sum(e["count"] for e in refused) == 25 and len(refused) <= 2
    assert "origin http://evil.example" in refused[0]["detail"]
