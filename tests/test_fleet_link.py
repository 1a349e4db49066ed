"""The lab side of the fleet link against a real mosquitto, watched by Debian's own MQTT clients.

The lab runs in this process (``labbridge serve``'s app with its fleet link); ``mosquitto_sub``,
``mosquitto_pub`` and ``mosquitto_rr`` play headquarters, so the wire format is checked by a client
that is not labbridge's.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labbridge.fleet import topics
from tests.fleet_support import Broker, Subscriber, lab_app, lab_data
from tests.web_support import wait_for

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker")
    yield b
    b.stop()


@pytest.fixture
def sub(broker: Broker) -> Iterator[Subscriber]:
    s = Subscriber(broker)
    yield s
    s.stop()


def bodies(sub: Subscriber, suffix: str) -> list[Any]:
    return [m["body"] for m in sub.on(suffix)]


def events(sub: Subscriber) -> list[dict[str, Any]]:
    return bodies(sub, "/events")


def rr(broker: Broker, machine: str, body: dict[str, Any], lab: str = "truck-1", timeout: int = 30) -> dict[str, Any]:
    """One request with MQTT 5 response topic and correlation data only (no reply_to), by ``mosquitto_rr``."""
    out = subprocess.run(
        ["mosquitto_rr", "-h", "127.0.0.1", "-p", str(broker.port), "-V", "mqttv5", "-q", "1",
         "-t", topics.request_topic(lab, machine), "-e", topics.reply_topic(lab, "technician-laptop"),
         "-D", "publish", "correlation-data", "corr-42", "-W", str(timeout), "-m", json.dumps(body)],
        capture_output=True, text=True, timeout=timeout + 10)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_birth_and_retained_state_are_exactly_the_machine_state(tmp_path: Path, broker: Broker) -> None:
    with lab_app(tmp_path, lab_data(broker.url)) as (api, service):
        wait_for(lambda: service.link_state()["state"] == "connected", what="the link to connect")
        late = Subscriber(broker)  # joins after the lab published: sees only what the broker retained
        try:
            late.wait(lambda ms: len([m for m in ms if m["topic"].endswith("/state")]) >= 2 and late.on("/status"),
                      what="retained status and states")
            status = late.on("/status")[-1]
            assert status["retained"] and status["topic"] == "labbridge/v1/truck-1/status"
            assert status["body"] == {"online": True, "lab": "truck-1", "name": "InfoMobil truck-1",
                                      "version": "0.1.0", "machines": ["mill-1", "lathe-1"],
                                      "since": status["body"]["since"]}
            lathe = late.on("/machines/lathe-1/state")[-1]
            assert lathe["retained"]
            rest = api.call("viewer", "GET", "/api/machines/lathe-1").json()["state"]
            assert lathe["body"] == rest == api.ctx.lab.machines["lathe-1"].state.to_dict()
        finally:
            late.stop()
        state = api.ctx.lab.machines["lathe-1"].state
        state.update(spindle_rpm=1234.0, spindle_direction="cw")
        wait_for(lambda: service.link_state()["states_sent"] >= 3, what="the changed state to be sent")
        later = Subscriber(broker)
        try:
            later.wait(lambda ms: any(m["topic"].endswith("lathe-1/state") and m["body"]["spindle"]["rpm"] == 1234.0
                                      for m in ms), what="the changed state, retained")
            assert later.on("lathe-1/state")[-1]["body"] == state.to_dict()
        finally:
            later.stop()


def test_state_is_rate_limited_and_the_latest_wins(tmp_path: Path, broker: Broker, sub: Subscriber) -> None:
    import time

    with lab_app(tmp_path, lab_data(broker.url, state_rate=2.0), with_users=False) as (api, service):
        wait_for(lambda: service.link_state()["state"] == "connected", what="the link to connect")
        sub.wait(lambda ms: any(m["topic"].endswith("lathe-1/state") for m in ms), what="the first state")
        state = api.ctx.lab.machines["lathe-1"].state
        before = len(sub.on("lathe-1/state"))
        start = time.monotonic()
        for i in range(60):  # 20 changes a second for 3 s
            state.update(feed=float(i))
            time.sleep(0.05)
        duration = time.monotonic() - start
        sub.wait(lambda ms: [m for m in ms if m["topic"].endswith("lathe-1/state")][-1]["body"]["feed"] == 59.0,
                 what="the last state")
        sent = len(sub.on("lathe-1/state")) - before
        # a burst of 2 saved-up tokens, then 2 a second, and the latest state once the changes stop
        assert 2 <= sent <= 2 + 2 * duration + 1, f"{sent} state messages for 60 changes in {duration:.1f} s"
        assert sub.on("lathe-1/state")[-1]["body"] == state.to_dict()


def test_events_are_qos1_in_seq_order_for_audit_alarms_and_connections(tmp_path: Path, broker: Broker,
                                                                       sub: Subscriber) -> None:
    with lab_app(tmp_path, lab_data(broker.url)) as (api, service):
        wait_for(lambda: service.link_state()["state"] == "connected", what="the link to connect")
        state = api.ctx.lab.machines["lathe-1"].state
        state.update(connected=True)
        state.raise_alarm("EX1001", "chuck not clamped", source="plc")
        state.clear_alarms()
        state.mark_disconnected("cable pulled")
        r = api.call("operator", "POST", "/api/machines/lathe-1/home")
        assert r.status_code == 409  # not connected: refused, and audited as failed
        kinds = ["connection.restored", "alarm.raised", "alarm.cleared", "connection.lost"]
        sub.wait(lambda ms: {"connection.lost"} <= {e["body"].get("kind") for e in ms if e["topic"].endswith("/events")}
                 and any(e["body"].get("action") == "home" for e in ms if e["topic"].endswith("/events")),
                 what="the events")
        got = events(sub)
        assert [e["kind"] for e in got if e["kind"] in kinds] == kinds
        alarm = next(e for e in got if e["kind"] == "alarm.raised")
        assert alarm["machine"] == "lathe-1" and alarm["code"] == "EX1001" and alarm["message"] == "chuck not clamped"
        assert next(e for e in got if e["kind"] == "connection.lost")["reason"] == "cable pulled"
        home = next(e for e in got if e.get("action") == "home")
        assert home["kind"] == "audit" and home["user"] == "operator" and home["outcome"] == "failed"
        assert {e["kind"] for e in got} >= {"audit"}  # the users' logins of the fixture, among others
        seqs = [e["seq"] for e in got]
        assert seqs == sorted(set(seqs)), "seq strictly increases"
        assert all(isinstance(e["time"], float) and "machine" in e for e in got)
        assert {m["qos"] for m in sub.on("/events")} == {1} and not any(m["retained"] for m in sub.on("/events"))


def test_store_and_forward_across_a_broker_restart(tmp_path: Path, broker: Broker) -> None:
    persistent = Subscriber(broker, extra=["-c", "-i", "hq-test", "-x", "3600"])
    try:
        with lab_app(tmp_path, lab_data(broker.url)) as (api, service):
            wait_for(lambda: service.link_state()["state"] == "connected" and service.link_state()["events_waiting"] == 0,
                     what="the link to connect and send the first events")
            persistent.wait(lambda ms: ms, what="the first events")
            broker.stop()
            wait_for(lambda: service.link_state()["state"] == "waiting", what="the link to notice")
            wait_for(lambda: "cannot reach the broker at 127.0.0.1" in (service.link_state()["last_error"] or ""),
                     what="the reason of the next try")
            assert "connection refused" in service.link_state()["last_error"]
            first = service.outbox.last_seq() + 1
            for i in range(40):  # the truck on the road: the lab goes on working and auditing
                api.ctx.audit("operator", "mill-1", "offline.test", "ok", f"event {i}")
            assert api.call("viewer", "GET", "/api/machines").status_code == 200
            assert service.link_state()["events_waiting"] >= 40
            last = service.outbox.last_seq()
            broker.start()
            wait_for(lambda: service.link_state()["events_waiting"] == 0, timeout=90, what="the outbox to drain")
            persistent.wait(lambda ms: any(m["body"].get("seq") == last for m in ms if m["topic"].endswith("/events")),
                            timeout=30, what="the last stored event at the subscriber")
        seqs = [e["seq"] for e in events(persistent)]
        assert seqs == sorted(set(seqs)), "in order, none twice"
        offline = [e for e in events(persistent) if e["kind"] == "audit" and e["action"] == "offline.test"]
        assert [e["detail"] for e in offline] == [f"event {i}" for i in range(40)], "none lost"
        assert [e["seq"] for e in offline] == list(range(first, last + 1))
    finally:
        persistent.stop()


def test_requests_are_answered_on_the_response_topic_and_on_reply_to(tmp_path: Path, broker: Broker,
                                                                       sub: Subscriber) -> None:
    with lab_app(tmp_path, lab_data(broker.url)) as (api, service):
        wait_for(lambda: service.link_state()["state"] == "connected", what="the link to connect")
        answer = rr(broker, "lathe-1", {"id": "r1", "kind": "diagnostics", "user": "tech"})
        assert answer["id"] == "r1" and answer["ok"] is True and answer["result"]["machine"] == "lathe-1"
        reply = sub.wait(lambda ms: [m for m in ms if "/replies/technician-laptop" in m["topic"]], what="the reply")[0]
        assert reply["correlation"] == "corr-42", "MQTT 5 correlation data comes back"

        program = "G21 G18 G90\nG0 X200 Z5\nM30\n"
        answer = rr(broker, "lathe-1", {"id": "r2", "kind": "check", "args": {"text": program, "name": "a.nc"}})
        report = answer["result"]
        assert answer["ok"] and set(report) == {"program", "machine", "ok", "lines", "bounds", "estimated_seconds",
                                                "diagnostics"}
        assert report["machine"] == "lathe-1" and report["program"] == "a.nc"

        for kind in ("alarm-history", "jobs", "logs"):
            answer = rr(broker, "mill-1", {"id": kind, "kind": kind})
            assert answer["ok"] and isinstance(answer["result"], list), answer

        answer = rr(broker, "mill-1", {"id": "r3", "kind": "settings"})
        assert answer == {"id": "r3", "ok": False, "error": answer["error"]} and "not connected" in answer["error"]

        reply_to = topics.reply_topic("truck-1", "hq-main")
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
                        "-t", topics.request_topic("truck-1", "mill-1"),
                        "-m", json.dumps({"id": "r4", "kind": "jobs", "args": {}, "reply_to": reply_to})], check=True)
        got = sub.wait(lambda ms: [m for m in ms if m["topic"] == reply_to], what="the reply on reply_to")[0]
        assert got["body"] == {"id": "r4", "ok": True, "result": []}
        audit = api.call("admin", "GET", "/api/audit?action=fleet.diagnostics").json()
        assert audit and audit[0]["username"] == "hq:tech" and audit[0]["machine"] == "lathe-1"


def test_requests_that_move_or_change_are_refused_and_audited(tmp_path: Path, broker: Broker, sub: Subscriber) -> None:
    with lab_app(tmp_path, lab_data(broker.url)) as (api, service):
        wait_for(lambda: service.link_state()["state"] == "connected", what="the link to connect")
        for kind in ("home", "jog", "settings-write", "unlock"):
            answer = rr(broker, "mill-1", {"id": kind, "kind": kind, "args": {"x": 10, "key": "$110", "value": "9"},
                                            "user": "mallory"})
            assert answer["ok"] is False and "result" not in answer
            assert "never" in answer["error"], answer
        audit = [a for a in api.call("admin", "GET", "/api/audit?limit=50").json() if a["action"].startswith("fleet.")]
        assert {(a["action"], a["outcome"], a["username"]) for a in audit} == {
            (f"fleet.{k}", "refused", "hq:mallory") for k in ("home", "jog", "settings-write", "unlock")}
        sub.wait(lambda ms: any(m["body"].get("action") == "fleet.jog" and m["body"].get("outcome") == "refused"
                                for m in ms if m["topic"].endswith("/events")), what="the refusal as an event")
        # A reply topic outside this lab's own replies/ (another lab's, or anything else) gets nothing.
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
                        "-t", topics.request_topic("truck-1", "mill-1"),
                        "-m", json.dumps({"id": "x", "kind": "jobs", "reply_to": "labbridge/v1/truck-2/status"})],
                       check=True)
        garbage = '{"id": "bad", "kind": 5}'
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
                        "-t", topics.request_topic("truck-1", "mill-1"), "-m", garbage], check=True)
        answer = rr(broker, "mill-1", {"id": "after", "kind": "jobs"})
        assert answer["ok"], "the link still answers after bad requests"
        assert not sub.on("truck-2/status")


def test_a_settings_change_waits_for_an_operator_at_the_machine(tmp_path: Path, broker: Broker,
                                                                 sub: Subscriber) -> None:
    with lab_app(tmp_path, lab_data(broker.url)) as (api, service):
        wait_for(lambda: service.link_state()["state"] == "connected", what="the link to connect")
        answer = rr(broker, "mill-1", {"id": "c1", "kind": "settings-change", "user": "tech",
                                       "args": {"key": "$110", "value": "1500", "reason": "X rapids too slow"}})
        assert answer["ok"] and answer["result"]["state"] == "pending"
        approval = answer["result"]["approval"]
        rows = api.call("viewer", "GET", "/api/fleet/approvals").json()
        assert rows[0]["id"] == approval and rows[0]["state"] == "pending" and rows[0]["requested_by"] == "hq:tech"
        r = api.call("technician", "POST", f"/api/fleet/approvals/{approval}/accept")
        assert r.status_code == 403, "a technician is not the operator at the machine"
        r = api.call("operator", "POST", f"/api/fleet/approvals/{approval}/accept")
        assert r.status_code == 409 and "not connected" in r.json()["detail"]
        assert api.call("viewer", "GET", "/api/fleet/approvals").json()[0]["state"] == "pending", "nothing written"
        r = api.call("operator", "POST", f"/api/fleet/approvals/{approval}/refuse")
        assert r.status_code == 200 and r.json()["state"] == "refused" and r.json()["decided_by"] == "operator"
        assert api.call("operator", "POST", f"/api/fleet/approvals/{approval}/accept").status_code == 409
        decided = sub.wait(lambda ms: [m["body"] for m in ms if m["body"].get("kind") == "approval.decided"],
                           what="the decision as an event")[0]
        assert decided["state"] == "refused" and decided["key"] == "$110" and decided["request_id"] == "c1"
        actions = {(a["action"], a["outcome"]) for a in api.call("admin", "GET", "/api/audit?machine=mill-1").json()}
        assert {("fleet.settings-change", "ok"), ("fleet.settings-change", "failed"),
                ("fleet.settings-change", "refused")} <= actions


def test_dashboard_shows_the_link_and_a_wrong_password_leaves_the_lab_working(tmp_path: Path) -> None:
    from tests.fleet_support import password_file

    broker = Broker(tmp_path / "broker", password_file=password_file(tmp_path, {"truck-1": "right-secret"}))
    try:
        pw = tmp_path / "lab.pw"
        pw.write_text("wrong-secret\n")
        data = lab_data(broker.url, username="truck-1", password_file=str(pw))
        with lab_app(tmp_path, data) as (api, service):
            assert api.call("viewer", "GET", "/api/machines").status_code == 200
            wait_for(lambda: service.link_state()["state"] == "waiting", what="the refused link")
            link = api.call("viewer", "GET", "/api/fleet/link").json()
            assert link["configured"] and link["state"] == "waiting" and link["retry_in"] is not None
            assert "refused user 'truck-1': wrong user name or password" in link["last_error"]
            assert api.call("trainer", "POST", "/api/programs/text", json={"text": "G0 X0\nM30\n"}).status_code == 201
            assert api.call(None, "GET", "/api/fleet/link").status_code == 401
            pw.write_text("right-secret\n")  # fixed by the admin: the next retry gets through
            wait_for(lambda: service.link_state()["state"] == "connected", timeout=60, what="the link with the right password")
            assert service.link_state()["connects"] == 1
    finally:
        broker.stop()


def test_the_lab_dashboard_has_no_fleet_routes_without_fleet(tmp_path: Path) -> None:
    from tests.web_support import running_app

    with running_app(tmp_path) as api:
        assert api.call("viewer", "GET", "/api/fleet/link").status_code == 404
