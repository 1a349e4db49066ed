"""Slow, huge and hoarding clients against a real ``labbridge serve``, spoken to over raw sockets.

Half a request line, half the headers, a stalled body, an 800 MB sign-in body and a
flood of half-open connections: each is cut off on time and sign-in keeps working.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.web_support import ROOT, ServerProcess, admin_first_sign_in, write_lab_config

READ_TIMEOUT = 1.5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("slow")
    config = write_lab_config(tmp / "machines.yaml")
    proc = ServerProcess(["serve", "--port", "0", "--config", str(config), "--data-dir",
                          str(tmp / "data"), "--read-timeout", str(READ_TIMEOUT), "--max-connections", "40",
                          "--log-level", "warning"], cwd=ROOT)
    try:
        with httpx.Client(base_url=proc.url, timeout=30) as client:
            proc.admin_token = admin_first_sign_in(client, proc.password)  # type: ignore[attr-defined]
        yield proc
    finally:
        proc.stop()


def connect(server: ServerProcess) -> socket.socket:
    parts = urlsplit(server.url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    return sock


def read_until_closed(sock: socket.socket, limit: float = 30.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    start = time.monotonic()
    sock.settimeout(limit)
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks), time.monotonic() - start


def sign_in_works(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        r = client.post("/api/auth/login", json={"username": "nobody", "password": "nope"})
        assert r.status_code in (401, 429)
        assert client.get("/api/health").json() == {"ok": True}


@pytest.mark.parametrize("partial", [
    b"GET /api/hea",  # half a request line
    b"GET /api/health HTTP/1.1\r\nHost: lab\r\nUser-Agent: slow",  # half the headers
])
def test_half_a_request_is_answered_408_and_closed(server: ServerProcess, partial: bytes) -> None:
    with connect(server) as sock:
        sock.sendall(partial)
        reply, took = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b"did not arrive in time" in reply
    assert READ_TIMEOUT * 0.8 < took < READ_TIMEOUT + 10


def test_a_head_sent_byte_by_byte_does_not_extend_its_deadline(server: ServerProcess) -> None:
    head = b"GET /api/health HTTP/1.1\r\nHost: lab\r\n" + b"X-Pad: " + b"a" * 200 + b"\r\n\r\n"
    with connect(server) as sock:
        start = time.monotonic()
        closed_after = None
        for i in range(len(head)):
            try:
                sock.sendall(head[i:i + 1])
            except OSError:
                closed_after = time.monotonic() - start
                break
            time.sleep(0.05)
        reply, _ = read_until_closed(sock)
        closed_after = closed_after or time.monotonic() - start
    assert reply.startswith(b"HTTP/1.1 408") or reply == b""
    assert closed_after < READ_TIMEOUT + 10


def test_a_silent_connection_is_closed(server: ServerProcess) -> None:
    with connect(server) as sock:
        reply, took = read_until_closed(sock)
    assert reply == b"" and took < READ_TIMEOUT + 10


def test_a_stalled_body_is_cut_off(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /api/auth/login HTTP/1.1\r\nHost: lab\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 200\r\n\r\n{\"username\": \"ad")
        reply, took = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 408") and b"stopped arriving" in reply
    assert took < READ_TIMEOUT + 10


def rss_kb(server: ServerProcess) -> int:
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_an_800_mb_sign_in_body_is_refused_before_reading(server: ServerProcess) -> None:
    before = rss_kb(server)
    with connect(server) as sock:
        sock.sendall(b"POST /api/auth/login HTTP/1.1\r\nHost: lab\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 800000000\r\n\r\n")
        sock.sendall(b"[" * 65536)
        reply, _ = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"4 KB" in reply and b"connection: close" in reply.lower()
    assert rss_kb(server) - before < 20_000  # not a byte of the 800 MB was buffered


def test_a_chunked_body_over_the_limit_is_cut_off(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /api/auth/login HTTP/1.1\r\nHost: lab\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 1024
        try:
            for _ in range(64):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass  # the server closed on us: that is the point
        reply, _ = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]


@pytest.mark.slow
def test_other_routes_have_a_limit_too_and_uploads_keep_10_mb(server: ServerProcess) -> None:
    auth = {"Authorization": f"Bearer {server.admin_token}"}  # type: ignore[attr-defined]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        r = client.put("/api/machines/mill-1/settings/$110", headers=auth, content=b"{" + b" " * 70_000 + b"}")
        assert r.status_code == 413 and "64 KB" in r.json()["detail"]
        program = b"G0 X-1\n" * (9 * 1024 * 1024 // 7)
        r = client.post("/api/programs", headers=auth, files={"file": ("big.nc", program, "text/plain")})
        assert r.status_code == 201, r.text
        r = client.post("/api/programs", headers=auth,
                        files={"file": ("huge.nc", program + program[: 2 * 1024 * 1024], "text/plain")})
        assert r.status_code == 413 and "10.0 MB" in r.json()["detail"]


def test_half_open_connections_cannot_starve_sign_in(server: ServerProcess) -> None:
    """Twice the connection limit of half-open sockets: the oldest are closed and sign-in still answers."""
    hoard = []
    try:
        for _ in range(80):
            sock = connect(server)
            sock.sendall(b"GET /api/heal")
            hoard.append(sock)
        sign_in_works(server)
        closed = 0
        for sock in hoard[:40]:
            sock.settimeout(5)
            try:
                closed += sock.recv(1) == b""
            except (ConnectionResetError, TimeoutError):
                closed += 1
        assert closed >= 30  # the oldest half-open ones made room
    finally:
        for sock in hoard:
            sock.close()
    sign_in_works(server)
    assert "Traceback" not in "".join(server.stderr)
