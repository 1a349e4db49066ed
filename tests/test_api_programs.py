"""Program uploads (limits, bad files), the check report, the toolpath preview and the queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labbridge.safety.toolpath import CUT, FLAGGED, RAPID, decode
from tests.web_support import Api, running_app

GOOD = "G21 G90 G54\nG0 X10 Y10 Z5\nG1 Z-1 F300\nG2 X20 Y10 I5 J0\nG0 Z5\nM30\n"
# Line 3 moves far outside mill-1's envelope (G54 X is -240; X-100 work is -340 machine).
GOOD_ARC_LINE = 4
OUTSIDE = "G21 G90 G54\nG0 Z5\nG0 X-100 Y10\nG0 X10\nM30\n"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with running_app(tmp_path_factory.mktemp("programs"), max_upload_bytes=64 * 1024) as api:
        yield api


def upload(api: Api, data: bytes, name: str = "p.nc", role: str = "trainer") -> Any:
    return api.call(role, "POST", "/api/programs", files={"file": (name, data, "application/octet-stream")})


def test_upload_stores_by_content_hash(api: Api) -> None:
    import hashlib

    r = upload(api, GOOD.encode(), "square.nc")
    assert r.status_code == 201, r.text
    info = r.json()
    assert info["hash"] == hashlib.sha256(GOOD.encode()).hexdigest()
    assert info["size"] == len(GOOD) and info["lines"] == 6 and info["name"] == "square.nc"
    again = upload(api, GOOD.encode(), "copy.nc").json()
    assert again["hash"] == info["hash"]
    got = api.call("trainer", "GET", f"/api/programs/{info['hash']}").json()
    assert got["text"] == GOOD
    names = [p["name"] for p in api.call("trainer", "GET", "/api/programs").json()]
    assert {"square.nc", "copy.nc"} <= set(names)


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"", 400, "empty"),
        (b"  \n\r\n\t \n", 400, "empty"),
        (b"G0 X1\x00\x00\x01\x02binary", 415, "binary"),
        (bytes(range(256)) * 4, 415, "binary"),
        (b"G0 X1\n\xff\xfe\xfa not utf-8\n", 415, "UTF-8"),
        (b"\x1b\x02\x03\x04\x05\x06\x07\x08" * 20 + b"G0 X1\n", 415, "control characters"),
    ],
)
def test_bad_uploads_are_refused_with_a_reason(api: Api, data: bytes, status: int, words: str) -> None:
    r = upload(api, data, "bad.nc")
    assert r.status_code == status, r.text
    assert words in r.json()["detail"] and "bad.nc" in r.json()["detail"]
    entry = api.ctx.store.audit_log(limit=1, action="program.upload")[0]
    assert entry["outcome"] == "refused" and entry["username"] == "trainer"


def test_pasted_text_is_checked_the_same_way(api: Api) -> None:
    r = api.call("trainer", "POST", "/api/programs/text", json={"name": "paste.nc", "text": "   "})
    assert r.status_code == 400 and "empty" in r.json()["detail"]
    r = api.call("trainer", "POST", "/api/programs/text", json={"name": "paste.nc", "text": "G0 X1\x00"})
    assert r.status_code == 415


def test_upload_limit(api: Api) -> None:
    limit = api.ctx.settings.max_upload_bytes
    exactly = (b"G0 X1\n" * (limit // 6 + 1))[:limit - 1] + b"\n"
    assert len(exactly) == limit
    assert upload(api, exactly, "at-limit.nc").status_code == 201
    r = upload(api, exactly + b"G0\n", "over.nc")
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    huge = b"G0 X1\n" * (limit // 2)  # 3x the limit: refused from Content-Length before it is read
    r = upload(api, huge, "huge.nc")
    assert r.status_code == 413 and "limit" in r.json()["detail"]


def test_default_limit_is_ten_megabytes(tmp_path: Path) -> None:
    with running_app(tmp_path) as api:
        assert api.ctx.settings.max_upload_bytes == 10 * 1024 * 1024
        block = b"G1 X1 Y1 F100\n"
        data = block * (10 * 1024 * 1024 // len(block) + 1)
        r = upload(api, data, "big.nc")
        assert r.status_code == 413 and "10.0 MB" in r.json()["detail"]


def test_check_report_matches_cli_json(api: Api) -> None:
    from labbridge.safety import check_text

    h = upload(api, OUTSIDE.encode(), "outside.nc").json()["hash"]
    r = api.call("trainer", "POST", f"/api/programs/{h}/check", json={"machine": "mill-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = check_text(OUTSIDE, api.ctx.lab.runtime("mill-1").config, machine_id="mill-1",
                          program_name="outside.nc").to_json()
    assert body["report"] == expected
    assert body["report"]["ok"] is False
    envelope_lines = {d["line"] for d in body["report"]["diagnostics"] if d["code"] == "envelope"}
    assert 3 in envelope_lines
    tp = decode(api.call("viewer", "GET", body["toolpath"]).content)
    assert tp.header["envelope"]["X"] == [-290.0, 0.0]
    assert tp.header["keep_out"][0]["name"] == "vise fixed jaw"
    pts, lines, kinds = tp.unpack()
    bad = {ln for ln, k in zip(lines, kinds) if k == FLAGGED}
    assert 3 in bad and bad <= envelope_lines | {d["line"] for d in body["report"]["diagnostics"]
                                                  if d["severity"] == "error"}
    assert all(ln not in envelope_lines for ln, k in zip(lines, kinds) if k in (RAPID, CUT))


def test_preview_flattens_arcs(api: Api) -> None:
    h = upload(api, GOOD.encode(), "arc.nc").json()["hash"]
    url = api.call("operator", "POST", f"/api/programs/{h}/check", json={"machine": "mill-1"}).json()["toolpath"]
    r = api.call("viewer", "GET", url)
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.labbridge.toolpath"
    pts, lines, kinds = decode(r.content).unpack()
    arc = [p for p, ln in zip(pts, lines) if ln == GOOD_ARC_LINE]
    assert len(arc) > 10
    # a clockwise half circle of radius 5 about (15, 10) in work coords: every point 5 mm from the centre
    cx, cy = -240 + 15, -150 + 10
    for x, y, _z in arc:
        assert abs(((x - cx) ** 2 + (y - cy) ** 2) ** 0.5 - 5) < 1e-3
    assert FLAGGED not in kinds


def test_toolpath_unknown_program_or_machine(api: Api) -> None:
    h = upload(api, GOOD.encode()).json()["hash"]
    assert api.call("viewer", "GET", f"/api/programs/{h}/toolpath?machine=nope").status_code == 404
    assert api.call("viewer", "GET", '/api/programs/' + '0' * 64 + '/toolpath?machine=mill-1').status_code == 404
    assert api.call(None, "GET", f"/api/programs/{h}/toolpath?machine=mill-1").status_code == 401


def test_check_unknown_machine_or_program(api: Api) -> None:
    h = upload(api, GOOD.encode()).json()["hash"]
    r = api.call("trainer", "POST", f"/api/programs/{h}/check", json={"machine": "mill-9"})
    assert r.status_code == 404 and "mill-9" in r.json()["detail"]
    r = api.call("trainer", "POST", f"/api/programs/{'0' * 64}/check", json={"machine": "mill-1"})
    assert r.status_code == 404 and "upload" in r.json()["detail"]


def test_queue_refuses_programs_with_errors(api: Api) -> None:
    h = upload(api, OUTSIDE.encode(), "outside.nc").json()["hash"]
    r = api.call("trainer", "POST", "/api/queue", json={"program": h, "machine": "mill-1"})
    assert r.status_code == 409
    assert "error" in r.json()["detail"] and "line 3" in r.json()["detail"]
    assert api.ctx.store.audit_log(limit=1, action="queue.submit")[0]["outcome"] == "refused"


def test_queue_entry_points_at_checked_bytes(api: Api) -> None:
    h = upload(api, GOOD.encode(), "good.nc").json()["hash"]
    r = api.call("trainer", "POST", "/api/queue", json={"program": h, "machine": "mill-1", "note": "Ana, 2nd year"})
    assert r.status_code == 201, r.text
    entry = r.json()
    assert entry["hash"] == h and entry["state"] == "queued" and entry["submitted_by"] == "trainer"
    check = api.ctx.store.latest_check(h, "mill-1")
    assert check is not None and check["id"] == entry["check_id"] and check["ok"]
    path = api.ctx.store.program_file(h)
    assert path.read_bytes() == GOOD.encode()
    listed = api.call("trainer", "GET", "/api/queue?machine=mill-1").json()
    assert any(e["id"] == entry["id"] and e["note"] == "Ana, 2nd year" for e in listed)
    # the machine is not reachable: starting is refused with the reason, and the entry stays queued
    r = api.call("operator", "POST", f"/api/queue/{entry['id']}/start")
    assert r.status_code == 409 and "mill-1" in r.json()["detail"]
    assert api.ctx.store.queue_entry(entry["id"])["state"] == "queued"


def test_upload_without_content_length_is_cut_off_at_the_limit(api: Api) -> None:
    limit = api.ctx.settings.max_upload_bytes
    boundary = "labbridgeboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"stream.nc\"\r\n"
            "Content-Type: text/plain\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body():  # chunked: the server only learns the size by reading
        yield head
        for _ in range(limit * 3 // 6000):
            yield b"G0 X1\n" * 1000
        yield tail

    r = api.client.post("/api/programs", content=body(), headers={
        **api.headers("trainer"), "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert r.json()["detail"].startswith("the upload is larger")  # stopped while reading, not after storing
