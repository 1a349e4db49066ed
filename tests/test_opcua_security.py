"""OPC UA with Basic256Sha256 SignAndEncrypt and certificates (self-signed, made for the test)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID

from labbridge.config import OpcUaConnection, load_config
from labbridge.sim.fanuc.control import SimControl
from labbridge.sim.fanuc.opcua_server import OpcUaSimServer
from labbridge.drivers.sources.opcua import OpcUaSource
from labbridge.model import MachineState

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
async def test_signed_and_encrypted_session_with_certificates(tmp_path: Path) -> None:
    host = socket.gethostname()
    await setup_self_signed_certificate(tmp_path / "server-key.pem", tmp_path / "server.der",
                                        "urn:labbridge:sim:mill-2", host, [ExtendedKeyUsageOID.SERVER_AUTH],
                                        {"commonName": "simulated control"})
    await setup_self_signed_certificate(tmp_path / "client-key.pem", tmp_path / "client.der",
                                        "urn:labbridge:client", host, [ExtendedKeyUsageOID.CLIENT_AUTH],
                                        {"commonName": "labbridge"})
    sim = SimControl("mill-2", load_config(ROOT / "config" / "machines.yaml").machine("mill-2"))
    server = OpcUaSimServer(sim, certificate=(str(tmp_path / "server.der"), str(tmp_path / "server-key.pem")))
    await server.start()
    try:
        secure = OpcUaConnection(
            url=server.url,
            security=f"Basic256Sha256,SignAndEncrypt,{tmp_path / 'client.der'},{tmp_path / 'client-key.pem'}",
            server_certificate=str(tmp_path / "server.der"),
        )
        state = MachineState("mill-2")
        source = OpcUaSource("mill-2", secure, state)
        await source.start()
        try:
            assert source.up and source.fault is None
            assert state.position_machine == {"X": 0.0, "Y": 0.0, "Z": 0.0}
        finally:
            await source.stop()
        plain = OpcUaSource("mill-2", OpcUaConnection(url=server.url), MachineState("mill-2"))
        await plain.start()
        try:
            assert not plain.up and "SecurityPolicy#None" in (plain.fault or ""), "the server offers no insecure endpoint"
        finally:
            await plain.stop()
    finally:
        await server.stop()
