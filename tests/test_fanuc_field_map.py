"""The shared value → MachineState mapping and OPC UA node-id parsing (no network)."""

from __future__ import annotations

import pytest
from asyncua import ua

from labbridge.drivers import field_map
from labbridge.drivers.sources.opcua import parse_node, to_node_id
from labbridge.errors import ConfigError
from labbridge.model import MachineState, Status


def test_one_update_per_batch_with_merged_positions() -> None:
    state = MachineState("lathe-1")
    calls = []
    state.subscribe(lambda s, names: calls.append(names))
    field_map.apply(state, {"position.machine.X": 12.5, "position.machine.Z": -30, "spindle.rpm": 1800,
                            "state": "STRT", "overrides.feed": 99.6, "door_open": True}, "modbus")
    assert len(calls) == 1
    assert state.position_machine == {"X": 12.5, "Z": -30.0}
    assert state.state == Status.RUN and state.override_feed == 100 and state.pins == frozenset({"D"})
    field_map.apply(state, {"position.machine.Z": -31}, "modbus")
    assert state.position_machine == {"X": 12.5, "Z": -31.0}, "axes not in this batch are kept"


def test_alarms_are_per_source_and_clear_with_zero() -> None:
    state = MachineState("mill-2")
    field_map.apply(state, {"alarm": 1042}, "modbus")
    field_map.apply(state, {"alarm": "10 block 3: bad word"}, "opcua")
    assert {(a.code, a.source) for a in state.alarms} == {("1042", "modbus"), ("10", "opcua")}
    first = state.alarms
    field_map.apply(state, {"alarm": 1042}, "modbus")
    assert state.alarms == first, "a repeated alarm keeps its time"
    field_map.apply(state, {"alarm": 0}, "modbus")
    assert [a.source for a in state.alarms] == ["opcua"]
    assert state.alarms[0].message == "block 3: bad word"


@pytest.mark.parametrize(("raw", "status"), [("Idle", Status.IDLE), ("run", Status.RUN), ("FEED HOLD", Status.HOLD),
                                             ("ALM", Status.ALARM), ("weird", Status.UNKNOWN), (3, Status.UNKNOWN)])
def test_status_words(raw: object, status: Status) -> None:
    assert field_map.to_status(raw) == status


def test_spindle_direction_from_words_numbers_and_rotation() -> None:
    state = MachineState("x")
    field_map.apply(state, {"spindle.direction": "M4"}, "s")
    assert state.spindle_direction == "ccw"
    field_map.apply(state, {"spindle.direction": -1}, "s")
    assert state.spindle_direction == "ccw"
    field_map.apply(state, {"spindle.rotating": False}, "s")
    assert state.spindle_direction == "off"


def test_unknown_paths_are_rejected_with_the_known_list() -> None:
    with pytest.raises(ValueError, match="spindle.rpm"):
        field_map.check_path("spindle.speed")
    field_map.check_path("feed_hold", allow_actions=True)
    with pytest.raises(ValueError):
        field_map.check_path("feed_hold")


def test_node_ids_by_namespace_uri_never_by_index() -> None:
    with pytest.raises(ConfigError, match="name the namespace by URI"):
        parse_node("ns=2;s=Spindle.Speed")
    ref = parse_node("nsu=urn:plant:cnc;s=Spindle.Speed")
    assert to_node_id(ref, ["http://opcfoundation.org/UA/", "urn:other", "urn:plant:cnc"]) == ua.NodeId(
        "Spindle.Speed", 2)
    assert to_node_id(parse_node("nsu=urn:plant:cnc;i=42"), ["x", "urn:plant:cnc"]) == ua.NodeId(42, 1)
    with pytest.raises(LookupError, match="urn:missing"):
        to_node_id(parse_node("nsu=urn:missing;i=1"), ["x"])
