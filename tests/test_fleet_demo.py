"""The fleet link on a lab whose GRBL mill is simulated (pty): nothing moves at headquarters' request, a
settings change is written only when the operator accepts it, and a real job's lifecycle reaches the broker."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from labbridge.fleet import topics
from tests.fleet_support import Broker, Subscriber, lab_app, lab_data
from tests.web_support import Api, wait_for

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]
# 80 moves of 10 mm at 600 mm/min: a second each, a twentieth with the simulator at 20x; far more blocks than
# GRBL's planner holds, so they are acknowledged as the machine works through them and progress is seen.
PROGRAM = "\n".join(["G21 G90 G54", "G0 Z5", "G0 X0 Y0"] + [f"G1 X{i % 2 * 10} Y{i * 0.5} F600" for i in range(1, 81)]
                    + ["G0 Z5", "M30"]) + "\n"


def rr(broker: Broker, body: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        ["mosquitto_rr", "-h", "127.0.0.1", "-p", str(broker.port), "-t", topics.request_topic("truck-1", "mill-1"),
         "-e", topics.reply_topic("truck-1", "tech"), "-W", "60", "-m", json.dumps(body)],
        capture_output=True, text=True, timeout=70)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, Subscriber, Api]]:
    tmp = tmp_path_factory.mktemp("fleet-demo")
    broker = Broker(tmp / "broker")
    sub = Subscriber(broker)
    try:
        with lab_app(tmp, lab_data(broker.url, machines=("mill-1",)), demo=True, poll_hz=10.0,
                     sim_options={"grbl": {"time_scale": 20.0}}) as (api, service):
            wait_for(lambda: state(api)["connected"], 60, what="the simulated mill")
            wait_for(lambda: service.link_state()["state"] == "connected", 30, what="the link")
            yield broker, sub, api
    finally:
        sub.stop()
        broker.stop()


def state(api: Api) -> dict[str, Any]:
    return api.call("viewer", "GET", "/api/machines/mill-1").json()["state"]  # type: ignore[no-any-return]


def test_nothing_moves_at_headquarters_request(lab: Any) -> None:
    broker, _sub, api = lab
    wait_for(lambda: state(api)["state"] == "Alarm", 30, what="the homing lock after the port opened")
    for kind in ("home", "unlock", "reset", "jog", "resume"):
        answer = rr(broker, {"id": kind, "kind": kind, "args": {"x": -5, "feed": 500}})
        assert answer["ok"] is False and "never" in answer["error"]
    assert state(api)["state"] == "Alarm" and state(api)["homed"] is not True, "the machine did not move"
    refused = api.ctx.store.audit_log(limit=20, machine="mill-1")
    assert {a["action"] for a in refused if a["outcome"] == "refused"} >= {"fleet.home", "fleet.jog", "fleet.unlock"}


def test_a_settings_change_is_written_only_when_the_operator_accepts(lab: Any) -> None:
    broker, sub, api = lab
    before = rr(broker, {"id": "s1", "kind": "settings"})
    assert before["ok"] and float(before["result"]["110"]) != 1750.0
    asked = rr(broker, {"id": "c1", "kind": "settings-change", "args": {"key": "$110", "value": "1750"}})
    approval = asked["result"]["approval"]
    assert float(rr(broker, {"id": "s2", "kind": "settings"})["result"]["110"]) == float(before["result"]["110"])
    r = api.call("operator", "POST", f"/api/fleet/approvals/{approval}/accept")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "accepted" and r.json()["result"] == "$110 = 1750"
    assert float(rr(broker, {"id": "s3", "kind": "settings"})["result"]["110"]) == 1750.0
    decided = sub.wait(lambda ms: [m["body"] for m in ms if m["body"].get("kind") == "approval.decided"],
                       what="the decision at the broker")[0]
    assert decided["state"] == "accepted" and decided["decided_by"] == "operator"


def test_a_jobs_lifecycle_reaches_the_broker(lab: Any) -> None:
    _broker, sub, api = lab
    if state(api)["state"] == "Alarm":
        assert api.call("operator", "POST", "/api/machines/mill-1/home").status_code == 200
    wait_for(lambda: state(api)["state"] == "Idle", 90, what="Idle after homing")
    digest = api.call("trainer", "POST", "/api/programs/text", json={"name": "zigzag.nc", "text": PROGRAM}).json()["hash"]
    entry = api.call("trainer", "POST", "/api/queue", json={"program": digest, "machine": "mill-1"}).json()
    assert api.call("operator", "POST", f"/api/queue/{entry['id']}/start").status_code == 200
    finished = sub.wait(lambda ms: [m["body"] for m in ms if m["body"].get("kind") == "job.finished"], 120,
                        what="job.finished")[0]
    job_events = [m["body"] for m in sub.on("/events") if str(m["body"].get("kind")).startswith("job.")]
    kinds = [e["kind"] for e in job_events]
    assert kinds[0] == "job.queued" and kinds[1] == "job.started" and kinds[-1] == "job.finished"
    progress = [e["percent"] for e in job_events if e["kind"] == "job.progress"]
    assert progress and progress == sorted(set(progress)) and all(p % 10 == 0 and 0 < p < 100 for p in progress)
    assert finished["outcome"] in ("done", "completed") and finished["program"] == "zigzag.nc"
    assert finished["entry"] == entry["id"] and finished["lines_total"] == len(PROGRAM.splitlines())
    assert finished["line"] is not None
