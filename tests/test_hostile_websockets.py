"""Broken and hostile websocket clients against a real ``labbridge serve``: refused cleanly, paced, and never in
the way of an operator's HOLD."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.web_support import ROOT, ServerProcess, admin_first_sign_in, password_of, write_lab_config


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("hostile")
    config = write_lab_config(tmp / "machines.yaml")
    proc = ServerProcess(["serve", "--port", "0", "--config", str(config), "--data-dir",
                          str(tmp / "data"), "--log-level", "info"], cwd=ROOT)
    try:
        with httpx.Client(base_url=proc.url, timeout=30) as client:
            admin = {"Authorization": f"Bearer {admin_first_sign_in(client, proc.password)}"}
            tokens = {}
            for user, role in (("op", "operator"), ("pupil", "viewer")):
                r = client.post("/api/users", headers=admin, json={"username": user, "password": password_of(user),
                                                                   "role": role})
                assert r.status_code == 201, r.text
                tokens[user] = client.post("/api/auth/login", json={"username": user, "password": password_of(user)}
                                           ).json()["token"]
        proc.tokens = tokens  # type: ignore[attr-defined]
        yield proc
    finally:
        proc.stop()


def ws_url(server: ServerProcess) -> str:
    return server.url.replace("http://", "ws://") + "/ws"


async def closed_with(ws: object) -> int:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 10)  # type: ignore[attr-defined]
    except ConnectionClosed as exc:
        return int(exc.rcvd.code) if exc.rcvd else 1006


@pytest.mark.parametrize("first, code", [
    ("[" * 1500 + "]" * 1500, 1003),  # deep nesting: json recurses until RecursionError
    ('{"type": "auth", "token": ' + "[" * 1500 + "]" * 1500 + "}", 1003),
    ("x" * 8000, 1009),  # over the 4 KB allowed before sign-in
    ("not json at all", 1003),
])
async def test_garbage_before_sign_in_is_closed_without_a_traceback(server: ServerProcess, first: str,
                                                                     code: int) -> None:
    async with connect(ws_url(server), max_size=2**20) as ws:
        await ws.send(first)
        assert await closed_with(ws) == code
    async with connect(ws_url(server)) as ws:  # binary frames too
        await ws.send(b"\xff\xfe" * 10)
        assert await closed_with(ws) == 1003
    assert not any("Traceback" in line for line in server.stderr), "".join(server.stderr[-40:])


async def test_messages_over_64_kb_close_the_socket(server: ServerProcess) -> None:
    async with connect(ws_url(server), max_size=2**20) as ws:
        await ws.send(json.dumps({"type": "auth", "token": server.tokens["pupil"]}))  # type: ignore[attr-defined]
        assert json.loads(await ws.recv())["type"] == "hello"
        await ws.send(json.dumps({"type": "subscribe", "machines": ["x" * 70_000]}))
        assert await closed_with(ws) in (1009, 1006)


async def test_a_flooding_viewer_is_paced_and_never_delays_a_hold(server: ServerProcess) -> None:
    """A viewer pings as fast as it can and never reads; the operator's HOLDs keep answering."""
    stop = asyncio.Event()
    sent = 0

    async def flood() -> None:
        nonlocal sent
        ws = await connect(ws_url(server), max_queue=1, ping_interval=None)
        await ws.send(json.dumps({"type": "auth", "token": server.tokens["pupil"]}))  # type: ignore[attr-defined]
        try:
            while not stop.is_set():
                await ws.send('{"type":"ping"}')  # blocks once every buffer on the way is full
                sent += 1
        finally:
            ws.transport.abort()  # a close handshake would queue behind the flood

    flooder = asyncio.create_task(flood())
    await asyncio.sleep(2.0)
    auth = {"Authorization": f"Bearer {server.tokens['op']}"}  # type: ignore[attr-defined]
    worst = 0.0
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for _ in range(20):
            start = time.monotonic()
            r = await client.post("/api/machines/mill-1/hold", headers=auth)
            worst = max(worst, time.monotonic() - start)
            assert r.status_code in (200, 409), r.text  # answered (the offline machine says why it cannot)
            await asyncio.sleep(0.05)
        stats = (await client.get("/api/server/stats", headers=auth)).status_code
    stop.set()
    flooder.cancel()
    await asyncio.gather(flooder, return_exceptions=True)
    assert stats in (200, 403)
    assert worst < 5.0  # generous under load: the figure that matters is in bench/hold_latency.py
    assert sent > 200  # it really flooded (the server reads it at 20 messages/s)


def test_a_client_over_its_rate_for_long_is_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pacing first, then closing (1008) once a client has been over its rate for WS_FLOOD_CLOSE seconds."""
    from starlette.websockets import WebSocketDisconnect

    from labbridge.server.api import ws as ws_module
    from tests.web_support import running_app

    monkeypatch.setattr(ws_module, "WS_RATE", 10.0)
    monkeypatch.setattr(ws_module, "WS_BURST", 5.0)
    monkeypatch.setattr(ws_module, "WS_FLOOD_CLOSE", 1.0)
    with running_app(tmp_path) as api:
        with api.client.websocket_connect("/ws") as ws:
            ws.send_json({"type": "auth", "token": api.tokens["viewer"]})
            assert ws.receive_json()["type"] == "hello"
            start = time.monotonic()
            for _ in range(200):
                ws.send_json({"type": "ping"})
            pongs = 0
            with pytest.raises(WebSocketDisconnect) as closed:
                while True:
                    pongs += ws.receive_json()["type"] == "pong"
            took = time.monotonic() - start
        assert closed.value.code == 1008
        assert pongs < 60 and took >= 1.0  # paced at 10/s, then closed: far from all 200 answered
        flood = api.ctx.store.audit_log(limit=5, action="ws.flood")
        assert flood and flood[0]["outcome"] == "closed" and flood[0]["username"] == "viewer"
