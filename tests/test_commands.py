"""The command registry: each command defined once is served over REST and the websocket with the same
permission, the same refusal and the same audit; the flags a remote link reads say what each command does.

The machine is unreachable here, so an allowed command reaches the machine layer and is refused there (409)
with a reason naming the machine — the same status on both transports.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from labbridge.server.auth import Action, allowed
from labbridge.server.commands import COMMANDS, REST, WEBSOCKET, Command, Registry
from tests.web_support import ROLES, Api, running_app

GOOD = "G21 G90\nG0 X-20 Y-20\nM30\n"
ARGS: dict[str, dict[str, Any]] = {
    "jog": {"x": 1.0, "feed": 500},
    "override": {"target": "feed", "value": 120},
    "settings.write": {"key": "$110", "value": "1500"},
}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with running_app(tmp_path_factory.mktemp("commands")) as api:
        r = api.call("admin", "POST", "/api/programs/text", json={"name": "good.nc", "text": GOOD})
        assert r.status_code == 201, r.text
        api.program = r.json()["hash"]
        yield api


def fresh_entry(api: Api) -> int:
    r = api.call("admin", "POST", "/api/queue", json={"program": api.program, "machine": "mill-1"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def interrupted_job(api: Api) -> str:
    """A job record cut off mid-run, of the uploaded program (for the commands that act on one)."""
    from labbridge.streaming.job import Job, JobState, new_job_id

    job = Job(new_job_id(), "mill-1", str(api.ctx.store.program_file(api.program)), "good.nc", api.program,
              state=JobState.INTERRUPTED, lines_total=3, last_acked_line=2, executed_line=2)
    api.ctx.lab.job_store().create(job)
    return job.id


def args_for(api: Api, command: Command) -> dict[str, Any]:
    if command.name == "job.start":
        return {"entry_id": fresh_entry(api)}
    if command.name.startswith("job.") and "job_id" in (command.args.model_fields if command.args else {}):
        return {"job_id": interrupted_job(api)}
    return dict(ARGS.get(command.name, {}))


NO_MACHINE_NEEDED = {"job.dismiss_interruption"}  # answers from the records, without the (unreachable) machine


def over_rest(api: Api, role: str, command: Command, args: dict[str, Any]) -> tuple[int, str]:
    assert command.rest is not None
    body = dict(args)
    path = command.rest.path.replace("{machine}", "mill-1")
    for name in re.findall(r"\{(\w+)\}", path):
        path = path.replace("{" + name + "}", str(body.pop(name)))
    kw: dict[str, Any] = {"json": body} if command.rest.method != "GET" else {}
    r = api.call(role, command.rest.method, path, **kw)
    return r.status_code, str(r.json().get("detail", ""))


def over_websocket(api: Api, role: str, command: Command, args: dict[str, Any]) -> dict[str, Any]:
    with api.client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "auth", "token": api.tokens[role]})
        assert ws.receive_json()["type"] == "hello"
        message = {"type": command.name, "args": args, "id": 41}
        if command.locate is None:
            message["machine"] = "mill-1"
        ws.send_json(message)
        reply = ws.receive_json()
    assert reply["id"] == 41
    return reply  # type: ignore[no-any-return]


def test_every_command_is_served_by_both_transports() -> None:
    assert [c.name for c in COMMANDS.over(REST)] == [c.name for c in COMMANDS.over(WEBSOCKET)]
    names = {c.name for c in COMMANDS}
    assert {"hold", "resume", "cancel", "home", "unlock", "reset", "jog", "jog.cancel", "override",
            "settings.read", "settings.write", "job.start"} <= names


def test_rest_routes_come_from_the_registry(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()["paths"]
    for command in COMMANDS.over(REST):
        assert command.rest is not None
        op = spec[command.rest.path][command.rest.method.lower()]
        assert op["summary"] == command.summary


@pytest.mark.parametrize("command", list(COMMANDS.over(REST)), ids=lambda c: c.name)
def test_same_permission_and_answer_over_rest_and_websocket(api: Api, command: Command) -> None:
    for role in ROLES:
        status, detail = over_rest(api, role, command, args_for(api, command))
        rest_audit = api.ctx.store.audit_log(limit=1, username=role)[0]
        reply = over_websocket(api, role, command, args_for(api, command))
        ws_audit = api.ctx.store.audit_log(limit=1, username=role)[0]
        if allowed(role, command.permission) and command.name in NO_MACHINE_NEEDED:
            assert status == 200 and reply["type"] != "error", (status, detail, reply)
            assert rest_audit["outcome"] == ws_audit["outcome"] == "ok"
        elif allowed(role, command.permission):
            assert status == 409, f"{role} {command.name} over REST: {status} {detail}"
            assert reply["type"] == "error" and reply["status"] == 409, reply
            assert "mill-1" in detail and "mill-1" in reply["message"]  # the unreachable machine says why
            assert rest_audit["action"] == ws_audit["action"] == command.name
            assert rest_audit["outcome"] == ws_audit["outcome"] == "failed"
            assert ws_audit["detail"].startswith("websocket: ")
        else:
            assert status == 403 and role in detail, f"{role} must not {command.name}: {status} {detail}"
            assert reply["type"] == "error" and reply["status"] == 403 and reply["message"] == detail
            for entry in (rest_audit, ws_audit):
                assert entry["outcome"] == "denied" and entry["action"] == command.permission.value
                assert entry["machine"] == "mill-1"


def test_a_viewer_is_refused_every_command_on_both_transports(api: Api) -> None:
    for command in COMMANDS:
        status, detail = over_rest(api, "viewer", command, args_for(api, command))
        reply = over_websocket(api, "viewer", command, args_for(api, command))
        assert status == 403 and "viewer" in detail
        assert reply["type"] == "error" and reply["status"] == 403 and "viewer" in reply["message"]


def test_websocket_arguments_are_validated_by_the_command_model(api: Api) -> None:
    jog = COMMANDS.get("jog")
    assert jog is not None
    reply = over_websocket(api, "operator", jog, {"x": 1.0, "feed": -5})
    assert reply["type"] == "error" and "feed" in reply["message"]
    reply = over_websocket(api, "operator", jog, {"x": "far"})
    assert reply["type"] == "error" and "jog" in reply["message"]
    status, _ = over_rest(api, "operator", jog, {"x": 1.0, "feed": -5})
    assert status == 422


def test_unknown_machine_and_entry_are_not_found_on_both(api: Api) -> None:
    hold = COMMANDS.get("hold")
    start = COMMANDS.get("job.start")
    assert hold is not None and start is not None
    assert api.call("operator", "POST", "/api/machines/nope/hold").status_code == 404
    with api.client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "auth", "token": api.tokens["operator"]})
        ws.receive_json()
        ws.send_json({"type": "hold", "machine": "nope", "id": 1})
        reply = ws.receive_json()
    assert reply["status"] == 404 and "nope" in reply["message"]
    assert over_rest(api, "operator", start, {"entry_id": 99999})[0] == 404
    assert over_websocket(api, "operator", start, {"entry_id": 99999})["status"] == 404


def test_flags_say_what_a_command_does() -> None:
    moving = {c.name for c in COMMANDS if c.moves_machine}
    settings = {c.name for c in COMMANDS if c.changes_settings}
    assert {"resume", "home", "jog", "job.start"} <= moving
    assert settings == {"settings.write"}
    for stop in ("hold", "cancel", "jog.cancel"):
        command = COMMANDS.get(stop)
        assert command is not None and not command.moves_machine and not command.changes_settings
        assert command.permission in (Action.HOLD, Action.CANCEL)  # stop wins: every role but viewer
    read = COMMANDS.get("settings.read")
    assert read is not None and not read.moves_machine and not read.changes_settings


def test_a_command_is_defined_once() -> None:
    registry = Registry()

    async def nothing(call: Any) -> None:
        return None

    registry.define("ping.machine", Action.VIEW, "test")(nothing)
    with pytest.raises(ValueError, match="defined twice"):
        registry.define("ping.machine", Action.HOLD, "again")(nothing)
    assert [c.name for c in registry] == ["ping.machine"] and "ping.machine" in registry


def test_registry_routes_for_a_new_command(tmp_path: Path) -> None:
    """A command added to a registry gets its REST route, body model and permission from its definition."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from pydantic import BaseModel

    from labbridge.server.api.commands import build_router
    from labbridge.server.commands import Rest

    class Spin(BaseModel):
        rpm: int

    registry = Registry()

    @registry.define("spin", Action.OVERRIDE, "Spin the spindle (test)", args=Spin,
                     rest=Rest("POST", "/api/machines/{machine}/spin"), moves_machine=True)
    async def spin(call: Any) -> str:
        return f"spinning at {call.args.rpm}"

    with running_app(tmp_path) as api:
        app = FastAPI()
        app.state.ctx = api.ctx
        app.include_router(build_router(registry))
        client = TestClient(app)
        op = app.openapi()["paths"]["/api/machines/{machine}/spin"]["post"]
        assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/Spin")
        r = client.post("/api/machines/mill-1/spin", json={"rpm": 900}, headers=api.headers("operator"))
        assert r.status_code == 200 and r.json() == {"machine": "mill-1", "action": "spin", "result": "spinning at 900"}
        r = client.post("/api/machines/mill-1/spin", json={"rpm": 900}, headers=api.headers("trainer"))
        assert r.status_code == 403
        assert client.post("/api/machines/mill-1/spin", json={"rpm": 900}).status_code == 401
        entry = api.ctx.store.audit_log(limit=1, username="operator")[0]
        assert entry["action"] == "spin" and entry["outcome"] == "ok" and entry["detail"] == "spinning at 900"
