"""Class mode over the API (issue #11): a trainer opens a class, students submit by code, the trainer approves.

The whole flow end to end; who may see and do what; the limits (256 KB, 60 a minute per
class, 6 a minute per client, 429 with Retry-After); untrusted names kept verbatim and
refused when they cannot be shown; expiry and the deletion of minors' data N days after
a class ends; the trainer's live view over the websocket.
"""

from __future__ import annotations

import base64

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from labbridge.server.classes import CODE_ALPHABET, MAX_PROGRAM_BYTES, SlidingWindow
from labbridge.safety.toolpath import FLAGGED, decode
from tests.web_support import PASSWORD, Api, running_app

# Line 6 leaves mill-1's envelope (G54 X is -240 machine; X300 work is +60 machine, past X max 0).
OUTSIDE = "G21 G90 G54\nG0 Z5\nM3 S8000\nG0 X10 Y10\nG1 Z-1 F200\nG1 X300 Y10 F300\nG0 Z5\nM5\nM30\n"
FIXED = OUTSIDE.replace("X300", "X30")
REPORT_KEYS = {"program", "machine", "ok", "lines", "bounds", "estimated_seconds", "diagnostics"}


class Clock:
    """A clock the test moves by hand (for the limiter's window and for class expiry)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with running_app(tmp_path_factory.mktemp("classes")) as api:
        r = api.call("admin", "POST", "/api/users", json={"username": "trainer2", "password": PASSWORD,
                                                          "role": "trainer"})
        assert r.status_code == 201, r.text
        api.tokens["trainer2"] = api.login("trainer2", PASSWORD)["token"]
        yield api


@pytest.fixture()
def api(lab: Api) -> Any:
    """The module's server with fresh limits and the real clock: each test opens classes of its own."""
    room(lab).limiter = SlidingWindow()
    room(lab).book.clock = time.time
    return lab


def open_class(api: Api, role: str = "trainer", minutes: int = 45, name: str = "Lesson 3: facing") -> dict[str, Any]:
    r = api.call(role, "POST", "/api/classes", json={"name": name, "machine": "mill-1", "minutes": minutes})
    assert r.status_code == 201, r.text
    return dict(r.json())


def student(api: Api, code: str, name: str, text: str, client: TestClient | None = None, **headers: str) -> Any:
    return (client or api.client).post(f"/api/classes/{code}/submissions", json={"student": name, "text": text},
                                       headers=headers)


def room(api: Api) -> Any:
    return api.client.app.state.classes


