"""Register maps without a network: types, word orders, scale/offset, value maps, read planning, profiles."""

from __future__ import annotations

import pytest

from labbridge.config import ModbusConnection, RegisterField, load_profile
from labbridge.drivers.field_map import effective_map
from labbridge.protocols.modbus_registers import decode, encode, plan_reads
from labbridge.errors import ConfigError


def field(**kw: object) -> RegisterField:
    return RegisterField.model_validate({"table": "holding", "address": 0, **kw})


@pytest.mark.parametrize(
    ("kw", "words", "value"),
    [
        ({"type": "uint16"}, [65535], 65535),
        ({"type": "int16"}, [0xFFFE], -2),
        ({"type": "uint32"}, [0x0001, 0x0002], 65538),
        ({"type": "uint32", "word_order": "little"}, [0x0002, 0x0001], 65538),
        ({"type": "int32"}, [0xFFFF, 0xCF2C], -12500),
        ({"type": "int32", "word_order": "little"}, [0xCF2C, 0xFFFF], -12500),
        ({"type": "float32"}, [0x42F0, 0x0000], 120.0),
        ({"type": "float32", "word_order": "little"}, [0x0000, 0x42F0], 120.0),
        ({"type": "bool"}, [7], True),
        ({"type": "int32", "scale": 0.001}, [0xFFFF, 0xCF2C], -12.5),
        ({"type": "uint16", "scale": 0.1, "offset": -40}, [650], 25.0),
        ({"type": "uint16", "values": {0: "Idle", 1: "Run"}}, [1], "Run"),
        ({"type": "uint16", "values": {0: "Idle"}}, [9], 9),
        ({"table": "discrete", "address": 5}, [True], True),
        ({"table": "coil", "type": "uint16"}, [False], False),
    ],
)
def test_decode(kw: dict, words: list, value: object) -> None:
    expected = pytest.approx(value) if isinstance(value, float) else value
    assert decode(field(**kw), words) == expected


@pytest.mark.parametrize(
    ("kw", "value"),
    [
        ({"type": "int32", "scale": 0.001}, -30.0),
        ({"type": "int32", "scale": 0.001, "word_order": "little"}, 12.5),
        ({"type": "uint32"}, 70000),
        ({"type": "float32", "word_order": "little"}, 1800.5),
        ({"type": "int16", "offset": 10}, -5.0),
        ({"type": "uint16", "scale": 0.6}, 1800.0),
        ({"type": "uint16", "values": {0: "Idle", 1: "Run", 3: "Alarm"}}, "Alarm"),
        ({"table": "coil"}, True),
    ],
)
def test_encode_round_trips(kw: dict, value: object) -> None:
    f = field(**kw)
    assert decode(f, encode(f, value)) == value


def test_encode_refuses_a_value_outside_the_value_map() -> None:
    with pytest.raises(ValueError, match="not one of"):
        encode(field(values={0: "Idle"}), "Jog")


def test_reads_merge_only_touching_fields_per_table() -> None:
    fields = {
        "spindle.rpm": field(address=0x2103),
        "spindle.load": field(address=0x2104),
        "alarm": field(address=0x2100),
        "position.machine.X": field(table="input", address=100, type="int32"),
        "position.machine.Z": field(table="input", address=102, type="int32"),
        "door_open": field(table="discrete", address=5),
        "feed_hold": field(table="coil", address=0, write_value=1),
    }
    blocks = {(b.table, b.address, b.count) for b in plan_reads(fields)}
    assert blocks == {("holding", 0x2100, 1), ("holding", 0x2103, 2), ("input", 100, 4), ("discrete", 5, 1)}


def test_profiles_load_and_the_machine_map_overrides_them() -> None:
    gs20 = load_profile("delta-gs20")
    assert gs20["spindle.rpm"].address == 0x2103 and gs20["spindle.rpm"].scale == pytest.approx(0.6)
    assert gs20["alarm"].address == 0x2100
    assert load_profile("h100")["spindle.rpm"].table == "input"
    assert load_profile("huanyang-p2a")["spindle_stop"].write_value == 6
    conn = ModbusConnection(url="tcp://127.0.0.1:1502", profile="delta-gs20",
                            map={"spindle.load": {"table": "holding", "address": 0x2104, "scale": 0.05}})
    merged = effective_map(conn)
    assert merged["spindle.load"].scale == pytest.approx(0.05) and "alarm" in merged


def test_unknown_profile_and_unknown_field_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="profile 'nope' not found; available: .*delta-gs20"):
        effective_map(ModbusConnection(url="tcp://127.0.0.1:1502", profile="nope"))
    with pytest.raises(ConfigError, match="machines.lathe-1.connection.modbus.map: 'spindle.speed' is not"):
        effective_map(ModbusConnection(url="tcp://127.0.0.1:1502", map={"spindle.speed": {"table": "holding",
                                                                                          "address": 1}}), "lathe-1")
