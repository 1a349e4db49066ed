"""Machine commands, diagnostics and a queued job against a real simulated GRBL (pty) behind the API."""

from __future__ import annotations

from typing import Any

import pytest

from labbridge.server.schemas import JobRecord, JobStartReply
from tests.web_support import Api, lab_config, running_app, wait_for

# A job long enough to watch and hold (the simulator runs in real time at these feeds).
JOB = "\n".join(
    ["G21 G90 G54", "G0 Z5", "G0 X0 Y0", "M3 S8000", "G1 Z-0.5 F200"]
    + [f"G1 X{40 if i % 2 == 0 else 0} Y{i * 2} F400" for i in range(1, 30)]
    + ["G0 Z5", "M5", "M30"]
) + "\n"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with running_app(tmp_path_factory.mktemp("machines"), lab_config(("mill-1",), unreachable=False),
                     demo=True, poll_hz=10.0) as api:
        wait_for(lambda: state(api)["connected"], 30, what="mill-1 simulator to connect")
        yield api


def state(api: Api, role: str = "viewer") -> dict[str, Any]:
    return api.call(role, "GET", "/api/machines/mill-1").json()["state"]


def post(api: Api, role: str, action: str, **kw: Any) -> Any:
    return api.call(role, "POST", f"/api/machines/mill-1/{action}", **kw)


def ready(api: Api) -> None:
    """Home the machine if it needs it, so that it is Idle."""
    st = state(api)
    if st["state"] == "Alarm":
        r = post(api, "operator", "home")
        assert r.status_code == 200, r.text
    wait_for(lambda: state(api)["state"] == "Idle", 60, what="Idle after homing")


def queue_job(api: Api) -> dict[str, Any]:
    """The machine made Idle and the zig-zag program uploaded and queued on mill-1 (by a trainer); the entry."""
    ready(api)
    h = api.call("trainer", "POST", "/api/programs/text", json={"name": "zigzag.nc", "text": JOB}).json()["hash"]
    entry: dict[str, Any] = api.call("trainer", "POST", "/api/queue", json={"program": h, "machine": "mill-1"}).json()
    return entry


def test_machine_is_live(api: Api) -> None:
    m = api.call("viewer", "GET", "/api/machines/mill-1").json()
    assert m["simulated"] and m["state"]["firmware"].startswith("Grbl 1.1")
    assert m["envelope"]["X"] == [-290.0, 0.0]


@pytest.mark.slow
def test_home_jog_and_overrides(api: Api) -> None:
    ready(api)
    before = state(api)["position"]["machine"]
    r = post(api, "operator", "jog", json={"x": -5.0, "y": -3.0, "feed": 1000})
    assert r.status_code == 200, r.text
    wait_for(lambda: abs(state(api)["position"]["machine"]["X"] - (before["X"] - 5.0)) < 0.01
             and state(api)["state"] == "Idle", 30, what="jog to finish")
    assert abs(state(api)["position"]["machine"]["Y"] - (before["Y"] - 3.0)) < 0.01
    # a jog past the envelope is refused before it reaches the controller
    r = post(api, "operator", "jog", json={"x": 50.0, "feed": 500})
    assert r.status_code == 409 and "envelope" in r.json()["detail"]
    r = post(api, "operator", "override", json={"target": "feed", "value": 130})
    assert r.status_code == 200, r.text
    wait_for(lambda: state(api)["overrides"]["feed"] == 130, 10, what="feed override 130%")
    r = post(api, "operator", "override", json={"target": "feed", "value": 87})
    assert r.status_code == 200
    wait_for(lambda: state(api)["overrides"]["feed"] == 87, 10, what="feed override 87%")
    post(api, "operator", "override", json={"target": "feed", "value": 100})
    r = post(api, "operator", "override", json={"target": "rapid", "value": 60})
    assert r.status_code == 409 and "25, 50 or 100" in r.json()["detail"]
    log = api.ctx.store.audit_log(limit=20, machine="mill-1", username="operator")
    assert {"jog", "override", "home"} & {e["action"] for e in log}
    assert any(e["action"] == "jog" and e["outcome"] == "ok" and "X-5" in e["detail"] for e in log)