def test_the_class_flow_end_to_end(api: Api) -> None:
    before = time.time()
    cls = open_class(api)
    code = cls["code"]
    assert len(code) == 6 and set(code) <= set(CODE_ALPHABET) and not set(code) & set("0O1IL2Z5S8B")
    assert cls["url"] == f"http://testserver/join/{code}"
    assert cls["qr"].startswith("data:image/svg+xml") and "svg" in cls["qr"]
    assert before + 45 * 60 - 5 < cls["expires_at"] < time.time() + 45 * 60 + 5
    assert cls["machine"] == "mill-1" and cls["state"] == "open" and cls["owner"] == "trainer"
    assert api.client.get(f"/join/{code}").headers["content-type"].startswith("text/html")
    public = api.client.get(f"/api/classes/{code.lower()}/public").json()
    assert public["name"] == "Lesson 3: facing" and public["code"] == code and "owner" not in public

    # Ona submits a program that leaves the envelope: the report shows it on its line.
    r = student(api, code, "Ona", OUTSIDE)
    assert r.status_code == 201, r.text
    first = r.json()
    assert set(first["report"]) == REPORT_KEYS and first["report"]["ok"] is False
    envelope = [d for d in first["report"]["diagnostics"] if d["code"] == "envelope"]
    assert envelope and envelope[0]["line"] == 6 and envelope[0]["severity"] == "error"
    path = decode(base64.b64decode(first["toolpath"]))
    assert path.vertices and FLAGGED in path.kinds  # the envelope error is drawn red
    failing = first["id"]

    r = api.call("trainer", "POST", f"/api/classes/{code}/submissions/{failing}/approve")
    assert r.status_code == 409 and "error" in r.json()["detail"]

    # She fixes it; Jonas submits too.
    fixed = student(api, code, "Ona", FIXED).json()
    assert fixed["report"]["ok"] is True, fixed["report"]
    assert student(api, code, "Jonas", OUTSIDE).status_code == 201

    listing = api.call("trainer", "GET", f"/api/classes/{code}/submissions").json()
    assert [a["student"] for a in listing] == ["Jonas", "Ona", "Ona"]  # newest first
    ona_first = next(a for a in listing if a["id"] == failing)
    assert ona_first["ok"] is False and ona_first["errors"] >= 1 and ona_first["time"] >= before
    assert ona_first["first_error"]["line"] == 6 and ona_first["first_error"]["code"] == "envelope"
    assert "text" not in ona_first and "report" not in ona_first

    r = api.call("trainer", "POST", f"/api/classes/{code}/submissions/{fixed['id']}/approve")
    assert r.status_code == 201, r.text
    entry = r.json()["entry"]
    assert entry["note"] == "Ona" and entry["state"] == "queued" and entry["machine"] == "mill-1"
    queue = api.call("operator", "GET", "/api/queue").json()
    assert any(e["id"] == entry["id"] for e in queue)
    assert api.call("operator", "GET", f"/api/programs/{entry['hash']}").json()["text"] == FIXED
    again = api.call("trainer", "POST", f"/api/classes/{code}/submissions/{fixed['id']}/approve")
    assert again.status_code == 409 and f"#{entry['id']}" in again.json()["detail"]

    detail = api.call("trainer", "GET", f"/api/classes/{code}").json()
    students = {s["student"]: s for s in detail["summary"]["students"]}
    assert students["Ona"]["attempts"] == 2 and students["Ona"]["latest_ok"] is True
    assert students["Ona"]["approved"] == 1
    assert students["Jonas"]["attempts"] == 1 and students["Jonas"]["latest_ok"] is False
    common = detail["summary"]["common_errors"]
    assert common[0]["code"] == "envelope" and common[0]["students"] == 2 and common[0]["attempts"] == 2

    one = api.call("trainer", "GET", f"/api/classes/{code}/submissions/{failing}").json()
    assert one["text"] == OUTSIDE and one["report"]["ok"] is False and decode(base64.b64decode(one["toolpath"])).vertices

    r = api.call("trainer", "DELETE", f"/api/classes/{code}")
    assert r.status_code == 200 and r.json()["state"] == "closed"
    assert r.json()["delete_after"] == pytest.approx(r.json()["closed_at"] + 30 * 86400)
    assert student(api, code, "Late", FIXED).status_code == 404
    assert api.client.get(f"/api/classes/{code}/public").status_code == 404

    actions = [(a["action"], a["outcome"]) for a in api.ctx.store.audit_log(limit=50) if a["action"].startswith("class")]
    assert ("class.open", "ok") in actions and ("class.close", "ok") in actions
    assert ("class.approve", "ok") in actions and ("class.approve", "refused") in actions
    approval = next(a for a in api.ctx.store.audit_log(limit=50, action="class.approve") if a["outcome"] == "ok")
    assert approval["username"] == "trainer" and approval["machine"] == "mill-1" and "Ona" not in approval["detail"]


