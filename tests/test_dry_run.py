"""Dry runs on the digital twin: a queued program runs on a simulator of the machine at 16x, beside the (here
unreachable) real machine, with the same job runner and records; the queue entry is marked rehearsed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from labbridge.sim import start_simulator
from tests.web_support import Api, running_app, wait_for

PROGRAM = ("G21 G90 G54\nM3 S9000\nG0 X0 Y0 Z5\nG1 Z-1 F600\n"
           + "".join(f"G1 X{30 * (i % 2)} Y{i * 3} F1200\n" for i in range(1, 9))
           + "G2 X20 Y24 R10\nG0 Z5\nM5\nM30\n")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running_app(tmp_path_factory.mktemp("dryrun"), twins=start_simulator) as api:
        yield api


def queue(api: Api, text: str = PROGRAM) -> dict:  # type: ignore[type-arg]
    h = api.call("trainer", "POST", "/api/programs/text", json={"name": "rehearse.nc", "text": text}).json()["hash"]
    r = api.call("trainer", "POST", "/api/queue", json={"program": h, "machine": "mill-1"})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_dry_run_at_16x_runs_to_the_end_and_marks_the_entry(api: Api) -> None:
    entry = queue(api)
    assert not api.ctx.lab.runtime("mill-1").state.connected  # the real machine is not even there
    r = api.call("trainer", "POST", f"/api/queue/{entry['id']}/dry-run", json={"speed": 16})
    assert r.status_code == 200, r.text
    assert r.json()["label"] == "DRY RUN — the machine does not move"
    positions: list[dict] = []  # type: ignore[type-arg]

    def finished() -> dict | None:  # type: ignore[type-arg]
        st = api.call("viewer", "GET", "/api/machines/mill-1/dry-run").json()
        if st and st["position"]:
            positions.append(st["position"])
        return st if st and st["state"] == "finished" else None

    status = wait_for(finished, timeout=90, what="the dry run to finish")
    result = status["result"]
    assert result["outcome"] == "completed", result
    assert result["alarms"] == []
    estimate = result["estimated_seconds"]
    assert estimate and result["simulated_seconds"]
    assert 0.5 * estimate < result["simulated_seconds"] < 2.5 * estimate + 5  # the twin's clock, not wall time
    assert len({(p["X"], p["Y"]) for p in positions}) > 2  # the twin's tool moved
    rows = api.call("trainer", "GET", "/api/queue").json()  # viewers see live state only
    mine = next(e for e in rows if e["id"] == entry["id"])
    assert mine["state"] == "queued" and mine["rehearsal"]["outcome"] == "completed"
    assert mine["rehearsal"]["speed"] == 16 and mine["rehearsal"]["simulated_seconds"] == result["simulated_seconds"]
    jobs = api.call("trainer", "GET", "/api/jobs").json()  # viewers see live state only
    assert any(j["machine"] == "mill-1/twin" and j["state"] == "completed" for j in jobs)  # same runner, same record
    audit = api.ctx.store.audit_log(limit=50)
    assert any(a["action"] == "dry_run" and a["outcome"] == "ok" for a in audit)


def test_one_dry_run_at_a_time_and_cancel(api: Api) -> None:
    slow = "G21 G90 G54\nM3 S9000\nG0 X0 Y0 Z5\n" + "".join(f"G1 X{40 * (i % 2)} Y{i} F200\n" for i in range(40)) + "M30\n"
    entry = queue(api, slow)
    assert api.call("operator", "POST", f"/api/queue/{entry['id']}/dry-run", json={"speed": 1}).status_code == 200
    wait_for(lambda: (api.call("viewer", "GET", "/api/machines/mill-1/dry-run").json() or {}).get("lines_acked"),
             timeout=60, what="the twin to take lines")
    busy = api.call("operator", "POST", f"/api/queue/{entry['id']}/dry-run", json={"speed": 4})
    assert busy.status_code == 409 and "still going" in busy.json()["detail"]
    assert api.call("trainer", "DELETE", "/api/machines/mill-1/dry-run").status_code == 200
    status = wait_for(lambda: (lambda s: s if s and s["state"] == "finished" else None)(
        api.call("viewer", "GET", "/api/machines/mill-1/dry-run").json()), timeout=60, what="the cancel")
    assert status["result"]["outcome"] == "cancelled" and status["result"]["simulated_seconds"] is None


def test_bad_speed_and_not_queued(api: Api) -> None:
    entry = queue(api)
    r = api.call("operator", "POST", f"/api/queue/{entry['id']}/dry-run", json={"speed": 3})
    assert r.status_code == 409 and "1x, 4x, 16x" in r.json()["detail"]
    api.call("operator", "DELETE", f"/api/queue/{entry['id']}")
    r = api.call("operator", "POST", f"/api/queue/{entry['id']}/dry-run", json={"speed": 4})
    assert r.status_code == 409 and "removed" in r.json()["detail"]
    assert api.call("viewer", "POST", f"/api/queue/{entry['id']}/dry-run", json={"speed": 4}).status_code == 403


def test_twins_never_touch_the_real_port(api: Api, tmp_path: Path) -> None:
    real = api.ctx.lab.config.machines["mill-1"].connection.serial
    assert real is not None and real.port == "/nonexistent/labbridge-test-tty"
    run = api.ctx.dry_runs.runs["mill-1"]
    assert run.handle is not None and run.handle.port != real.port
