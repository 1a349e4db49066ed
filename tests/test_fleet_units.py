"""The fleet link's parts without a broker: config keys, the outbox's seq and gap, topics, refusals, import rules."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import yaml

from labbridge.config import load_hq_config, parse_config
from labbridge.errors import ConfigError
from labbridge.fleet import topics
from labbridge.fleet.approvals import ApprovalError, validate_change
from labbridge.fleet.outbox import Outbox
from labbridge.fleet.requests import READ_KINDS, refusal
from tests.conftest import CONFIG_PATH, ROOT


def config_with(**sections: object) -> dict[str, object]:
    data = yaml.safe_load(CONFIG_PATH.read_text())
    data.update(sections)
    return data


# config ------------------------------------------------------------------------------
def test_lab_and_fleet_keys_as_the_issue_writes_them() -> None:
    cfg = parse_config(config_with(
        lab={"id": "truck-1", "name": "InfoMobil truck 1"},
        fleet={"broker": "mqtts://hq.example.org:8883", "username": "truck-1", "password_file": "fleet.pw",
               "ca_file": "ca.pem", "keepalive": 30}), "t.yaml")
    assert cfg.lab is not None and cfg.lab.id == "truck-1" and cfg.lab.name == "InfoMobil truck 1"
    assert cfg.fleet is not None and cfg.fleet.broker == "mqtts://hq.example.org:8883"
    assert cfg.fleet.keepalive == 30 and cfg.fleet.state_rate == 2.0 and cfg.fleet.max_stored_events == 100_000


def test_without_fleet_nothing_changes() -> None:
    cfg = parse_config(config_with(), "t.yaml")
    assert cfg.fleet is None and cfg.lab is None


@pytest.mark.parametrize(("sections", "expected"), [
    ({"lab": {"id": "Truck 1"}}, "t.yaml: lab.id: 'Truck 1' is not a lab id"),
    ({"lab": {"id": "t"}, "fleet": {"broker": "http://hq:80"}}, "t.yaml: fleet.broker: 'http://hq:80' is not a broker URL"),
    ({"fleet": {"broker": "mqtt://hq:1883"}}, "t.yaml: fleet: the fleet link needs the lab's identity too"),
    ({"lab": {"id": "t"}, "fleet": {"broker": "mqtt://hq", "password": "a", "password_file": "b"}},
     "t.yaml: fleet.password: give either password or password_file"),
    ({"lab": {"id": "t"}, "fleet": {"broker": "mqtt://hq", "keep_alive": 3}}, "t.yaml: fleet.keep_alive: unknown key"),
])
def test_config_errors_name_the_field(sections: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(config_with(**sections), "t.yaml")
    assert str(err.value).startswith(expected), str(err.value)


def test_headquarters_config_needs_only_fleet(tmp_path: Path) -> None:
    path = tmp_path / "hq.yaml"
    path.write_text("fleet: {broker: 'mqtt://127.0.0.1:1883', username: hq}\nmachines: {}\n")
    assert load_hq_config(path).fleet.username == "hq"
    path.write_text("machines: {}\n")
    with pytest.raises(ConfigError, match="headquarters needs a 'fleet:' section"):
        load_hq_config(path)


# outbox ------------------------------------------------------------------------------
def test_seq_strictly_increases_and_survives_a_restart(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "lab.sqlite")
    first = [box.append("audit", "mill-1", n=i) for i in range(5)]
    box.acknowledged(first[-1])  # all sent: the table is empty now
    box.close()
    box = Outbox(tmp_path / "lab.sqlite")
    later = [box.append("audit", None, n=i) for i in range(3)]
    assert first == sorted(set(first)) and later == sorted(set(later)) and later[0] > first[-1]
    events = box.oldest()
    assert [e.seq for e in events] == later
    assert events[0].payload == {"seq": later[0], "time": events[0].payload["time"], "machine": None, "kind": "audit", "n": 0}


def test_a_wiped_data_folder_still_continues_above_earlier_numbers(tmp_path: Path) -> None:
    old = Outbox(tmp_path / "a.sqlite").append("audit")
    assert Outbox(tmp_path / "b.sqlite").append("audit") > old  # seeded with the clock in milliseconds


def test_full_outbox_drops_the_oldest_into_one_gap_event(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "lab.sqlite", max_events=10)
    seqs = [box.append("audit", None, n=i) for i in range(25)]
    events = box.oldest(100)
    assert len(box) == len(events) <= 10
    gap = events[0].payload
    assert gap["kind"] == "gap" and gap["from_seq"] == seqs[0]
    kept = [e.payload["n"] for e in events[1:]]
    assert kept == list(range(25 - len(kept), 25)), "the newest events are kept, in order"
    assert gap["dropped"] == 25 - len(kept) and gap["to_seq"] == gap["seq"] == seqs[gap["dropped"] - 1]
    assert [e.seq for e in events] == sorted(e.seq for e in events), "seq still increases in publishing order"
    assert box.dropped_total == gap["dropped"]


def test_events_being_sent_are_never_dropped_under_the_sender(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "lab.sqlite", max_events=10)
    for i in range(10):
        box.append("audit", None, n=i)
    inflight = box.oldest(4)
    for i in range(10, 20):
        box.append("audit", None, n=i)
    remaining = {e.seq for e in box.oldest(100)}
    assert {e.seq for e in inflight} <= remaining
    box.acknowledged(inflight[-1].seq)
    assert not {e.seq for e in inflight} & {e.seq for e in box.oldest(100)}


def test_released_rows_are_sent_again(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "lab.sqlite")
    box.append("audit")
    first = box.oldest()
    box.released()  # the connection dropped before the acknowledgement
    assert [e.seq for e in box.oldest()] == [e.seq for e in first]


# topics and requests ---------------------------------------------------------------
def test_topics_round_trip() -> None:
    assert topics.parse_topic(topics.state_topic("truck-1", "mill-1")) == topics.Topic("state", "truck-1", "mill-1")
    assert topics.parse_topic(topics.reply_topic("truck-1", "hq")) == topics.Topic("reply", "truck-1", client="hq")
    assert topics.parse_topic("labbridge/v1/truck-1/machines/mill-1/state/extra") is None
    assert topics.parse_topic("other/v1/truck-1/status") is None


@pytest.mark.parametrize(("payload", "message"), [
    (b"[1, 2]", "not a JSON object"),
    (b"{\"online\": NaN}", "NaN is not a JSON number"),
    (b"\xff\xfe", "not UTF-8 JSON"),
    (b"{" * 10, "not JSON"),
    (b" " * (topics.MAX_PAYLOAD + 1), "over the"),
])
def test_untrusted_payloads_are_refused_with_a_reason(payload: bytes, message: str) -> None:
    with pytest.raises(topics.PayloadError, match=message):
        topics.decode_object(payload)


def test_deeply_nested_json_is_a_payload_error() -> None:
    with pytest.raises(topics.PayloadError):
        topics.decode_object(b"[" * 100_000 + b"]" * 100_000)


def test_fields_are_validated() -> None:
    with pytest.raises(topics.PayloadError, match="seq"):
        topics.validate(topics.Event, {"seq": -1, "time": 1.0, "kind": "audit"})
    with pytest.raises(topics.PayloadError, match="online"):
        topics.validate(topics.Status, {"lab": "t"})


@pytest.mark.parametrize("kind", ["home", "jog", "hold", "resume", "cancel", "unlock", "reset", "override", "start"])
def test_anything_that_acts_on_a_machine_is_refused(kind: str) -> None:
    reason = refusal(kind)
    assert reason is not None and "never" in reason and "at the machine" in reason


@pytest.mark.parametrize("kind", ["settings-write", "write-setting", "set_setting", "settings.write"])
def test_writing_a_setting_is_refused_and_points_to_an_approval(kind: str) -> None:
    reason = refusal(kind)
    assert reason is not None and "settings-change" in reason


def test_read_kinds_are_served_and_unknown_ones_refused() -> None:
    assert all(refusal(k) is None for k in READ_KINDS + ("settings-change",))
    assert "unknown request kind" in str(refusal("format-disk"))


@pytest.mark.parametrize(("key", "value"), [("$110", "1500\n$H"), ("$110", "1 2"), ("$1;0", "5"), ("", "1"), ("$110", "")])
def test_a_settings_change_carries_exactly_one_token(key: str, value: str) -> None:
    with pytest.raises(ApprovalError):
        validate_change(key, value)
    assert validate_change("$110", "1500.5") == ("$110", "1500.5")


# import rules --------------------------------------------------------------------------
def test_nothing_below_the_server_imports_the_fleet_link() -> None:
    offenders = []
    for room in ("protocols", "transports", "drivers", "streaming", "safety", "sim", "server"):
        for path in (ROOT / "labbridge" / room).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith("labbridge.fleet")]
    assert offenders == []


def test_the_fleet_package_says_what_it_holds() -> None:
    import labbridge.fleet

    doc = labbridge.fleet.__doc__ or ""
    assert "May import" in doc and "nothing" in doc
    assert json.loads(topics.dumps({"a": 1})) == {"a": 1}
