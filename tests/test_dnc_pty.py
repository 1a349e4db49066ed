"""DNC over a real pseudo-terminal: labbridge's sender/receiver against the simulated control or a raw pty."""

from __future__ import annotations

import asyncio
import os
import sys
import tty
from pathlib import Path

import pytest

from labbridge.config import Machine, load_config
from labbridge.streaming.dnc_transfer import DncAborted, DncLinkLost, DncTimeout, receive_dnc, stream_dnc
from labbridge.sim.fanuc.launch import start_fanuc_sim
from labbridge.errors import GateRejected
from labbridge.model import Status
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = ["O0042 (DNC TEST)", "G21 G18 G40 G99", "T0101", "G97 S600 M3", "G0 X60 Z5"] + [
    f"G1 X{58 - i} Z-{i + 1} F0.2" for i in range(12)
] + ["G0 X120 Z50", "M5", "M30"]


@pytest.fixture
def lathe() -> Machine:
    return load_config(ROOT / "config" / "machines.yaml").machine("lathe-1")


def with_dnc(machine: Machine, **changes: object) -> Machine:
    dnc = machine.connection.dnc.model_copy(update=changes)  # type: ignore[union-attr]
    return machine.model_copy(update={"connection": machine.connection.model_copy(update={"dnc": dnc})})


def write_program(tmp_path: Path, blocks: list[str]) -> Path:
    path = tmp_path / "part.nc"
    path.write_text("%\n" + "\n".join(blocks) + "\n%\n", encoding="ascii")
    return path


async def test_stream_obeys_dc3_and_the_control_runs_every_block(lathe: Machine, tmp_path: Path) -> None:
    async with await start_fanuc_sim("lathe-1", lathe, time_scale=40, buffer_bytes=40, modbus=False) as sim:
        machine = with_dnc(sim.machine, baudrate=38400)
        progress = []
        result = await stream_dnc("lathe-1", machine, write_program(tmp_path, BLOCKS), on_progress=progress.append)
        assert result.blocks_sent == len(BLOCKS)
        assert result.pauses >= 1, "the 40-byte buffer must have made the control send DC3"
        assert progress[-1].lines_acked == len(BLOCKS) and progress[-1].last_acked_line == len(BLOCKS) + 1
        await wait_for(lambda: sim.sim.blocks_done == len(BLOCKS) and sim.sim.status == Status.IDLE)
        assert sim.sim.snapshot()["position.machine.X"] == pytest.approx(120.0)
        assert sim.sim.program_name == "O0042"


async def test_alarm_on_the_control_sends_nak_and_the_error_names_the_last_block(
    lathe: Machine, tmp_path: Path
) -> None:
    async with await start_fanuc_sim("lathe-1", lathe, time_scale=5, buffer_bytes=30, modbus=False) as sim:
        machine = with_dnc(sim.machine, baudrate=38400)
        task = asyncio.create_task(stream_dnc("lathe-1", machine, write_program(tmp_path, BLOCKS)))
        await wait_for(lambda: sim.sim.blocks_done >= 6)
        sim.sim.raise_alarm(1000, "overtravel +X (limit switch)")  # as a real control would, mid-program
        with pytest.raises(DncAborted, match=r"NAK.*last block sent: #\d+") as info:
            await task
        assert sim.sim.status == Status.ALARM
        assert "alarm" in str(info.value)


async def test_a_program_the_gate_rejects_never_reaches_the_control(lathe: Machine, tmp_path: Path) -> None:
    blocks = BLOCKS[:5] + ["#1=5"] + BLOCKS[5:]  # macro variables: not simulated, so not allowed through
    async with await start_fanuc_sim("lathe-1", lathe, time_scale=40, modbus=False) as sim:
        with pytest.raises(GateRejected, match="rejected by the safety gate.*nothing was sent") as info:
            await stream_dnc("lathe-1", with_dnc(sim.machine, baudrate=38400), write_program(tmp_path, blocks))
        assert info.value.report.errors[0].line == 7  # after the % and five blocks
        await asyncio.sleep(0.3)
        assert sim.sim.blocks_done == 0 and sim.sim.alarm == 0


async def test_no_dc1_ends_in_a_clear_timeout(lathe: Machine, tmp_path: Path) -> None:
    async with await start_fanuc_sim("lathe-1", lathe, send_dc1=False, modbus=False) as sim:
        machine = with_dnc(sim.machine, dc1_timeout=0.5)
        with pytest.raises(DncTimeout, match=r"no DC1 from the control within 0.5 s.*no block sent yet"):
            await stream_dnc("lathe-1", machine, write_program(tmp_path, BLOCKS))


