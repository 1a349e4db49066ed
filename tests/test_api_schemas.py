"""Every REST reply has a pydantic model in /openapi.json, and the replies hold to them.

MachineState has one public shape (``labbridge.model``): ``labbridge state --json``, the REST API and the
websocket print it, numbers exactly as the driver reported them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labbridge.model import AlarmRecord, JobProgress, MachineState, MachineStateJSON, Status
from labbridge.server.schemas import CheckReport, CheckResult, Diagnostics, MachineDescription
from tests.web_support import Api, running_app

GOOD = "G21 G90\nG0 X-20 Y-20\nG1 X-30 F300\nM30\n"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with running_app(tmp_path_factory.mktemp("schemas")) as api:
        yield api


def test_openapi_documents_the_shapes(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in ("MachineState", "MachineDescription", "JobRecord", "CheckReport", "CheckResult", "QueueEntry",
                 "Diagnostics", "CommandReply", "JobStartReply", "ProgramInfo", "AuditEntry", "UserInfo"):
        assert name in schemas, f"/openapi.json lacks {name}"
    assert set(schemas["MachineState"]["properties"]) == set(MachineState("m").to_dict())
    assert set(schemas["CheckReport"]["required"]) == {"program", "machine", "ok", "lines", "bounds",
                                                        "estimated_seconds", "diagnostics"}
    state = schemas["MachineState"]["properties"]["state"]
    assert set(state["enum"]) == {s.value for s in Status}


def test_every_api_reply_is_documented(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    for path, methods in spec["paths"].items():
        if not path.startswith("/api"):
            continue
        for method, op in methods.items():
            ok = next(code for code in op["responses"] if code.startswith("2"))
            content = op["responses"][ok].get("content", {})
            if content and all(not t.endswith("json") for t in content):
                continue  # a binary reply (the toolpath) is documented by its media type
            schema = content.get("application/json", {}).get("schema", {})
            assert "$ref" in schema or "$ref" in schema.get("items", {}), f"{method.upper()} {path}: {schema}"


def test_machine_state_json_is_exactly_the_drivers_values() -> None:
    s = MachineState("mill-1")
    s.update(connected=True, state=Status.RUN, position_machine={"X": -10.5, "Z": 3}, feed=1500,
             spindle_rpm=9000.0, override_feed=120, pins=frozenset({"X", "P"}), line_number=42, homed=True,
             alarms=(AlarmRecord("ALARM:1", "hard limit", 12.5, "grbl"),),
             job=JobProgress("j1", "a.nc", "running", 100, lines_acked=25, started_at=1.5))
    d = s.to_dict()
    assert list(d) == ["machine", "connected", "state", "substate", "position", "work_offset", "spindle", "feed",
                       "coolant", "overrides", "pins", "buffer", "line_number", "alarms", "fault", "program_name",
                       "homed", "firmware", "job", "updated_at"]
    assert d["state"] == "Run" and d["pins"] == ["P", "X"]
    assert json.dumps(d["feed"]) == "1500" and json.dumps(d["position"]["machine"]) == '{"X": -10.5, "Z": 3}'
    assert d["spindle"] == {"rpm": 9000.0, "load": None, "direction": None}
    assert d["overrides"] == {"feed": 120, "rapid": None, "spindle": None}
    assert d["buffer"] == {"planner_free": None, "rx_free": None}
    assert d["alarms"] == [{"code": "ALARM:1", "message": "hard limit", "time": 12.5, "source": "grbl"}]
    assert d["job"] == {"job_id": "j1", "program": "a.nc", "state": "running", "lines_total": 100, "lines_acked": 25,
                        "line_number": None, "started_at": 1.5, "eta_seconds": None, "message": "", "fraction": 0.25}
    assert MachineStateJSON.model_validate(d).model_dump(mode="json")["position"] == d["position"]


def test_replies_hold_to_their_models(api: Api) -> None:
    machines = api.call("viewer", "GET", "/api/machines").json()
    for m in machines:
        MachineDescription.model_validate(m)
    one = api.call("viewer", "GET", "/api/machines/mill-1").json()
    assert MachineStateJSON.model_validate(one["state"]).model_dump(mode="json").keys() == one["state"].keys()
    Diagnostics.model_validate(api.call("technician", "GET", "/api/machines/mill-1/diagnostics").json())
    digest = api.call("trainer", "POST", "/api/programs/text", json={"name": "g.nc", "text": GOOD}).json()["hash"]
    checked = api.call("trainer", "POST", f"/api/programs/{digest}/check", json={"machine": "mill-1"}).json()
    CheckResult.model_validate(checked)
    assert set(checked["report"]) == set(CheckReport.model_fields)  # exactly the check --json contract
    bare = api.call("trainer", "POST", f"/api/programs/{digest}/check",
                    json={"machine": "mill-1", "preview": False}).json()
    assert "preview" not in bare
    program = api.call("trainer", "GET", f"/api/programs/{digest}").json()  # viewers: live state only
    assert "upload_id" not in program and program["text"] == GOOD
    entry = api.call("trainer", "POST", "/api/queue", json={"program": digest, "machine": "mill-1"}).json()
    started = api.call("operator", "POST", f"/api/queue/{entry['id']}/start")
    assert started.status_code == 409  # the machine is unreachable here
    r = api.call("operator", "POST", "/api/machines/mill-1/override", json={"target": "feed", "value": 500})
    assert r.status_code == 409 and "outside" in r.json()["detail"]
