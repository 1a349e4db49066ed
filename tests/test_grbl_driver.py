"""The GRBL driver against the simulator over a real pty: connect, settings check, polling, commands, lost port."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from labbridge.config import load_config
from labbridge.drivers.base import Driver
from labbridge.drivers.factory import create_driver
from labbridge.drivers.grbl import DriverBusy, GrblCommandError, GrblDriver
from labbridge.protocols.grbl import Error, Ok, Status
from labbridge.sim.grbl.port import start_grbl_sim
from labbridge.errors import ConnectionLost, LabbridgeError
from labbridge.model import Status as S

CONFIG = Path(__file__).resolve().parents[1] / "config" / "machines.yaml"


def mill():
    return load_config(CONFIG).machines["mill-1"]


async def until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def sim():
    handle = await start_grbl_sim("mill-1", mill(), time_scale=20.0)
    yield handle
    await handle.close()


@pytest.fixture
async def driver(sim):
    drv = GrblDriver("mill-1", mill(), port=sim.port, poll_hz=10, banner_timeout=2.0)
    await drv.connect()
    yield drv
    await drv.close()


async def test_connect_sequence_reads_identity_settings_and_offsets(driver: GrblDriver) -> None:
    assert isinstance(driver, Driver)
    st = driver.state
    assert st.connected and st.firmware == "Grbl 1.1h (build 20190830)"
    assert driver.version is not None and driver.version.version == "1.1h.20190830"
    assert driver.options is not None and driver.options.planner_blocks == 15
    assert driver.rx_buffer == 128
    assert driver.settings[130] == 290.0 and driver.settings[22] == 1.0
    assert driver.parameters["G54"] == (-240.0, -150.0, -48.0)
    assert driver.work_offsets["G55"] == (-140.0, -150.0, -48.0)
    assert driver.mismatches == []  # the simulator was set up from the same config
    # homing is enabled: GRBL boots locked, so the machine is known not to be homed
    assert st.state == S.ALARM and st.homed is False
    assert st.position_machine == {"X": 0.0, "Y": 0.0, "Z": 0.0}
    assert st.work_offset == {"X": -240.0, "Y": -150.0, "Z": -48.0}


async def test_factory_settings_are_reported_as_mismatches() -> None:
    handle = await start_grbl_sim("mill-1", mill(), factory_defaults=True)
    drv = GrblDriver("mill-1", mill(), port=handle.port)
    try:
        await drv.connect()
        text = "\n".join(drv.mismatches)
        for setting in ("$130", "$131", "$132", "$110", "$112", "$30", "$22", "$20"):
            assert setting in text, setting
        assert "290" in text and "12000" in text
        assert drv.state.homed is None  # homing disabled: GRBL cannot say
    finally:
        await drv.close()
        await handle.close()


async def test_polling_keeps_machine_state_current(driver: GrblDriver) -> None:
    await driver.unlock()
    assert driver.state.alarms == ()
    events = await driver.mdi("G90 G54 G1 X-20 Y-10 F600")
    assert isinstance(events[-1], Ok)
    await until(lambda: driver.state.state == S.RUN, what="Run")
    await until(lambda: driver.state.state == S.IDLE and driver.state.position_work["X"] == -20.0, what="Idle")
    st = driver.state
    assert st.position_work == {"X": -20.0, "Y": -10.0, "Z": 48.0}
    assert st.position_machine == {"X": -260.0, "Y": -160.0, "Z": 0.0}  # G54 = (-240, -150, -48)
    assert st.work_offset == {"X": -240.0, "Y": -150.0, "Z": -48.0}
    await until(lambda: driver.state.override_feed == 100, what="Ov field")
    assert st.spindle_direction == "off" and st.coolant == "off"
    await driver.mdi("M3 S8000")
    await driver.mdi("M8")
    await until(lambda: driver.state.spindle_rpm == 8000 and driver.state.spindle_direction == "cw"
                and driver.state.coolant == "flood", what="spindle and coolant")
    to_dict = st.to_dict()
    assert to_dict["position"]["machine"]["X"] == -260.0 and to_dict["spindle"]["rpm"] == 8000


async def test_a_resume_pressed_while_the_hold_still_decelerates_is_not_lost() -> None:
    """GRBL ignores ``~`` until the hold is complete (Hold:1 → Hold:0); the driver waits for Hold:0 to send it."""
    sim = await start_grbl_sim("mill-1", mill(), time_scale=1.0)  # real time: the deceleration takes ~0.2 s
    drv = GrblDriver("mill-1", mill(), port=sim.port, poll_hz=10, banner_timeout=2.0)
    try:
        await drv.connect()
        if drv.state.state == S.ALARM:
            await drv.unlock()
        await drv.mdi("G53 G1 X-100 F2000")
        await until(lambda: drv.state.state == S.RUN and (drv.state.feed or 0) >= 1900, what="cruising at F2000")
        await drv.feed_hold()
        await drv.cycle_start()  # at once, while GRBL still slows down
        await until(lambda: drv.state.state == S.IDLE and drv.state.position_machine["X"] == -100.0, 20.0,
                    what="the move to finish after the resume")
    finally:
        await drv.close()
        await sim.close()


async def test_commands_home_jog_hold_overrides_check_mode(driver: GrblDriver) -> None:
    await driver.home()
    assert driver.state.homed is True
    await until(lambda: driver.state.state == S.IDLE and driver.state.position_machine["X"] == -1.0)
    # jog, then cancel it
    await driver.jog({"X": -200.0}, 100)  # 2 minutes of machine time: cancelled long before the end
    await until(lambda: driver.state.state == S.JOG, what="Jog")
    await driver.jog_cancel()
    await until(lambda: driver.state.state == S.IDLE, what="Idle after jog cancel")
    assert -201.0 < driver.state.position_machine["X"] < -1.0
    with pytest.raises(GrblCommandError) as refused:
        await driver.jog({"X": 500.0}, 600)  # beyond the travel: GRBL error 15
    assert refused.value.code == 15 and "travel" in str(refused.value)
    # feed hold and resume
    await driver.mdi("G53 G1 X-150 F500")
    await until(lambda: driver.state.state == S.RUN)
    await driver.feed_hold()
    await until(lambda: driver.state.state == S.HOLD and driver.state.substate == 0, what="Hold:0")
    await driver.cycle_start()
    await until(lambda: driver.state.state in (S.RUN, S.IDLE))
    # overrides
    await driver.override("FEED_PLUS_10")
    await until(lambda: driver.state.override_feed == 110, what="feed override 110")
    await driver.override("FEED_100")
    with pytest.raises(LabbridgeError, match="unknown override 'WARP_SPEED'"):
        await driver.override("WARP_SPEED")
    await until(lambda: driver.state.state == S.IDLE)
    # check mode on and off (leaving it resets GRBL)
    await driver.set_check_mode(True)
    await until(lambda: driver.state.state == S.CHECK, what="Check")
    assert isinstance((await driver.mdi("G1 X-5 F100"))[-1], Ok)
    await driver.set_check_mode(False)
    await until(lambda: driver.state.state == S.IDLE, what="Idle after check mode")
    # an MDI error comes back as events; the error has its meaning
    events = await driver.mdi("G1 X1 X2")
    assert isinstance(events[-1], Error) and events[-1].code == 25
    # soft reset while idle: banner, no alarm
    await driver.soft_reset()
    await until(lambda: driver.state.state == S.IDLE)


async def test_write_setting_and_mismatch(driver: GrblDriver) -> None:
    await driver.write_setting(110, 1500)
    assert driver.settings[110] == 1500.0
    assert any("$110" in m for m in driver.mismatches)
    with pytest.raises(GrblCommandError) as refused:
        await driver.write_setting(0, 1)  # step pulse below 3 us
    assert refused.value.code == 6


async def test_soft_reset_while_moving_raises_alarm_and_clears_homed(driver: GrblDriver) -> None:
    await driver.unlock()
    await driver.mdi("G53 G1 X-100 F100")
    await until(lambda: driver.state.state == S.RUN)
    await driver.soft_reset()
    await until(lambda: driver.state.state == S.ALARM)
    assert driver.state.alarms[-1].code == "ALARM:3"
    assert "reset while moving" in driver.state.alarms[-1].message
    assert driver.state.homed is False


async def test_streaming_path_write_and_subscribe(driver: GrblDriver) -> None:
    await driver.unlock()
    oks: list[object] = []
    unsubscribe = driver.subscribe(lambda e: oks.append(e) if isinstance(e, Ok | Error) else None)
    async with driver.exclusive("job-1"):
        with pytest.raises(DriverBusy):
            await asyncio.create_task(_mdi_from_elsewhere(driver))
        lines = [f"G53 G1 X-{i}.000 F2000" for i in range(1, 11)]
        for line in lines:
            driver.write(line.encode() + b"\n")
        await until(lambda: len(oks) == len(lines), what="all oks")
        # the owner itself may still use line commands
        assert isinstance((await driver.mdi("G4 P0.01"))[-1], Ok)
    unsubscribe()
    assert all(isinstance(e, Ok) for e in oks)


async def _mdi_from_elsewhere(driver: GrblDriver) -> None:
    from labbridge.drivers import grbl as grbl_driver

    grbl_driver._OWNER.set(None)
    await driver.mdi("G0 X0")


async def test_lost_port_is_noticed_then_reconnects(tmp_path: Path) -> None:
    link = str(tmp_path / "ttyGRBL")
    handle = await start_grbl_sim("mill-1", mill(), time_scale=20.0, link=link)
    drv = GrblDriver("mill-1", mill(), port=link, poll_hz=5, backoff=(0.2, 1.0), banner_timeout=2.0)
    lost: list[str] = []
    drv.on_disconnect.append(lost.append)
    try:
        await drv.connect()
        assert drv.state.connected
        await asyncio.to_thread(handle.sim.unplug)
        noticed_at = time.monotonic()
        await until(lambda: not drv.state.connected, timeout=10, what="disconnect noticed")
        delay = time.monotonic() - noticed_at
        assert drv.state.state == S.DISCONNECTED and "lost the serial link" in (drv.state.fault or "")
        assert lost and link in lost[0]
        with pytest.raises(ConnectionLost):
            drv.write(b"?")
        await asyncio.to_thread(handle.sim.replug)
        await until(lambda: drv.state.connected and drv.state.state != S.DISCONNECTED, timeout=20,
                    what="reconnected")
        assert drv.version is not None
        print(f"disconnect noticed after {delay:.3f} s")
    finally:
        await drv.close()
        await handle.close()


async def test_factory_builds_grbl_driver_and_bad_port_is_clear() -> None:
    drv = create_driver("mill-1", mill(), port="/nonexistent/ttyUSB9")
    assert isinstance(drv, GrblDriver) and drv.port == "/nonexistent/ttyUSB9"
    with pytest.raises(ConnectionLost) as exc:
        await drv.connect()
    assert "/nonexistent/ttyUSB9" in str(exc.value)
    await drv.close()
    with pytest.raises(ValueError):
        GrblDriver("mill-1", mill(), port="x", poll_hz=20)


async def test_status_events_reach_subscribers(driver: GrblDriver) -> None:
    seen: list[Status] = []
    driver.subscribe(lambda e: seen.append(e) if isinstance(e, Status) else None)
    await until(lambda: len(seen) >= 2, what="status events")
    assert seen[-1].mpos is not None and seen[-1].wpos is not None


async def test_soft_limit_alarm_fails_the_command_and_reset_recovers(driver: GrblDriver) -> None:
    await driver.unlock()
    with pytest.raises(GrblCommandError) as alarm:
        await driver.mdi("G53 G1 X10 F100")  # machine space is -290..0: beyond the soft limit
    assert alarm.value.alarm and alarm.value.code == 2 and "soft limit" in str(alarm.value)
    assert driver.state.alarms[-1].code == "ALARM:2"
    await driver.soft_reset()
    await until(lambda: driver.state.state == S.ALARM, what="alarm after reset")
    await driver.unlock()
    await until(lambda: driver.state.state == S.IDLE, what="idle after unlock")


class SerialServer:
    """A tiny ser2net: one TCP client at a time, bridged to the device. The device is opened at start,
    so what GRBL says before a client connects (its banner) is lost, as with a real serial server."""

    def __init__(self, device: str) -> None:
        import os
        import tty

        self.fd = os.open(device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.server: asyncio.base_events.Server | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.fd, self._from_device)
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    def _from_device(self) -> None:
        import os

        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        if self.writer is not None:
            self.writer.write(data)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import os

        self.writer = writer
        while data := await reader.read(4096):
            os.write(self.fd, data)
        self.writer = None
        writer.close()

    async def close(self) -> None:
        import os

        asyncio.get_running_loop().remove_reader(self.fd)
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        os.close(self.fd)


async def test_pyserial_url_and_no_banner_a_live_grbl_is_not_reset(sim) -> None:
    """A board that does not reset on open gives no banner; GRBL answering ``?`` is left as it is (a machine
    left running after a crash is reported, not changed), and one that answers nothing is soft-reset."""
    bridge = SerialServer(sim.port)
    port = await bridge.start()
    await asyncio.sleep(0.3)  # the simulator's banner for the bridge's open goes nowhere
    drv = GrblDriver("mill-1", mill(), port=f"socket://127.0.0.1:{port}", banner_timeout=1.0, reconnect=False)
    from labbridge.log import RECENT_EVENTS

    try:
        await drv.connect()
        assert drv.state.connected and drv.banner is None  # connected without a reset
        assert any(e.get("event") == "grbl_no_banner_answers_status" and e.get("machine") == "mill-1"
                   for e in RECENT_EVENTS)
        assert drv.settings[130] == 290.0
        await until(lambda: drv.state.position_machine is not None, what="status over TCP")
        await drv.unlock()
        with pytest.raises(GrblCommandError):
            await drv.mdi("G53 G0 Z5")  # beyond the travel: ALARM:2, after which GRBL answers nothing
    finally:
        await drv.close()
    silent = GrblDriver("mill-1", mill(), port=f"socket://127.0.0.1:{port}", banner_timeout=1.0, reconnect=False)
    try:
        await silent.connect()  # no banner and no status: the driver soft-resets and gets a banner
        assert silent.state.connected and silent.banner is not None
        assert any(e.get("event") == "grbl_no_banner_soft_reset" and e.get("machine") == "mill-1"
                   for e in RECENT_EVENTS)
    finally:
        await silent.close()
        await bridge.close()


async def test_silence_after_a_limit_alarm_is_explained(driver: GrblDriver) -> None:
    driver.stale_after = 0.5
    await driver.unlock()
    with pytest.raises(GrblCommandError):
        await driver.mdi("G53 G0 Z5")
    await until(lambda: driver.state.fault is not None, what="fault")
    assert "ALARM:2" in driver.state.fault and "soft reset" in driver.state.fault
    assert driver.state.connected  # the link is fine; the controller waits
    await driver.soft_reset()
    await until(lambda: driver.state.fault is None, what="fault cleared by the next status")


class Rfc2217Server:
    """A small RFC 2217 serial server (as pyserial's example) bridging one client to the device."""

    def __init__(self, device: str) -> None:
        import socket
        import threading

        import serial
        import serial.rfc2217

        class PtySerial(serial.Serial):
            """A pty has no modem lines: report them idle and ignore DTR/RTS."""

            cts = dsr = ri = cd = property(lambda self: False)

            def _update_dtr_state(self) -> None:
                pass

            def _update_rts_state(self) -> None:
                pass

        self.serial = PtySerial(device, 115200, timeout=0.05)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.alive = True
        self._rfc2217 = serial.rfc2217
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import threading

        conn, _ = self.sock.accept()
        self.conn = conn
        lock = threading.Lock()

        class Writer:
            def write(self, data: bytes) -> None:
                with lock:
                    conn.sendall(data)

        manager = self._rfc2217.PortManager(self.serial, Writer())

        def to_net() -> None:
            while self.alive:
                try:
                    data = self.serial.read(self.serial.in_waiting or 1)
                    if data:
                        Writer().write(b"".join(manager.escape(data)))
                except Exception:
                    return

        threading.Thread(target=to_net, daemon=True).start()
        while self.alive:
            try:
                data = conn.recv(1024)
            except OSError:
                return
            if not data:
                return
            self.serial.write(b"".join(manager.filter(data)))

    def close(self) -> None:
        self.alive = False
        with contextlib.suppress(Exception):
            self.conn.close()
        self.sock.close()
        self.serial.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pyserial's rfc2217 module uses setDaemon()
async def test_rfc2217_url(sim) -> None:
    server = await asyncio.to_thread(Rfc2217Server, sim.port)
    drv = GrblDriver("mill-1", mill(), port=f"rfc2217://127.0.0.1:{server.port}", banner_timeout=1.0,
                     reconnect=False)
    try:
        await drv.connect()
        assert drv.state.connected and drv.version is not None
        await until(lambda: drv.state.position_machine is not None, what="status over RFC 2217")
        await drv.unlock()
        assert isinstance((await drv.mdi("G4 P0"))[-1], Ok)
    finally:
        await drv.close()
        await asyncio.to_thread(server.close)
