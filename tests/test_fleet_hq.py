"""``labbridge fleet`` (headquarters) as a real process, fed by a lab through a real mosquitto."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from websockets.asyncio.client import connect

from labbridge.fleet import topics
from tests.fleet_support import Broker, lab_app, lab_data, pub
from tests.web_support import ROOT, Api, ServerProcess, admin_first_sign_in, password_of, wait_for

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


class Hq:
    """The headquarters process and a client signed in as admin, with users for every role."""

    def __init__(self, tmp: Path, broker: Broker) -> None:
        self.tmp, self.broker = tmp, broker
        self.config = tmp / "hq.yaml"
        self.config.write_text(yaml.safe_dump({"fleet": {"broker": broker.url, "username": "hq", "keepalive": 5},
                                               "machines": {}}))
        self.start()
        self.tokens = {"admin": admin_first_sign_in(self.http, self.proc.password)}
        for role in ("viewer", "trainer", "technician"):
            r = self.call("admin", "POST", "/api/users", json={"username": role, "password": password_of(role),
                                                               "role": role})
            assert r.status_code == 201, r.text
            self.tokens[role] = self.login(role, password_of(role))

    def start(self, *extra: str) -> None:
        self.proc = ServerProcess(["fleet", "--port", "0", "--config", str(self.config), "--data-dir",
                                   str(self.tmp / "hq"), *extra], cwd=ROOT)
        self.http = httpx.Client(base_url=self.proc.url, timeout=60)

    def login(self, user: str, password: str) -> str:
        r = self.http.post("/api/auth/login", json={"username": user, "password": password})
        assert r.status_code == 200, r.text
        return str(r.json()["token"])

    def call(self, role: str | None, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}
        return self.http.request(method, path, headers=headers, **kw)

    def ask(self, role: str, machine: str, kind: str, **args: Any) -> httpx.Response:
        return self.call(role, "POST", f"/api/fleet/labs/truck-1/machines/{machine}/requests",
                         json={"kind": kind, "args": args})

    def labs(self) -> list[dict[str, Any]]:
        return self.call("viewer", "GET", "/api/fleet/labs").json()  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.http.close()
        self.proc.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, Hq, Api, Any]]:
    tmp = tmp_path_factory.mktemp("fleet-hq")
    broker = Broker(tmp / "broker")
    hq = Hq(tmp, broker)
    try:
        with lab_app(tmp, lab_data(broker.url)) as (api, service):
            wait_for(lambda: [lab for lab in hq.labs() if lab["online"]], 60, what="the lab at headquarters")
            yield broker, hq, api, service
    finally:
        hq.stop()
        broker.stop()


def test_first_start_prints_the_admin_password_and_serves_the_page(world: Any) -> None:
    _broker, hq, _api, _service = world
    assert hq.proc.password and any("headquarters dashboard at http://127.0.0.1:" in l for l in hq.proc.lines)
    page = hq.http.get("/")
    assert page.status_code == 200 and "labbridge HQ" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "HQ.token" in hq.http.get("/hq.js").text and hq.http.get("/style.css").status_code == 200
    assert hq.call(None, "GET", "/api/fleet/labs").status_code == 401


def test_labs_list_every_lab_with_each_machines_state(world: Any) -> None:
    _broker, hq, api, _service = world
    lathe = api.ctx.lab.machines["lathe-1"].state
    lathe.update(spindle_rpm=900.0)
    wait_for(lambda: [m for lab in hq.labs() for m in lab["machines"] if m["machine"] == "lathe-1"
                      and m["spindle"]["rpm"] == 900.0], 30, what="the new state at headquarters")
    labs = hq.labs()
    assert all(set(lab) == {"id", "name", "online", "last_seen", "machines"} for lab in labs)
    lab = next(lab for lab in labs if lab["id"] == "truck-1")
    assert lab["id"] == "truck-1" and lab["name"] == "InfoMobil truck-1" and lab["online"] is True
    assert [m["machine"] for m in lab["machines"]] == ["mill-1", "lathe-1"]
    assert lab["machines"][1] == lathe.to_dict()
    detail = hq.call("viewer", "GET", "/api/fleet/labs/truck-1").json()
    assert detail["version"] == "0.1.0" and detail["events"] and "alarms" in detail and "jobs" in detail
    assert hq.call("viewer", "GET", "/api/fleet/labs/truck-9").status_code == 404
    status = [s for s in hq.call("viewer", "GET", "/api/fleet/status").json() if s["id"] == "truck-1"][0]
    assert status["online"] and status["since"] <= status["last_seen"]


def test_requests_follow_the_same_roles_and_are_audited_on_both_sides(world: Any) -> None:
    _broker, hq, api, _service = world
    r = hq.ask("viewer", "lathe-1", "diagnostics")
    assert r.status_code == 403 and "viewer" in r.json()["detail"]
    r = hq.ask("technician", "lathe-1", "diagnostics")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] and body["lab"] == "truck-1" and body["result"]["machine"] == "lathe-1" and "error" not in body
    r = hq.ask("trainer", "mill-1", "check", text="G21 G90\nG1 X10 Y10\nM30\n")
    assert r.status_code == 200 and r.json()["result"]["diagnostics"][0]["code"] == "no-feed-rate"
    r = hq.ask("technician", "mill-1", "settings-change", key="$110", value="1800", reason="slow rapids")
    assert r.status_code == 200 and r.json()["result"]["state"] == "pending"
    assert api.call("viewer", "GET", "/api/fleet/approvals").json()[0]["requested_by"] == "hq:technician"
    r = hq.call("technician", "POST", "/api/fleet/labs/truck-1/machines/mill-1/requests", json={"kind": "home"})
    assert r.status_code == 422, "headquarters offers only the read-only kinds"
    audit = hq.call("admin", "GET", "/api/audit?limit=50").json()
    assert {("fleet.diagnostics", "denied"), ("fleet.diagnostics", "ok"), ("fleet.check", "ok")} <= {
        (a["action"], a["outcome"]) for a in audit}
    lab_audit = api.ctx.store.audit_log(limit=50, action="fleet.diagnostics")
    assert lab_audit and lab_audit[0]["username"] == "hq:technician"


def test_the_websocket_carries_live_state(world: Any) -> None:
    _broker, hq, api, _service = world

    async def watch() -> dict[str, Any]:
        url = hq.proc.url.replace("http://", "ws://") + "/ws"
        async with connect(url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": hq.tokens["viewer"]}))
            assert json.loads(await ws.recv())["type"] == "hello"
            api.ctx.lab.machines["lathe-1"].state.update(feed=77.0)
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if msg["type"] == "fleet.state" and msg["state"]["feed"] == 77.0:
                    return msg

    msg = asyncio.run(watch())
    assert msg["lab"] == "truck-1" and msg["machine"] == "lathe-1"


def test_untrusted_messages_are_dropped_and_replays_counted_once(world: Any) -> None:
    broker, hq, _api, _service = world
    before = hq.call("viewer", "GET", "/api/fleet/link").json()
    pub(broker, topics.status_topic("truck-9"), "not json")
    pub(broker, topics.status_topic("truck-9"), json.dumps({"online": True, "lab": "truck-1"}))  # wrong lab
    pub(broker, topics.state_topic("truck-9", "m"), '{"machine": "m", "connected": true, "state": NaN}')
    pub(broker, topics.events_topic("truck-9"), json.dumps({"time": 1.0, "kind": "audit"}))  # no seq
    pub(broker, topics.events_topic("truck-9"), json.dumps({"seq": 1, "time": 1.0, "kind": "x" * 500}))
    event = {"seq": 7, "time": 1000.0, "kind": "audit", "machine": None, "action": "<script>alert(1)</script>"}
    pub(broker, topics.events_topic("truck-9"), json.dumps(event))
    pub(broker, topics.events_topic("truck-9"), json.dumps(event))  # a replay
    wait_for(lambda: hq.call("viewer", "GET", "/api/fleet/link").json()["replays"] > before["replays"], 30,
             what="the replay to be seen")
    after = hq.call("viewer", "GET", "/api/fleet/link").json()
    assert after["rejected"] - before["rejected"] == 5
    stored = hq.call("viewer", "GET", "/api/fleet/events?lab=truck-9").json()
    assert len(stored) == 1 and stored[0]["seq"] == 7 and stored[0]["action"] == "<script>alert(1)</script>"
    assert hq.http.get("/api/health").json() == {"ok": True}


def test_jobs_across_labs_are_folded_from_job_events(world: Any) -> None:
    broker, hq, _api, _service = world
    for seq, kind, extra in ((1, "job.started", {"job_id": "j1", "program": "part.nc", "lines_total": 40}),
                             (2, "job.progress", {"job_id": "j1", "percent": 50, "line": 20}),
                             (3, "job.finished", {"job_id": "j1", "outcome": "done", "line": 40, "message": ""})):
        pub(broker, topics.events_topic("truck-8"), json.dumps({"seq": seq, "time": 2000.0 + seq, "machine": "mill-2",
                                                                 "kind": kind, **extra}))
    wait_for(lambda: hq.call("viewer", "GET", "/api/fleet/jobs?lab=truck-8").json(), 30, what="the job")
    wait_for(lambda: hq.call("viewer", "GET", "/api/fleet/jobs?lab=truck-8").json()[0]["state"] == "done", 30,
             what="the finished job")
    job = hq.call("viewer", "GET", "/api/fleet/jobs?lab=truck-8").json()[0]
    assert job["program"] == "part.nc" and job["percent"] == 100 and job["line"] == 40 and job["started_at"] == 2001.0


def test_events_made_while_headquarters_restarts_arrive_once(world: Any) -> None:
    _broker, hq, api, service = world
    hq.proc.stop()
    for i in range(10):
        api.ctx.audit("operator", "mill-1", "hq.was.down", "ok", f"event {i}")
    wait_for(lambda: service.link_state()["events_waiting"] == 0, 30, what="the lab to publish them")
    hq.start("--reset-admin")  # same data folder, same persistent session at the broker
    hq.tokens = {role: hq.login(role, password_of(role)) for role in ("viewer", "trainer", "technician")}
    wait_for(lambda: len([e for e in hq.call("viewer", "GET", "/api/fleet/events?lab=truck-1&limit=2000").json()
                          if e.get("action") == "hq.was.down"]) == 10, 60, what="the events from the broker's queue")
    seqs = [e["seq"] for e in hq.call("viewer", "GET", "/api/fleet/events?lab=truck-1&limit=2000").json()]
    assert len(seqs) == len(set(seqs))


def test_a_lab_that_stopped_is_offline_and_requests_say_so(world: Any, tmp_path: Path) -> None:
    broker, hq, _api, _service = world
    with lab_app(tmp_path, lab_data(broker.url, lab="truck-2", machines=("lathe-1",)), with_users=False):
        wait_for(lambda: [lab for lab in hq.labs() if lab["id"] == "truck-2" and lab["online"]], 60,
                 what="truck-2 online")
    wait_for(lambda: not [lab for lab in hq.labs() if lab["id"] == "truck-2"][0]["online"], 30, what="truck-2 offline")
    r = hq.call("technician", "POST", "/api/fleet/labs/truck-2/machines/lathe-1/requests", json={"kind": "jobs"})
    assert r.status_code == 409 and "offline" in r.json()["detail"]