def test_only_the_classs_trainer_or_an_admin_sees_and_acts(api: Api) -> None:
    code = open_class(api)["code"]
    assert student(api, code, "Ona", FIXED).status_code == 201
    sub = api.call("trainer", "GET", f"/api/classes/{code}/submissions").json()[0]["id"]
    for path, method in ((f"/api/classes/{code}/submissions", "GET"), (f"/api/classes/{code}", "GET"),
                         (f"/api/classes/{code}/submissions/{sub}", "GET"),
                         (f"/api/classes/{code}/submissions/{sub}/approve", "POST"), (f"/api/classes/{code}", "DELETE")):
        r = api.call("trainer2", method, path)
        assert r.status_code == 403 and code in r.json()["detail"], (method, path, r.text)
    assert api.ctx.store.audit_log(limit=1, username="trainer2")[0]["outcome"] == "denied"
    assert api.call("admin", "GET", f"/api/classes/{code}/submissions").status_code == 200
    for role in ("viewer", "technician"):
        assert api.call(role, "GET", f"/api/classes/{code}/submissions").status_code == 403
        assert api.call(role, "POST", "/api/classes", json={"name": "x", "machine": "mill-1", "minutes": 30}
                        ).status_code == 403
    assert code in [c["code"] for c in api.call("trainer", "GET", "/api/classes").json()]
    assert code not in [c["code"] for c in api.call("trainer2", "GET", "/api/classes").json()]
    assert code in [c["code"] for c in api.call("admin", "GET", "/api/classes").json()]
    # an unknown class, an unknown attempt, an unknown machine
    assert api.call("trainer", "GET", "/api/classes/QQQQQQ/submissions").status_code == 404
    assert api.call("trainer", "GET", f"/api/classes/{code}/submissions/99999").status_code == 404
    r = api.call("trainer", "POST", "/api/classes", json={"name": "x", "machine": "mill-9", "minutes": 30})
    assert r.status_code == 404 and "mill-9" in r.json()["detail"]
    for minutes in (0, 4, 601):
        assert api.call("trainer", "POST", "/api/classes", json={"name": "x", "machine": "mill-1",
                                                                "minutes": minutes}).status_code == 422


def test_unknown_closed_and_expired_codes_are_404(api: Api) -> None:
    assert student(api, "ZZZZZZ", "Ona", FIXED).status_code == 404
    clock = Clock(time.time())
    room(api).book.clock = clock
    code = open_class(api, minutes=5)["code"]
    assert student(api, code, "Ona", FIXED).status_code == 201
    clock.now += 5 * 60 + 1
    r = student(api, code, "Ona", FIXED)
    assert r.status_code == 404 and code in r.json()["detail"]
    assert api.call("trainer", "GET", f"/api/classes/{code}").json()["state"] == "expired"
    assert len(api.call("trainer", "GET", f"/api/classes/{code}/submissions").json()) == 1


def test_submissions_are_deleted_n_days_after_the_class_ends(api: Api) -> None:
    clock = Clock(time.time())
    book = room(api).book
    book.clock = clock
    closed, expiring, running = (open_class(api, minutes=m)["code"] for m in (60, 10, 600))
    for code in (closed, expiring, running):
        assert student(api, code, "Ona", OUTSIDE).status_code == 201
    assert api.call("trainer", "DELETE", f"/api/classes/{closed}").status_code == 200
    clock.now += 29 * 86400
    assert not {closed, expiring, running} & set(room(api).purge())
    clock.now += 1 * 86400 + 600
    purged = set(room(api).purge())  # (classes of the module's other tests may go too: they ended as well)
    assert {closed, expiring} <= purged and running not in purged  # the 10-minute class ended when it expired
    assert api.call("trainer", "GET", f"/api/classes/{closed}/submissions").json() == []
    assert api.call("trainer", "GET", f"/api/classes/{closed}").json()["state"] == "purged"
    assert api.ctx.store.row("SELECT COUNT(*) AS n FROM web_class_submissions WHERE code IN (?, ?)",
                             (closed, expiring))["n"] == 0
    assert len(api.call("trainer", "GET", f"/api/classes/{running}/submissions").json()) == 1
    purges = {p["detail"].split(":")[0] for p in api.ctx.store.audit_log(limit=100, action="class.purge")}
    assert {closed, expiring} <= purges and running not in purges


