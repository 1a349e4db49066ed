"""``--tls``: a local certificate made on first start, kept in the data dir, reused, its fingerprint printed;
``--certfile/--keyfile``: the lab's own."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import stat
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from labbridge.server.tls import ensure_certificate, make_certificate
from tests.web_support import ROOT, ServerProcess, write_lab_config


def test_certificate_is_made_once_kept_private_and_names_this_computer(tmp_path: Path) -> None:
    first = ensure_certificate(tmp_path)
    assert first.created and first.certfile.parent == tmp_path / "tls"
    assert stat.S_IMODE(first.keyfile.stat().st_mode) == 0o600
    again = ensure_certificate(tmp_path)
    assert not again.created and again.fingerprint == first.fingerprint
    cert = x509.load_pem_x509_certificate(first.certfile.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert len(first.fingerprint.split(":")) == 32


def serve(tmp: Path, *extra: str) -> ServerProcess:
    return ServerProcess(["serve", "--port", "0", "--config", str(write_lab_config(tmp / "machines.yaml")), "--data-dir", str(tmp / "data"),
                          "--log-level", "warning", *extra], cwd=ROOT)


@pytest.mark.slow
def test_serve_tls_prints_the_fingerprint_and_speaks_https(tmp_path: Path) -> None:
    server = serve(tmp_path, "--tls")
    try:
        assert server.url.startswith("https://127.0.0.1:")
        printed = next(line for line in server.lines if "fingerprint" in line)
        cert = tmp_path / "data" / "tls" / "cert.pem"
        assert ensure_certificate(tmp_path / "data").fingerprint in printed and "made now" in printed
        trust = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=server.url, verify=trust, timeout=30) as client:
            assert client.get("/api/health").json() == {"ok": True}
            r = client.post("/api/auth/login", json={"username": "admin", "password": server.password})
            assert r.status_code == 200 and "secure" in r.headers["set-cookie"].lower()
        host, port = server.url.split("//")[1].split(":")
        with socket.create_connection((host, int(port)), timeout=5) as plain:  # cleartext gets no answer
            plain.sendall(b"GET /api/health HTTP/1.1\r\nHost: lab\r\n\r\n")
            try:
                answer = plain.recv(100)
            except (TimeoutError, ConnectionResetError):
                answer = b""
            assert not answer.startswith(b"HTTP/1.1 200")
    finally:
        server.stop()
    again = serve(tmp_path, "--tls", "--reset-admin")  # the second start reuses the certificate
    try:
        assert any("fingerprint" in line and "from" in line for line in again.lines)
    finally:
        again.stop()


@pytest.mark.slow
def test_serve_with_the_labs_own_certificate(tmp_path: Path) -> None:
    cert_pem, key_pem = make_certificate(["lab.example"], ["127.0.0.1"])
    (tmp_path / "c.pem").write_bytes(cert_pem)
    (tmp_path / "k.pem").write_bytes(key_pem)
    server = serve(tmp_path, "--certfile", str(tmp_path / "c.pem"), "--keyfile", str(tmp_path / "k.pem"))
    try:
        trust = ssl.create_default_context(cafile=str(tmp_path / "c.pem"))
        assert httpx.get(server.url + "/api/health", verify=trust, timeout=30).status_code == 200
    finally:
        server.stop()
