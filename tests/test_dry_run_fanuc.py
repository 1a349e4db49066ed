"""Dry runs of the Fanuc-style machines over the API: lathe-1 (DNC + Modbus TCP) and mill-2 (DNC + OPC UA).

The "real" machines are simulators too (on their own pty and TCP ports, at real time), connected through the
server's real drivers; each dry run starts a second simulator, the twin, at 16x. The real machines must see
nothing: their DNC ports receive no byte and their controls run no block.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from labbridge.sim import start_simulator
from tests.web_support import ROOT, Api, lab_config, running_app, wait_for

pytestmark = pytest.mark.slow

LATHE = (ROOT / "examples" / "lathe-1-shaft.nc").read_text()
MILL = (ROOT / "examples" / "mill-2-drill-plate.nc").read_text()
# long enough at 16x to be held, resumed and cancelled: 30 passes of 200 mm at 300 mm/min (some 20 minutes)
MILL_LONG = ("%\nO2002\nG21 G17 G40 G49 G80 G90 G94\nG54 G0 X10. Y10. S2000 M3\nG0 Z5.\nG1 Z-1. F300\n"
             + "".join(f"G1 X{10 + 200 * ((i + 1) % 2)}. Y{10 + i}. F300\n" for i in range(30))
             + "G0 Z50.\nM5\nM30\n%\n")
# the lathe's chuck jaws start 232 mm from home (Z -52 in G54): this plunge goes into them (line 5)
INTO_THE_CHUCK = "%\nO1002\nG21 G18 G99\nG97 S500 M3\nG0 X30. Z2.\nG1 Z-60. F0.2\nM30\n%\n"


class RealMachines:
    """The lab's real Fanuc-style machines, simulated on an event loop of their own (as hardware would be)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.handles: dict[str, Any] = {}

    def start(self, machine_id: str, machine: Any) -> Any:
        handle, pointed = asyncio.run_coroutine_threadsafe(start_simulator(machine_id, machine), self.loop).result(60)
        self.handles[machine_id] = handle
        return pointed

    def untouched(self, machine_id: str) -> bool:
        handle = self.handles[machine_id]
        return handle.dnc.received == b"" and handle.sim.blocks_done == 0 and not handle.sim.queue

    def close(self) -> None:
        for handle in self.handles.values():
            asyncio.run_coroutine_threadsafe(handle.close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, RealMachines]]:
    real = RealMachines()
    try:
        config = lab_config(("lathe-1", "mill-2"), unreachable=False)
        for machine_id in ("lathe-1", "mill-2"):
            config.machines[machine_id] = real.start(machine_id, config.machines[machine_id])
        with running_app(tmp_path_factory.mktemp("fanuc-dry"), config, twins=start_simulator) as api:
            for machine_id in ("lathe-1", "mill-2"):
                wait_for(lambda m=machine_id: api.call("viewer", "GET", f"/api/machines/{m}").json()["state"]
                         ["state"] == "Idle", timeout=60, what=f"the real {machine_id} to report Idle")
            yield api, real
    finally:
        real.close()


def queue(api: Api, machine: str, text: str, name: str) -> dict[str, Any]:
    h = api.call("trainer", "POST", "/api/programs/text", json={"name": name, "text": text}).json()["hash"]
    r = api.call("trainer", "POST", "/api/queue", json={"program": h, "machine": machine})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def status(api: Api, machine: str) -> dict[str, Any]:
    return api.call("viewer", "GET", f"/api/machines/{machine}/dry-run").json()  # type: ignore[no-any-return]


