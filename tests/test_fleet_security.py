"""Fleet security with a real mosquitto: the documented ACL and password file, and TLS with a local CA."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from labbridge.fleet import topics
from tests.fleet_support import Broker, Subscriber, lab_app, lab_data, make_ca, password_file
from tests.web_support import ROOT, wait_for

pytestmark = pytest.mark.timeout(180)
ACL = ROOT / "config" / "fleet" / "mosquitto.acl"
USERS = {"truck-1": "truck-1-secret", "truck-2": "truck-2-secret", "hq": "hq-secret"}


def pub(broker: Broker, user: str, topic: str, body: object) -> None:
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", "mqttv5", "-q", "1",
                    "-u", user, "-P", USERS[user], "-t", topic, "-m", json.dumps(body)], capture_output=True, timeout=30)


def test_the_documented_acl_keeps_each_lab_in_its_own_topics(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker", password_file=password_file(tmp_path, USERS), acl_file=ACL)
    hq = Subscriber(broker, user="hq", password=USERS["hq"])
    other_lab = Subscriber(broker, user="truck-2", password=USERS["truck-2"])
    try:
        data = lab_data(broker.url, username="truck-1", password=USERS["truck-1"])
        with lab_app(tmp_path, data) as (_api, service):
            wait_for(lambda: service.link_state()["state"] == "connected", what="truck-1 to connect")
            hq.wait(lambda ms: any(m["topic"].endswith("truck-1/machines/lathe-1/state") for m in ms),
                    what="headquarters to read truck-1")
            out = subprocess.run(
                ["mosquitto_rr", "-h", "127.0.0.1", "-p", str(broker.port), "-u", "hq", "-P", USERS["hq"],
                 "-t", topics.request_topic("truck-1", "lathe-1"), "-e", topics.reply_topic("truck-1", "hq"),
                 "-W", "30", "-m", json.dumps({"id": "a1", "kind": "jobs"})], capture_output=True, text=True, timeout=40)
            assert json.loads(out.stdout) == {"id": "a1", "ok": True, "result": []}, out.stderr

            pub(broker, "truck-1", topics.status_topic("truck-2"), {"online": True, "lab": "truck-2"})
            pub(broker, "truck-1", topics.request_topic("truck-1", "mill-1"), {"id": "self", "kind": "jobs"})
            pub(broker, "hq", topics.state_topic("truck-1", "mill-1"), {"machine": "mill-1", "forged": True})
            pub(broker, "hq", topics.events_topic("truck-1"), {"seq": 1, "time": 1.0, "kind": "forged"})
            pub(broker, "truck-2", topics.request_topic("truck-1", "mill-1"), {"id": "x", "kind": "jobs"})
            pub(broker, "truck-1", "labbridge/v1/truck-1/status", {"online": True, "lab": "truck-1", "probe": 1})
            hq.wait(lambda ms: any(isinstance(m["body"], dict) and m["body"].get("probe") == 1 for m in ms),
                    what="the allowed publish (sent after the forbidden ones)")
            seen = [(m["topic"], m["body"]) for m in hq.messages]
            assert not [t for t, _ in seen if "/truck-2/" in t], "truck-1 wrote under truck-2"
            assert not [b for _, b in seen if isinstance(b, dict) and ("forged" in b or b.get("kind") == "forged")]
            assert not [b for t, b in seen if t.endswith("/request") and b.get("id") in ("self", "x")]
            assert not other_lab.messages, "truck-2 reads nothing of truck-1"
    finally:
        hq.stop()
        other_lab.stop()
        broker.stop()


def test_tls_with_a_locally_generated_ca(tmp_path: Path) -> None:
    pki = make_ca(tmp_path / "pki")
    broker = Broker(tmp_path / "broker", tls=pki)
    sub = Subscriber(broker, extra=["--cafile", str(pki["ca"])])
    try:
        data = lab_data(f"mqtts://127.0.0.1:{broker.port}", ca_file=str(pki["ca"]))
        with lab_app(tmp_path, data, with_users=False) as (_api, service):
            wait_for(lambda: service.link_state()["state"] == "connected", what="the TLS link")
            sub.wait(lambda ms: any(m["topic"].endswith("/status") and m["body"]["online"] for m in ms),
                     what="the birth over TLS")
        other = make_ca(tmp_path / "other-pki")  # a CA that did not sign the broker's certificate
        data = lab_data(f"mqtts://127.0.0.1:{broker.port}", ca_file=str(other["ca"]))
        with lab_app(tmp_path / "second", data) as (api, service):
            wait_for(lambda: service.link_state()["last_error"], what="the TLS failure")
            error = service.link_state()["last_error"]
            assert error.startswith("TLS with the broker at 127.0.0.1") and "certificate" in error, error
            assert service.link_state()["state"] != "connected"
            assert api.call("viewer", "GET", "/api/machines").status_code == 200
        data = lab_data(f"mqtts://127.0.0.1:{broker.port}", ca_file=str(tmp_path / "missing.pem"))
        with lab_app(tmp_path / "third", data, with_users=False) as (_api, service):
            wait_for(lambda: service.link_state()["last_error"], what="the missing CA file")
            assert "fleet.ca_file: cannot load" in service.link_state()["last_error"]
    finally:
        sub.stop()
        broker.stop()