def raw_pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


async def read_until(master: int, count: int, timeout: float = 10.0) -> bytes:
    data = bytearray()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(data) < count:
        assert loop.time() < deadline, f"only {len(data)} bytes arrived"
        try:
            data += os.read(master, 4096)
        except BlockingIOError:
            await asyncio.sleep(0.01)
    return bytes(data)


async def test_dc3_never_released_ends_in_a_clear_timeout(lathe: Machine, tmp_path: Path) -> None:
    master, slave, path = raw_pty()
    try:
        machine = with_dnc(lathe, port=path, stall_timeout=0.5, chunk_size=8, baudrate=9600)
        long_program = write_program(tmp_path, [f"G1 X{i % 50 + 1} Z-1 F0.1" for i in range(400)])
        task = asyncio.create_task(stream_dnc("lathe-1", machine, long_program))
        await asyncio.sleep(0)  # let it open the port
        while not task.done():  # repeat DC1 until the sender is listening, then pause it for good
            os.write(master, b"\x11")
            try:
                if os.read(master, 4096):
                    break
            except BlockingIOError:
                await asyncio.sleep(0.02)
        os.write(master, b"\x13")
        with pytest.raises(DncTimeout, match=r"paused the transfer \(DC3\) and did not resume within 0.5 s"):
            await asyncio.wait_for(task, 20)
    finally:
        os.close(master)
        os.close(slave)


async def test_garbage_on_the_line_is_ignored(lathe: Machine, tmp_path: Path) -> None:
    async with await start_fanuc_sim("lathe-1", lathe, time_scale=40, modbus=False) as sim:
        sim.dnc.inject(b"\xff\xfe GARBAGE \x7f\x00")
        machine = with_dnc(sim.machine, baudrate=38400)
        task = asyncio.create_task(stream_dnc("lathe-1", machine, write_program(tmp_path, BLOCKS)))
        await wait_for(lambda: len(sim.dnc.received) > 0)
        sim.dnc.inject(b"noise!")
        result = await asyncio.wait_for(task, 30)
        assert result.blocks_sent == len(BLOCKS)
        await wait_for(lambda: sim.sim.blocks_done == len(BLOCKS))


async def test_tv_check_end_to_end(lathe: Machine, tmp_path: Path) -> None:
    odd = ["G0 X50 Z5", "G0 X51 Z5", "M30"]  # "G0 X50 Z5"+LF is 10 characters, fine; X51 too; M30+LF is 4
    odd[1] = "G0 X5 Z5"  # 9 characters: odd with its LF? 8+1 = 9 -> odd
    async with await start_fanuc_sim("lathe-1", lathe, time_scale=40, tv_check=True, modbus=False) as sim:
        padded = with_dnc(sim.machine, tv_check=True, baudrate=38400)
        result = await stream_dnc("lathe-1", padded, write_program(tmp_path, odd))
        assert result.blocks_sent == 3
        await wait_for(lambda: sim.sim.blocks_done == 3)
        assert sim.sim.alarm == 0
        sim.sim.reset()
        unpadded = with_dnc(sim.machine, tv_check=False, baudrate=38400)
        with pytest.raises(DncAborted, match="NAK"):
            await stream_dnc("lathe-1", unpadded, write_program(tmp_path, odd))
        assert "TV ERROR" in sim.sim.alarm_message


@pytest.mark.parametrize("end_of_block", ["LF", "CRLF"])
async def test_receive_saves_a_punched_program(lathe: Machine, tmp_path: Path, end_of_block: str) -> None:
    async with await start_fanuc_sim("lathe-1", lathe, send_dc1=False, modbus=False) as sim:
        ready = asyncio.Event()
        out = tmp_path / "backup.nc"
        task = asyncio.create_task(
            receive_dnc("lathe-1", sim.machine, out, start_timeout=10, idle_timeout=5, on_ready=ready.set)
        )
        await asyncio.wait_for(ready.wait(), 10)
        sim.dnc.punch("O0100 (BACKUP)\nG0 X10 Z2\nM30\n", end_of_block=end_of_block)
        received = await asyncio.wait_for(task, 20)
        assert received.blocks == 3
        assert out.read_text() == "%\nO0100 (BACKUP)\nG0 X10 Z2\nM30\n%\n"


async def test_receive_times_out_when_nothing_comes(lathe: Machine, tmp_path: Path) -> None:
    async with await start_fanuc_sim("lathe-1", lathe, send_dc1=False, modbus=False) as sim:
        with pytest.raises(DncTimeout, match="nothing received"):
            await receive_dnc("lathe-1", sim.machine, tmp_path / "x.nc", start_timeout=0.3)
        assert not (tmp_path / "x.nc").exists()