def test_retention_is_configurable(tmp_path: Path) -> None:
    with running_app(tmp_path, class_retention_days=2) as api:
        clock = Clock(time.time())
        room(api).book.clock = clock
        code = open_class(api)["code"]
        assert student(api, code, "Ona", FIXED).status_code == 201
        closed = api.call("trainer", "DELETE", f"/api/classes/{code}").json()
        assert closed["delete_after"] == pytest.approx(closed["closed_at"] + 2 * 86400)
        clock.now += 2 * 86400 + 1
        assert room(api).purge() == [code]


def test_program_size_limit(api: Api) -> None:
    code = open_class(api)["code"]
    block = "G0 X1 Y1\n"
    exactly = (block * (MAX_PROGRAM_BYTES // len(block) + 1))[:MAX_PROGRAM_BYTES - 4] + "M30\n"
    assert len(exactly.encode()) == MAX_PROGRAM_BYTES
    r = student(api, code, "Ona", exactly)
    assert r.status_code == 201, r.text[:300]
    r = student(api, code, "Ona", exactly + "G0\n")
    assert r.status_code == 413 and "256 KB" in r.json()["detail"]
    # A body far over the limit is refused from its Content-Length, before it is read.
    huge = json.dumps({"student": "Ona", "text": "G0 X1\n" * 400_000}).encode()
    r = api.client.post(f"/api/classes/{code}/submissions", content=huge,
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "256 KB" in r.json()["detail"]
    assert student(api, code, "Ona", "").status_code == 400
    assert student(api, code, "Ona", "G0 X1\x00\x00").status_code == 415


def test_per_client_limit_is_six_a_minute_with_retry_after(api: Api) -> None:
    code = open_class(api)["code"]
    clock = Clock(1000.0)
    room(api).limiter.clock = clock
    for i in range(6):
        clock.now += 1
        assert student(api, code, f"Ona {i}", FIXED).status_code == 201
    r = student(api, code, "Ona", FIXED)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "55"  # the first of the six leaves the window 60 s after it came
    assert "55" in r.json()["detail"]
    other = TestClient(api.client.app, client=("10.0.0.7", 50000))
    assert student(api, code, "Jonas", FIXED, client=other).status_code == 201  # another phone is not held up
    clock.now += 55
    assert student(api, code, "Ona", FIXED).status_code == 201
    # Guessing codes counts too.
    for _ in range(5):
        student(api, "QQQQQQ", "x", FIXED)
    assert student(api, "QQQQQQ", "x", FIXED).status_code == 429


def test_per_class_limit_is_sixty_a_minute(api: Api) -> None:
    code = open_class(api)["code"]
    other_code = open_class(api)["code"]
    clock = Clock(5000.0)
    room(api).limiter.clock = clock
    statuses = []
    for i in range(61):
        phone = TestClient(api.client.app, client=(f"10.0.{i // 200}.{i % 200 + 1}", 40000))
        statuses.append(student(api, code, f"S{i}", "G0 X1\nM30\n", client=phone).status_code)
    assert statuses[:60] == [201] * 60 and statuses[60] == 429
    phone = TestClient(api.client.app, client=("10.9.9.9", 40000))
    assert student(api, other_code, "S", "G0 X1\nM30\n", client=phone).status_code == 201
    clock.now += 60.1
    assert student(api, code, "S", "G0 X1\nM30\n", client=phone).status_code == 201


@pytest.mark.parametrize(("name", "status"), [
    ("", 422), ("   ", 422), ("x" * 41, 422), ("Ona\x00", 422), ("Ona\u202e", 422), ("Ona\n\t Petraitytė", 201),
])
def test_student_names_are_checked(api: Api, name: str, status: int) -> None:
    code = open_class(api)["code"]
    r = student(api, code, name, FIXED)
    assert r.status_code == status, r.text
    if status == 201:
        assert r.json()["student"] == "Ona Petraitytė"


def test_untrusted_names_are_kept_verbatim_as_data(api: Api) -> None:
    code = open_class(api, name="<b>Lesson</b>")["code"]
    name = "<img src=x onerror=alert(1)>"
    r = student(api, code, name, FIXED)
    assert r.status_code == 201 and r.json()["student"] == name
    listing = api.call("trainer", "GET", f"/api/classes/{code}/submissions")
    assert listing.headers["content-type"].startswith("application/json")
    assert listing.json()[0]["student"] == name
    assert api.client.get(f"/api/classes/{code}/public").json()["name"] == "<b>Lesson</b>"
    page = api.client.get(f"/join/{code}")  # the page is static: nothing from the request is written into it
    assert code not in page.text and "Lesson" not in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_students_get_messages_in_their_language(api: Api) -> None:
    r = student(api, "QQQQQQ", "Ona", FIXED, **{"Accept-Language": "lt-LT,lt;q=0.9,en;q=0.5"})
    assert r.status_code == 404 and r.headers["content-language"] == "lt"
    assert "nėra atidarytos klasės" in r.json()["detail"]
    r = student(api, "QQQQQQ", "Ona", FIXED, **{"Accept-Language": "fr-FR, de;q=0.8"})
    assert r.headers["content-language"] == "de" and "keine offene Klasse" in r.json()["detail"]
    r = student(api, "QQQQQQ", "Ona", FIXED)
    assert r.headers["content-language"] == "en" and "no open class" in r.json()["detail"]
    # the gate's report in the student's language: same codes and lines, other words
    code = open_class(api)["code"]
    english = student(api, code, "Ona", OUTSIDE).json()["report"]
    local = student(api, code, "Ona", OUTSIDE, **{"Accept-Language": "lt"}).json()["report"]
    assert [(d["line"], d["code"]) for d in local["diagnostics"]] == [(d["line"], d["code"]) for d in english["diagnostics"]]
    envelope = next(d["message"] for d in local["diagnostics"] if d["code"] == "envelope")
    assert "pasiekia" in envelope and "staklių mill-1" in envelope
    # the trainer reads the same attempt in their own language
    sub = api.call("trainer", "GET", f"/api/classes/{code}/submissions").json()[0]["id"]
    seen = api.client.get(f"/api/classes/{code}/submissions/{sub}",
                          headers={**api.headers("trainer"), "Accept-Language": "de-DE"}).json()
    assert "erreicht" in next(d["message"] for d in seen["report"]["diagnostics"] if d["code"] == "envelope")


def test_the_trainer_sees_submissions_live_and_nobody_else_does(api: Api) -> None:
    code = open_class(api)["code"]
    with api.client.websocket_connect("/ws") as mine, api.client.websocket_connect("/ws") as theirs:
        for ws, who in ((mine, "trainer"), (theirs, "trainer2")):
            ws.send_json({"type": "auth", "token": api.tokens[who]})
            assert ws.receive_json()["type"] == "hello"
        assert student(api, code, "Ona", OUTSIDE).status_code == 201
        msg = mine.receive_json()
        while msg["type"] != "class":
            msg = mine.receive_json()
        assert msg["code"] == code and msg["event"] == "submission"
        assert msg["submission"]["student"] == "Ona" and msg["submission"]["ok"] is False
        assert "text" not in msg["submission"]
        theirs.send_json({"type": "ping"})
        assert theirs.receive_json()["type"] == "pong"  # nothing about the class came before the reply


def test_join_url_and_qr_name_the_address_the_trainer_used(api: Api) -> None:
    r = api.client.post("/api/classes", json={"name": "x", "machine": "mill-1", "minutes": 30},
                        headers={**api.headers("trainer"), "Host": "192.168.4.1:8000"})
    body = r.json()
    assert body["url"] == f"http://192.168.4.1:8000/join/{body['code']}"
    svg = re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), body["qr"].split(",", 1)[1])
    assert svg.startswith("<svg") and "<path" in svg
