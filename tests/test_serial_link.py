"""The one serial link of GRBL and DNC, on a real pseudo-terminal: exclusive open, callbacks, queue, lost link."""

from __future__ import annotations

import asyncio
import os
import tty

import pytest

from labbridge.errors import ConnectionLost
from labbridge.transports.serial_link import SerialLink


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    yield master, os.ttyname(slave)
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


async def test_a_second_open_of_the_same_device_is_refused_naming_the_port(pty_pair) -> None:
    _, path = pty_pair
    first = SerialLink(path, label="GRBL port")
    await first.open()
    try:
        with pytest.raises(ConnectionLost, match=rf"cannot open GRBL port {path}.*in use by another program"):
            await SerialLink(path, label="GRBL port").open()
    finally:
        await first.aclose()
    again = SerialLink(path)  # closed: free again
    await again.open()
    await again.aclose()


async def test_bytes_go_to_the_callback_and_writes_reach_the_device(pty_pair) -> None:
    master, path = pty_pair
    received: list[bytes] = []
    link = SerialLink(path, on_data=received.append)
    await link.open()
    try:
        os.write(master, b"ok\r\n")
        for _ in range(200):
            if b"".join(received) == b"ok\r\n":
                break
            await asyncio.sleep(0.01)
        assert b"".join(received) == b"ok\r\n"
        link.write(b"?")
        await asyncio.sleep(0.05)
        assert os.read(master, 16) == b"?"
    finally:
        await link.aclose()
    with pytest.raises(ConnectionLost, match="is not open"):
        link.write(b"x")


async def test_queue_mode_reads_with_a_timeout_and_a_lost_port_is_reported_once(pty_pair) -> None:
    master, path = pty_pair
    lost: list[str] = []
    link = SerialLink(path, label="DNC port", on_lost=lost.append)
    await link.open()
    try:
        assert await link.read(0.05) == b""
        os.write(master, b"\x11")
        assert await link.read(2.0) == b"\x11"
        os.close(master)  # the adapter is unplugged
        with pytest.raises(ConnectionLost, match=rf"DNC port {path} failed"):
            for _ in range(100):
                await link.read(0.05)
        await asyncio.sleep(0.1)
        assert len(lost) == 1
    finally:
        await link.aclose()


def test_line_time_counts_start_parity_and_stop_bits() -> None:
    assert SerialLink("/dev/null", baudrate=9600).char_seconds(960) == pytest.approx(1.0)  # 8N1: 10 bits
    assert SerialLink("/dev/null", baudrate=4800, bytesize=7, parity="E", stopbits=2).char_seconds(4) == \
        pytest.approx(4 * 11 / 4800)
