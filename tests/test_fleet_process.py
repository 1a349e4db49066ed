"""``labbridge serve`` with a fleet link as a real process: last will on kill -9, goodbye on a clean stop,
seq across restarts, and a broker that refuses the lab's password (the dashboard works; one log line says why)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fleet_support import Broker, Subscriber, lab_data, password_file
from tests.web_support import ROOT, ServerProcess, admin_first_sign_in

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]
KEEPALIVE = 3


def serve(tmp: Path, data: dict[str, object]) -> ServerProcess:
    """A lab server on ``tmp/data``; a restart on the same data prints a new admin password (--reset-admin)."""
    config = tmp / "machines.yaml"
    config.write_text(yaml.safe_dump(data))
    again = ["--reset-admin"] if (tmp / "data").exists() else []
    return ServerProcess(["serve", "--port", "0", "--config", str(config), "--data-dir", str(tmp / "data"),
                          "--log-level", "info", *again], cwd=ROOT)


def statuses(sub: Subscriber) -> list[dict[str, object]]:
    return [m["body"] for m in sub.on("truck-1/status")]


def test_goodbye_on_a_clean_stop_last_will_on_kill_9_and_seq_across_restarts(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker")
    sub = Subscriber(broker)
    data = lab_data(broker.url, keepalive=KEEPALIVE)
    try:
        lab = serve(tmp_path, data)
        sub.wait(lambda ms: any(m["body"].get("online") is True for m in ms if m["topic"].endswith("/status")),
                 what="the birth")
        assert any("fleet link to mqtt://127.0.0.1" in line for line in lab.lines)
        with httpx.Client(timeout=30) as client:
            client.post(lab.url + "/api/auth/login", json={"username": "nobody", "password": "wrong-password"})
        sub.wait(lambda ms: any(m["body"].get("action") == "login" for m in ms if m["topic"].endswith("/events")),
                 what="an audit event of the first run")
        lab.stop()  # SIGTERM: a clean shutdown says goodbye itself
        sub.wait(lambda ms: [m for m in ms if m["topic"].endswith("/status") and m["body"]["online"] is False],
                 what="online: false on a clean stop")
        assert statuses(sub)[-1]["since"] >= statuses(sub)[-2]["since"]
        assert not [line for line in lab.stderr if "Traceback" in line]

        with httpx.Client(timeout=30) as client:
            lab = serve(tmp_path, data)
            client.post(lab.url + "/api/auth/login", json={"username": "nobody", "password": "wrong-password"})
            sub.wait(lambda ms: len([m for m in ms if m["body"].get("action") == "login"]) >= 2,
                     what="an audit event of the second run")
            sub.wait(lambda ms: len([m for m in ms if m["topic"].endswith("/status") and m["body"]["online"]]) >= 2,
                     what="the second birth")
            births = [m for m in sub.on("truck-1/status") if m["body"]["online"] is True]
            assert len(births) == 2
            os.kill(lab.proc.pid, signal.SIGKILL)
            killed = time.time()
            lab.proc.wait(10)
            will = sub.wait(lambda ms: [m for m in ms if m["topic"].endswith("/status") and m["at"] > killed
                                        and m["body"]["online"] is False], timeout=3 * KEEPALIVE,
                            what="the last will")[0]
            assert will["at"] - killed <= 1.5 * KEEPALIVE, f"last will after {will['at'] - killed:.1f} s"
            assert will["retained"] is False  # delivered live; the broker keeps it too:
            retained = Subscriber(broker, topic="labbridge/v1/truck-1/status")
            try:
                kept = retained.wait(lambda ms: ms, what="the retained status")[0]
                assert kept["retained"] and kept["body"]["online"] is False and kept["body"]["lab"] == "truck-1"
            finally:
                retained.stop()
        seqs = [e["body"]["seq"] for e in sub.on("/events")]
        assert seqs == sorted(set(seqs)) and len(seqs) >= 2, "seq kept increasing across the restart"
    finally:
        sub.stop()
        broker.stop()


def test_a_refused_password_leaves_the_lab_serving_and_logs_one_line(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker", password_file=password_file(tmp_path, {"truck-1": "right"}))
    try:
        data = lab_data(broker.url, username="truck-1", password="wrong-password")
        lab = serve(tmp_path, data)
        try:
            with httpx.Client(base_url=lab.url, timeout=60) as client:  # sign-in hashes at argon2's full cost
                assert client.get("/api/health").json() == {"ok": True}
                token = admin_first_sign_in(client, lab.password)
                link = client.get("/api/fleet/link", headers={"Authorization": f"Bearer {token}"}).json()
                assert link["configured"] and link["broker"] == broker.url
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not [l for l in lab.stderr if "fleet link down" in l]:
                time.sleep(0.1)
            lines = [line for line in lab.stderr if "fleet link down" in line]
            assert lines, "".join(lab.stderr[-20:])
            assert "wrong user name or password" in lines[0] and lines[0].count("\n") == 1
            assert not [line for line in lab.stderr if "Traceback" in line]
        finally:
            lab.stop()
    finally:
        broker.stop()
