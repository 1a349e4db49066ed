"""The lab config: the shipped file loads, and every mistake is named by file, machine and field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from labbridge.config import CONFIG_ENV, load_config, resolve_config_path
from labbridge.errors import ConfigError

from .conftest import CONFIG_PATH


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "machines.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_config_has_the_lab_machines(lab):
    assert {"mill-1", "lathe-1", "mill-2"} <= set(lab.machines)
    assert lab.machines["mill-1"].controller == "grbl"
    assert lab.machines["mill-1"].connection.serial is not None
    assert lab.machines["lathe-1"].controller == "fanuc-lathe"
    assert lab.machines["lathe-1"].connection.dnc is not None
    assert lab.machines["lathe-1"].connection.modbus is not None
    assert lab.machines["mill-2"].connection.opcua is not None
    assert lab.machines["lathe-1"].axes == ("X", "Z")


def test_envelope_min_above_max_names_file_machine_and_field(tmp_path, raw_config):
    data = copy.deepcopy(raw_config)
    data["machines"]["mill-1"]["envelope"]["X"] = [10.0, 0.0]
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: machines.mill-1.envelope.X: min 10.0 is above max 0.0"


def test_unknown_key_is_rejected(tmp_path, raw_config):
    data = copy.deepcopy(raw_config)
    data["machines"]["mill-2"]["max_fead"] = 100
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, data))
    assert "machines.mill-2.max_fead: unknown key" in str(info.value)


def test_missing_required_field(tmp_path, raw_config):
    data = copy.deepcopy(raw_config)
    del data["machines"]["lathe-1"]["spindle"]
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, data))
    assert "machines.lathe-1.spindle: required field is missing" in str(info.value)


def test_wrong_type_names_the_field(tmp_path, raw_config):
    data = copy.deepcopy(raw_config)
    data["machines"]["mill-1"]["max_feed"] = "fast"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, data))
    assert "machines.mill-1.max_feed:" in str(info.value)


def test_lathe_must_have_x_and_z_only(tmp_path, raw_config):
    data = copy.deepcopy(raw_config)
    data["machines"]["lathe-1"]["envelope"]["Y"] = [0, 10]
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, data))
    assert "machines.lathe-1" in str(info.value) and "X and Z" in str(info.value)


def test_bad_yaml_names_the_line(tmp_path):
    path = tmp_path / "machines.yaml"
    path.write_text("machines:\n  mill-1: {name: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:") and "not valid YAML" in str(info.value)


def test_missing_file_says_how_to_point_at_one(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert "not found" in str(info.value) and "--config" in str(info.value)


def test_unknown_work_offset_code(tmp_path, raw_config):
    data = copy.deepcopy(raw_config)
    data["machines"]["mill-1"]["work_offsets"]["G60"] = {"X": 0}
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, data))
    assert "machines.mill-1.work_offsets" in str(info.value) and "G60" in str(info.value)


def test_config_path_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    assert resolve_config_path(None) == Path("config/machines.yaml")
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "env.yaml"))
    assert resolve_config_path(None) == tmp_path / "env.yaml"
    assert resolve_config_path(CONFIG_PATH) == CONFIG_PATH


def test_home_and_offsets_default_to_zero(lab):
    mill2 = lab.machines["mill-2"]
    assert mill2.offset("G57") == (0.0, 0.0, 0.0)
    assert lab.machines["mill-1"].home_position() == (0.0, 0.0, 0.0)