async def test_missing_port_is_a_clear_error(lathe: Machine, tmp_path: Path) -> None:
    machine = with_dnc(lathe, port=str(tmp_path / "no-such-tty"))
    with pytest.raises(DncLinkLost, match="cannot open DNC port"):
        await stream_dnc("lathe-1", machine, write_program(tmp_path, BLOCKS))


async def test_dnc_receive_cli(lathe: Machine, tmp_path: Path) -> None:
    async with await start_fanuc_sim("lathe-1", lathe, send_dc1=False, modbus=False) as sim:
        config = tmp_path / "machines.yaml"
        import yaml

        config.write_text(yaml.safe_dump({"machines": {"lathe-1": sim.machine.model_dump(mode="json")}}))
        out = tmp_path / "backup.nc"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "labbridge.cli.main", "dnc-receive", "--machine", "lathe-1",
            "--config", str(config), "--timeout", "30", str(out),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        # The port is opened (and its input flushed) some time after start: punch until the file appears.
        while proc.returncode is None:
            sim.dnc.punch("O0200\nG0 X1 Z1\nM30\n")
            try:
                await asyncio.wait_for(proc.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
        stdout, stderr = await proc.communicate()
        assert proc.returncode == 0, stderr.decode()
        assert "saved 3 blocks" in stdout.decode()
        assert out.read_text() == "%\nO0200\nG0 X1 Z1\nM30\n%\n"


async def test_port_vanishing_mid_transfer_is_a_lost_link(lathe: Machine, tmp_path: Path) -> None:
    master, slave, path = raw_pty()
    machine = with_dnc(lathe, port=path, chunk_size=8, baudrate=9600)
    long_program = write_program(tmp_path, [f"G1 X{i % 50 + 1} Z-1 F0.1" for i in range(400)])
    task = asyncio.create_task(stream_dnc("lathe-1", machine, long_program))
    try:
        received = bytearray()
        while not task.done() and len(received) < 100:  # let a few blocks go out
            os.write(master, b"\x11")
            try:
                received += os.read(master, 4096)
            except BlockingIOError:
                await asyncio.sleep(0.02)
    finally:
        os.close(master)  # the adapter is unplugged
        os.close(slave)
    with pytest.raises(DncLinkLost, match=r"DNC port .* failed.*last block sent: #\d+"):
        await asyncio.wait_for(task, 20)


async def test_dnc_runner_records_a_cancelled_tape_and_a_rejected_program(lathe: Machine, tmp_path: Path) -> None:
    """The DNC runner writes the same record and state words as the GRBL runner: cancelled, failed."""
    from labbridge.errors import InterlockError
    from labbridge.streaming.dnc_runner import DncRunner
    from labbridge.streaming.job import JobState
    from labbridge.streaming.records import JobStore

    long_program = write_program(tmp_path, [f"G1 X{i % 50 + 1} Z-1 F0.1" for i in range(400)])
    async with await start_fanuc_sim("lathe-1", lathe, time_scale=5, buffer_bytes=40, modbus=False) as sim:
        with JobStore(tmp_path / "data") as store:
            machine = with_dnc(sim.machine, baudrate=38400)
            runner = DncRunner(None, "lathe-1", machine, store, user="ana")
            job = await runner.start(long_program)
            with pytest.raises(InterlockError, match="busy"):
                await DncRunner(None, "lathe-1", machine, store).start(long_program)
            await wait_for(lambda: job.lines_acked >= 3)
            ended = await runner.cancel()
            assert ended is job and job.state == JobState.CANCELLED and "reset the control" in job.message
            assert store.get(job.id) == job and store.events(job.id)[-1]["event"] == "job_cancelled"
            blocks_then = sim.sim.blocks_done
            await asyncio.sleep(0.5)
            assert job.lines_acked < 400 and sim.sim.blocks_done <= blocks_then + 5  # the tape stopped (the control empties its 40-byte buffer)

            rejected = write_program(tmp_path, BLOCKS[:5] + ["#1=5"] + BLOCKS[5:])
            again = DncRunner(None, "lathe-1", machine, store, user="ana")
            with pytest.raises(GateRejected):
                await again.start(rejected)
            failed = store.get(again.job.id)
            assert failed.state == JobState.FAILED and failed.protocol == "dnc" and failed.lines_sent == 0
            assert "rejected by the safety gate" in failed.message