def follow(api: Api, machine: str, timeout: float = 90) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Poll the dry run until it ends; returns its last status and every status seen on the way."""
    seen: list[dict[str, Any]] = []

    def finished() -> dict[str, Any] | None:
        st = status(api, machine)
        seen.append(st)
        return st if st["state"] == "finished" else None

    return wait_for(finished, timeout=timeout, interval=0.05, what=f"the dry run on {machine} to end"), seen


def test_lathe_dry_run_at_16x_runs_on_its_twin_in_diameters(lab: tuple[Api, RealMachines]) -> None:
    api, real = lab
    entry = queue(api, "lathe-1", LATHE, "shaft.nc")
    r = api.call("trainer", "POST", f"/api/queue/{entry['id']}/dry-run", json={"speed": 16})
    assert r.status_code == 200, r.text
    assert r.json()["label"] == "DRY RUN — the machine does not move"
    final, seen = follow(api, "lathe-1")
    result = final["result"]
    assert result["outcome"] == "completed", result
    assert result["alarms"] == []
    estimate, simulated = result["estimated_seconds"], result["simulated_seconds"]
    assert estimate and 20 < estimate < 120, estimate
    assert 0.7 * estimate < simulated < 1.5 * estimate + 3, (simulated, estimate)  # the twin's clock to its end
    running = [s for s in seen if s["job_state"] == "running" and s["lines_total"]]
    assert running, seen
    # progress counts blocks the twin read; the ETA (simulated seconds) falls from the gate's estimate to 0
    acked = [s["lines_acked"] for s in running]
    assert acked == sorted(acked) and acked[-1] > acked[0]
    etas = [s["eta_seconds"] for s in running]
    assert etas[0] <= estimate + 0.01 and etas == sorted(etas, reverse=True) and etas[-1] < etas[0], etas
    # the twin's tool, reported over Modbus in machine coordinates: a lathe has X (a diameter) and Z, no Y
    positions = [s["position"] for s in seen if s["position"]]
    assert positions and all(set(p) == {"X", "Z"} for p in positions), positions[:3]
    assert all(-2.0 <= p["X"] <= 160.0 and -260.0 <= p["Z"] <= 0.0 for p in positions)
    assert len({(p["X"], p["Z"]) for p in positions}) > 3  # the twin's tool moved
    # the roughing pass G1 Z-40 at X38 (a diameter): the twin stands at X 38 on its way to Z -220 (G54 Z -180)
    assert any(abs(p["X"] - 38.0) < 0.01 and -220.0 <= p["Z"] < -182.0 for p in positions), positions
    assert (final["position"]["X"], final["position"]["Z"]) == (160.0, 0.0)  # G28 U0 W0: home, as configured
    # the same job record as a real DNC job, under the twin's name
    (job,) = [j for j in api.call("trainer", "GET", "/api/jobs?machine=lathe-1/twin").json()
              if j["id"] == result["job_id"]]
    assert job["protocol"] == "dnc" and job["state"] == "completed"
    assert job["lines_acked"] == job["lines_total"] == final["lines_total"] > 20
    rows = api.call("trainer", "GET", "/api/queue").json()
    mine = next(e for e in rows if e["id"] == entry["id"])
    assert mine["state"] == "queued" and mine["rehearsal"]["outcome"] == "completed"
    assert mine["rehearsal"]["simulated_seconds"] == simulated and mine["rehearsal"]["speed"] == 16
    # the real lathe: its DNC port saw no byte, its control ran no block, its state never left Idle
    assert real.untouched("lathe-1")
    assert api.call("viewer", "GET", "/api/machines/lathe-1").json()["state"]["state"] == "Idle"
    twin = api.ctx.dry_runs.runs["lathe-1"].handle
    assert twin.dnc_port != real.handles["lathe-1"].dnc_port and twin.dnc.received  # the twin got the tape


def test_mill_dry_run_over_opc_ua_at_16x(lab: tuple[Api, RealMachines]) -> None:
    api, real = lab
    entry = queue(api, "mill-2", MILL, "drill-plate.nc")
    assert api.call("operator", "POST", f"/api/queue/{entry['id']}/dry-run", json={"speed": 16}).status_code == 200
    final, seen = follow(api, "mill-2")
    result = final["result"]
    assert result["outcome"] == "completed" and result["alarms"] == [], result
    estimate, simulated = result["estimated_seconds"], result["simulated_seconds"]
    assert 0.7 * estimate < simulated < 1.5 * estimate + 3, (simulated, estimate)
    positions = [s["position"] for s in seen if s["position"]]
    assert all(set(p) == {"X", "Y", "Z"} for p in positions) and len({tuple(p.values()) for p in positions}) > 3
    # drilling to Z-12 with the drill's length (H2, 95 mm) from G54 Z -300: the spindle goes down to Z -217,
    # well below the R plane (Z -203)
    assert any(p["Z"] < -208.0 for p in positions), positions
    assert real.untouched("mill-2") and real.untouched("lathe-1")
    assert api.call("viewer", "GET", "/api/machines/mill-2").json()["state"]["state"] == "Idle"


def test_hold_resume_and_cancel_a_fanuc_dry_run(lab: tuple[Api, RealMachines]) -> None:
    api, real = lab
    entry = queue(api, "mill-2", MILL_LONG, "long.nc")
    path = "/api/machines/mill-2/dry-run"
    assert api.call("operator", "POST", f"{path}/hold").status_code == 409  # nothing going yet
    assert api.call("operator", "POST", f"/api/queue/{entry['id']}/dry-run", json={"speed": 16}).status_code == 200
    wait_for(lambda: status(api, "mill-2")["twin_state"] == "Run" and status(api, "mill-2")["lines_acked"],
             timeout=60, what="the twin to run")
    r = api.call("operator", "POST", f"{path}/hold")
    assert r.status_code == 200, r.text
    held = wait_for(lambda: (lambda s: s if s["twin_state"] == "Hold" and s["job_state"] == "holding" else None)(
        status(api, "mill-2")), timeout=30, what="the twin to hold")
    time.sleep(0.5)  # 8 simulated seconds: a held twin does not move
    now = status(api, "mill-2")
    assert now["position"] == held["position"]
    job = api.ctx.dry_runs.runs["mill-2"].runner.job  # the job's record: what the twin has read of the tape
    assert (now["lines_acked"], now["line"]) == (job.lines_acked, job.last_acked_line) and job.lines_acked > 1
    assert api.call("operator", "POST", f"{path}/resume").status_code == 200
    wait_for(lambda: (lambda s: s["twin_state"] == "Run" and s["job_state"] == "running"
                      and s["position"] != held["position"])(status(api, "mill-2")), timeout=30,
             what="the twin to run again")
    assert api.call("viewer", "POST", f"{path}/hold").status_code == 403
    assert api.call("trainer", "DELETE", path).status_code == 200
    final, _ = follow(api, "mill-2", timeout=60)
    assert final["result"]["outcome"] == "cancelled" and final["result"]["simulated_seconds"] is None
    events = [e["event"] for e in api.call("technician", "GET",
                                           f"/api/jobs/{final['result']['job_id']}/events").json()]
    assert "job_held" in events and "job_resumed" in events and events[-1] == "job_cancelled"
    assert real.untouched("mill-2")
    assert api.call("viewer", "GET", "/api/machines/mill-2").json()["state"]["state"] == "Idle"


def test_hold_after_the_tape_has_gone_out(lab: tuple[Api, RealMachines]) -> None:
    """A short tape fits the control's buffer: the tape job ends at once, the twin's control still runs it,
    and holding the dry run holds the twin; the hold's time is not counted as the program's."""
    api, real = lab
    slow_cut = "%\nO1004\nG21 G18 G99\nG97 S300 M3\nG0 X42. Z2.\nG1 Z-45. F0.2\nG0 X60. Z5.\nM30\n%\n"
    entry = queue(api, "lathe-1", slow_cut, "slow-cut.nc")
    path = "/api/machines/lathe-1/dry-run"
    assert api.call("operator", "POST", f"/api/queue/{entry['id']}/dry-run", json={"speed": 16}).status_code == 200
    wait_for(lambda: (lambda s: s["job_state"] == "completed" and s["twin_state"] == "Run")(status(api, "lathe-1")),
             timeout=60, what="the tape to be read whole while the twin runs")
    assert api.call("operator", "POST", f"{path}/hold").status_code == 200
    held = wait_for(lambda: (lambda s: s if s["twin_state"] == "Hold" else None)(status(api, "lathe-1")),
                    timeout=30, what="the twin to hold")
    time.sleep(1.5)  # 24 simulated seconds
    assert status(api, "lathe-1")["position"] == held["position"] and status(api, "lathe-1")["state"] == "running"
    assert api.call("operator", "POST", f"{path}/resume").status_code == 200
    final, _ = follow(api, "lathe-1")
    result = final["result"]
    assert result["outcome"] == "completed", result
    estimate, simulated = result["estimated_seconds"], result["simulated_seconds"]
    assert 0.7 * estimate < simulated < 1.3 * estimate + 3, (simulated, estimate)  # the hold is not counted
    assert real.untouched("lathe-1")
    # and stopping it then stops the twin's control (the tape job has ended; the rehearsal has not)
    assert api.call("operator", "POST", f"/api/queue/{entry['id']}/dry-run", json={"speed": 16}).status_code == 200
    wait_for(lambda: (lambda s: s["job_state"] == "completed" and s["twin_state"] == "Run")(status(api, "lathe-1")),
             timeout=60, what="the tape to be read whole while the twin runs")
    assert api.call("operator", "DELETE", path).status_code == 200
    final, _ = follow(api, "lathe-1", timeout=30)
    assert final["result"]["outcome"] == "cancelled" and final["result"]["simulated_seconds"] is None, final


def test_a_program_the_gate_rejects_is_refused_before_a_twin_starts(lab: tuple[Api, RealMachines]) -> None:
    api, real = lab
    h = api.call("trainer", "POST", "/api/programs/text", json={"name": "chuck.nc", "text": INTO_THE_CHUCK}).json()
    assert api.call("trainer", "POST", "/api/queue", json={"program": h["hash"], "machine": "lathe-1"}).status_code \
        == 409  # the queue refuses it too
    # an entry queued before the chuck jaws were added to the config: the gate runs again for the dry run
    entry = api.ctx.store.enqueue("lathe-1", h["hash"], "chuck.nc", 0, "trainer", "queued under the old config")
    before = api.ctx.dry_runs.runs.get("lathe-1")
    r = api.call("trainer", "POST", f"/api/queue/{entry['id']}/dry-run", json={"speed": 16})
    assert r.status_code == 409, r.text
    detail = r.json()["detail"]
    assert "safety gate" in detail and "chuck.nc:6" in detail and "keep-out" in detail, detail
    assert "no twin was started" in detail
    assert api.ctx.dry_runs.runs.get("lathe-1") is before  # no twin, no record of a run
    assert real.untouched("lathe-1")
    audit = api.ctx.store.audit_log(limit=20)
    assert any(a["action"] == "dry_run" and a["outcome"] == "refused" for a in audit)


def test_an_alarm_on_the_twin_is_the_rehearsals_result(lab: tuple[Api, RealMachines]) -> None:
    api, real = lab
    entry = queue(api, "lathe-1", LATHE, "shaft-alarm.nc")
    assert api.call("trainer", "POST", f"/api/queue/{entry['id']}/dry-run", json={"speed": 4}).status_code == 200
    wait_for(lambda: status(api, "lathe-1")["lines_acked"] > 3, timeout=60, what="the twin to read blocks")
    twin = api.ctx.dry_runs.runs["lathe-1"].handle
    api.client.portal.call(twin.sim.raise_alarm, 414, "servo alarm: X axis excess error")  # on the server's loop
    final, _ = follow(api, "lathe-1", timeout=60)
    result = final["result"]
    assert result["outcome"] == "failed" and result["simulated_seconds"] is None, result
    codes = {a["code"]: a["message"] for a in result["alarms"]}
    assert "414" in codes and "DncAborted" in codes and "NAK" in codes["DncAborted"], result["alarms"]
    rows = api.call("trainer", "GET", "/api/queue").json()
    rehearsal = next(e for e in rows if e["id"] == entry["id"])["rehearsal"]
    assert rehearsal["outcome"] == "failed" and {a["code"] for a in rehearsal["alarms"]} == set(codes)
    assert real.untouched("lathe-1")


def test_a_dry_run_beside_the_real_machines_job(lab: tuple[Api, RealMachines]) -> None:
    """Twins are separate: the lathe rehearses one program while it really runs another (this test runs last:
    the real lathe gets its own program, and only that)."""
    api, real = lab
    short = "%\nO1003\nG21 G18 G99\nG97 S500 M3\nG0 X42. Z2.\nG1 Z-2. F0.3\nG0 X60. Z5.\nM5\nM30\n%\n"
    job = queue(api, "lathe-1", short, "short.nc")
    rehearse = queue(api, "lathe-1", LATHE, "shaft-beside.nc")
    r = api.call("operator", "POST", f"/api/queue/{job['id']}/start")
    assert r.status_code == 200, r.text
    r = api.call("operator", "POST", f"/api/queue/{rehearse['id']}/dry-run", json={"speed": 16})
    assert r.status_code == 200, r.text
    final, _ = follow(api, "lathe-1")
    assert final["result"]["outcome"] == "completed", final["result"]
    wait_for(lambda: api.ctx.store.queue_entry(job["id"])["state"] == "completed", timeout=90,
             what="the real job to end")
    handle = real.handles["lathe-1"]
    assert b"O1003" in handle.dnc.received and b"O1001" not in handle.dnc.received  # the real one got its own
    assert b"O1001" in api.ctx.dry_runs.runs["lathe-1"].handle.dnc.received and \
        b"O1003" not in api.ctx.dry_runs.runs["lathe-1"].handle.dnc.received  # and the twin its own
    entries = {e["id"]: e for e in api.call("trainer", "GET", "/api/queue?all=true").json()}
    assert entries[rehearse["id"]]["state"] == "queued" and entries[rehearse["id"]]["rehearsal"]["outcome"] \
        == "completed" and entries[job["id"]]["rehearsal"] is None
