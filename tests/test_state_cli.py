"""``labbridge state ID --json`` against the simulators (real Modbus TCP and OPC UA on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path

import pytest
import yaml

from labbridge.config import Machine, load_config
from labbridge.sim.fanuc.launch import start_fanuc_sim

ROOT = Path(__file__).resolve().parents[1]


def lab() -> dict[str, Machine]:
    return load_config(ROOT / "config" / "machines.yaml").machines


def write_config(tmp_path: Path, machines: dict[str, Machine]) -> Path:
    path = tmp_path / "machines.yaml"
    path.write_text(yaml.safe_dump({"machines": {k: m.model_dump(mode="json") for k, m in machines.items()}}))
    return path


async def labbridge(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "labbridge.cli.main", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_state_json_for_the_lathe_prints_the_contract_object(tmp_path: Path) -> None:
    async with await start_fanuc_sim("lathe-1", lab()["lathe-1"]) as sim:
        config = write_config(tmp_path, {"lathe-1": sim.machine})
        code, out, err = await labbridge("state", "lathe-1", "--config", str(config), "--json")
    assert code == 0, err
    assert out.count("\n") == 1, "one object, one line"
    obj = json.loads(out)
    assert obj["machine"] == "lathe-1" and obj["connected"] is True and obj["state"] == "Idle"
    assert obj["position"] == {"machine": {"X": 160.0, "Z": 0.0}, "work": None}  # the lathe's PLC has no work coords
    assert obj["spindle"]["rpm"] == 0.0 and obj["spindle"]["load"] == 0.0
    assert obj["feed"] is None  # not in lathe-1's register map
    assert obj["alarms"] == [] and obj["fault"] is None


@pytest.mark.slow
async def test_state_json_for_the_opcua_mill(tmp_path: Path) -> None:
    async with await start_fanuc_sim("mill-2", lab()["mill-2"]) as sim:
        config = write_config(tmp_path, {"mill-2": sim.machine})
        code, out, err = await labbridge("state", "mill-2", "--config", str(config), "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert obj["connected"] is True and obj["state"] == "Idle"
    assert obj["position"]["machine"] == {"X": 0.0, "Y": 0.0, "Z": 0.0}
    assert obj["spindle"] == {"rpm": 0.0, "load": 0.0, "direction": "off"}
    assert obj["feed"] == 0.0 and obj["overrides"]["feed"] == 100


@pytest.mark.slow
async def test_unreachable_machine_prints_disconnected_and_exits_3(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    machine = lab()["lathe-1"]
    modbus = machine.connection.modbus.model_copy(update={"url": f"tcp://127.0.0.1:{port}", "timeout": 0.3})  # type: ignore[union-attr]
    offline = machine.model_copy(update={"connection": machine.connection.model_copy(update={"modbus": modbus})})
    code, out, err = await labbridge("state", "lathe-1", "--config", str(write_config(tmp_path, {"lathe-1": offline})),
                                     "--json")
    assert code == 3
    obj = json.loads(out)
    assert obj["connected"] is False and obj["state"] == "Disconnected" and "cannot connect" in obj["fault"]
    assert "lathe-1 is not connected" in err and "Traceback" not in err


async def test_unknown_machine_is_a_usage_error(tmp_path: Path) -> None:
    code, out, err = await labbridge("state", "lathe-9", "--config", str(ROOT / "config" / "machines.yaml"), "--json")
    assert code == 2 and "no machine 'lathe-9'" in err and out == ""


async def test_state_json_works_for_grbl_machines_too(tmp_path: Path) -> None:
    from labbridge.sim.grbl.port import start_grbl_sim

    mill = lab()["mill-1"]
    sim = await start_grbl_sim("mill-1", mill)
    try:
        serial = mill.connection.serial.model_copy(update={"port": sim.port})  # type: ignore[union-attr]
        local = mill.model_copy(update={"connection": mill.connection.model_copy(update={"serial": serial})})
        code, out, err = await labbridge("state", "mill-1", "--config", str(write_config(tmp_path, {"mill-1": local})),
                                         "--json")
    finally:
        await sim.close()
    assert code == 0, err
    obj = json.loads(out)
    assert obj["machine"] == "mill-1" and obj["connected"] is True
    assert obj["state"] in ("Idle", "Alarm")  # homing_required machines start locked in Alarm, as GRBL does
    assert set(obj["position"]["machine"]) == {"X", "Y", "Z"}
    assert obj["alarms"] is not None and "spindle" in obj and "feed" in obj


async def test_watch_json_prints_a_line_per_change_until_interrupted(tmp_path: Path) -> None:
    import signal

    async with await start_fanuc_sim("lathe-1", lab()["lathe-1"], time_scale=20) as sim:
        config = write_config(tmp_path, {"lathe-1": sim.machine})
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "labbridge.cli.main", "state", "lathe-1", "--config", str(config), "--watch", "--json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        assert first["state"] == "Idle"
        sim.sim.door_open = True  # the PLC's door switch: the next poll changes the state
        second = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        assert second["pins"] == ["D"]
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0 and b"Traceback" not in err
