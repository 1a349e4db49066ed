"""A Fanuc-style twin's links (labbridge.server.twin_dnc.twin_links): never a real machine's endpoint; the DNC
line as many times faster as the twin's clock, so the tape keeps pace with the control as on the real line."""

from __future__ import annotations

import pytest

from labbridge.server.twin_dnc import TwinLinkError, twin_links
from tests.web_support import lab_config

REAL = lab_config(("lathe-1", "mill-2"), unreachable=False).machines


def pointed(machine_id: str, **urls: str) -> object:
    real = REAL[machine_id]
    conn = real.connection
    updates = {"dnc": conn.dnc.model_copy(update={"port": urls.get("dnc", "/dev/pts/99")})}  # type: ignore[union-attr]
    if conn.modbus is not None:
        updates["modbus"] = conn.modbus.model_copy(update={"url": urls.get("modbus", "tcp://127.0.0.1:15020")})
    if conn.opcua is not None:
        updates["opcua"] = conn.opcua.model_copy(update={"url": urls.get("opcua", "opc.tcp://127.0.0.1:48400")})
    return real.model_copy(update={"connection": conn.model_copy(update=updates)})


@pytest.mark.parametrize("speed", [1, 4, 16])
def test_the_twins_tape_runs_at_its_speed_and_its_status_is_read_often(speed: int) -> None:
    twin = twin_links("lathe-1", REAL["lathe-1"], pointed("lathe-1"), speed)  # type: ignore[arg-type]
    assert twin.connection.dnc.baudrate == 9600 * speed and twin.connection.dnc.port == "/dev/pts/99"
    assert twin.connection.modbus.poll_hz == 20 and twin.connection.modbus.url == "tcp://127.0.0.1:15020"
    assert REAL["lathe-1"].connection.dnc.baudrate == 9600  # the real machine's config is left as it was
    mill = twin_links("mill-2", REAL["mill-2"], pointed("mill-2"), speed)  # type: ignore[arg-type]
    assert mill.connection.dnc.baudrate == 9600 * speed and mill.connection.modbus is None


@pytest.mark.parametrize(("machine_id", "link"), [("lathe-1", {"dnc": "/dev/ttyUSB1"}),
                                                   ("lathe-1", {"modbus": "tcp://192.168.1.20:502"}),
                                                   ("mill-2", {"opcua": "opc.tcp://192.168.1.30:4840"})])
def test_a_twin_link_to_the_real_machine_is_refused(machine_id: str, link: dict[str, str]) -> None:
    with pytest.raises(TwinLinkError, match="real machine's; a dry run never touches a real port"):
        twin_links(machine_id, REAL[machine_id], pointed(machine_id, **link), 16)  # type: ignore[arg-type]