def test_diagnostics_and_settings(api: Api) -> None:
    d = api.call("technician", "GET", "/api/machines/mill-1/diagnostics").json()
    assert d["firmware"].startswith("Grbl 1.1") and d["driver"] == "GrblDriver"
    assert d["settings"]["110"] > 0 and isinstance(d["mismatches"], list)
    assert d["connection"]["connects"] >= 1 and d["connection"]["fault"] is None
    assert d["build_info"]["version"].startswith("1.1") and d["build_info"]["rx_buffer"] == 128  # from $I
    assert d["connection"]["link"]["rx_buffer"] == 128 and "G54" in d["parameters"]
    r = api.call("technician", "GET", "/api/machines/mill-1/settings")
    assert r.status_code == 200 and "110" in r.json()["result"]
    old = r.json()["result"]["110"]
    r = api.call("technician", "PUT", "/api/machines/mill-1/settings/$110", json={"value": "1500"})
    assert r.status_code == 200, r.text
    assert api.call("technician", "GET", "/api/machines/mill-1/settings").json()["result"]["110"] == 1500
    d = api.call("technician", "GET", "/api/machines/mill-1/diagnostics").json()
    assert any("$110" in m for m in d["mismatches"])  # differs from the config's rapid rate now
    assert any(e.get("event") == "grbl_setting_mismatch" and e.get("machine") == "mill-1"
               for e in d["recent_events"])  # the driver's warning, from the recent log events
    api.call("technician", "PUT", "/api/machines/mill-1/settings/$110", json={"value": str(old)})
    r = api.call("technician", "PUT", "/api/machines/mill-1/settings/$999", json={"value": "1"})
    assert r.status_code == 409 and "$999" in r.json()["detail"]


@pytest.mark.slow
def test_queued_job_runs_holds_resumes_and_cancels(api: Api) -> None:
    entry = queue_job(api)
    r = api.call("trainer", "POST", f"/api/queue/{entry['id']}/start")
    assert r.status_code == 403  # a trainer may not start motion
    r = api.call("operator", "POST", f"/api/queue/{entry['id']}/start")
    assert r.status_code == 200, r.text
    assert JobStartReply.model_validate(r.json()).entry.id == entry["id"]
    assert api.ctx.store.queue_entry(entry["id"])["state"] == "running"
    wait_for(lambda: state(api)["state"] == "Run", 30, what="Run")
    first = state(api)["position"]["work"]
    wait_for(lambda: state(api)["position"]["work"] != first, 30, what="the readout to move")
    wait_for(lambda: (state(api)["job"] or {}).get("lines_acked", 0) > 0, 30, what="job progress")
    # stop wins: a trainer may hold
    r = post(api, "trainer", "hold")
    assert r.status_code == 200, r.text
    wait_for(lambda: state(api)["state"] == "Hold", 30, what="Hold")
    assert post(api, "trainer", "resume").status_code == 403
    assert post(api, "operator", "resume").status_code == 200
    wait_for(lambda: state(api)["state"] == "Run", 30, what="Run again")
    # a second job cannot start while one runs
    entry2 = api.call("operator", "POST", "/api/queue", json={"program": entry["hash"], "machine": "mill-1"}).json()
    r = api.call("operator", "POST", f"/api/queue/{entry2['id']}/start")
    assert r.status_code == 409
    r = post(api, "technician", "cancel")
    assert r.status_code == 200, r.text
    wait_for(lambda: api.ctx.store.queue_entry(entry["id"])["state"] == "cancelled", 60, what="cancelled entry")
    wait_for(lambda: state(api)["state"] in ("Idle", "Alarm"), 30, what="machine stopped")
    actions = [(e["username"], e["action"], e["outcome"]) for e in api.ctx.store.audit_log(limit=30, machine="mill-1")]
    assert ("operator", "job.start", "ok") in actions and ("trainer", "hold", "ok") in actions
    assert ("technician", "cancel", "ok") in actions and ("trainer", "job.start", "denied") in actions
    assert any(a[1] == "job.finished" and a[2] == "cancelled" for a in actions)
    api.call("operator", "DELETE", f"/api/queue/{entry2['id']}")
    job_id = api.ctx.store.queue_entry(entry["id"])["job_id"]
    jobs = api.call("trainer", "GET", "/api/jobs?machine=mill-1").json()
    record = next(j for j in jobs if j["id"] == job_id)
    JobRecord.model_validate(record)  # the documented shape of /api/jobs
    assert record["state"] == "cancelled" and record["program_name"] == "zigzag.nc" and record["user"] == "operator"
    assert api.call("viewer", "GET", f"/api/jobs/{job_id}/events").status_code == 403
    events = [e["event"] for e in api.call("technician", "GET", f"/api/jobs/{job_id}/events").json()]
    assert "job_started" in events and "job_held" in events
