"""``labbridge sim lathe``: prints its endpoints, serves them, stops cleanly on Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from labbridge.config import ModbusConnection, load_config
from labbridge.drivers.sources.modbus import ModbusSource
from labbridge.model import MachineState, Status

ROOT = Path(__file__).resolve().parents[1]


async def test_sim_lathe_serves_modbus_and_a_pty_until_interrupted() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "labbridge.cli.main", "sim", "lathe", "--config", str(ROOT / "config" / "machines.yaml"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        endpoints: dict[str, str] = {}
        while "modbus" not in endpoints:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            assert line, "the simulator exited early"
            parts = line.split()
            if len(parts) == 2 and parts[0] in ("dnc", "modbus"):
                endpoints[parts[0]] = parts[1]
        assert endpoints["dnc"].startswith("/dev/pts/")
        assert endpoints["modbus"].startswith("tcp://127.0.0.1:")
        lathe = load_config(ROOT / "config" / "machines.yaml").machine("lathe-1")
        conn = lathe.connection.modbus.model_copy(update={"url": endpoints["modbus"]})  # type: ignore[union-attr]
        assert isinstance(conn, ModbusConnection)
        state = MachineState("lathe-1")
        source = ModbusSource("lathe-1", conn, state)
        await source.start()
        await source.stop()
        assert source.fault is None and state.state == Status.IDLE
        assert state.position_machine == {"X": 160.0, "Z": 0.0}
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    assert b"Traceback" not in err
