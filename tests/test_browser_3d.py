"""The 3D toolpath in Debian's Chromium (WebGL 2 on SwiftShader), against ``labbridge serve --demo``.

Proof for issue 12: the path and the envelope are drawn (pixels of their colours read back from the
framebuffer); the tool follows a simulated job on the machine card; clicking a segment selects its line in the
listing; a dry run at 16x runs to the end with the twin's tool moving and the result recorded on the queue; a
lathe program is shown in its XZ plane. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.browser_support import ARTIFACTS, CHROMIUM, browser  # noqa: F401 (fixture)
from tests.test_browser_dashboard import sign_in
from tests.web_support import CONFIG_PATH, ROOT, ServerProcess, admin_first_sign_in, password_of, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MILL = ("G21 G90 G54\nM3 S9000\nG0 X0 Y0 Z5\nG1 Z-1 F400\n"
        + "".join(f"G1 X{60 * (i % 2)} Y{i * 4} F900\n" for i in range(1, 12))
        + "G2 X40 Y64 R20\nG0 Z5\nG0 X-120\nM30\n")  # the last rapid leaves the envelope: drawn red
JOB = ("G21 G90 G54\nM3 S9000\nG0 X0 Y0 Z5\nG1 Z-0.5 F300\n"
       + "".join(f"G1 X{50 * (i % 2)} Y{i * 2} F300\n" for i in range(1, 30)) + "G0 Z5\nM5\nM30\n")
LATHE = "G21 G18 G40 G99\nG54\nG97 S800 M3\nG0 X42. Z2.\nG1 Z-30. F0.2\nG1 X50.\nG2 X60. Z-35. R5.\nG0 X80. Z2.\nM30\n"

READ_PIXELS = """(sel) => {
  const v = document.querySelector(sel).toolpathView;
  v.renderer.render(v.scene, v.camera);
  const gl = v.renderer.getContext();
  const w = gl.drawingBufferWidth, h = gl.drawingBufferHeight, px = new Uint8Array(w * h * 4);
  gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, px);
  const near = (i, c) => Math.abs(px[i] - (c >> 16)) < 24 && Math.abs(px[i + 1] - ((c >> 8) & 255)) < 24
    && Math.abs(px[i + 2] - (c & 255)) < 24;
  const out = {cut: 0, rapid: 0, flagged: 0, envelope: 0, background: 0, total: w * h};
  const colours = {cut: 0x1666cc, rapid: 0x9aa0a6, flagged: 0xe01010, envelope: 0x22aa77, background: 0xffffff};
  for (let i = 0; i < px.length; i += 4) for (const [k, c] of Object.entries(colours)) if (near(i, c)) out[k]++;
  return out;
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    if not (ROOT / "labbridge/server/static/node_modules/three/build/three.module.js").exists():
        pytest.fail("three.js is not installed: run `make frontend`")
    tmp = tmp_path_factory.mktemp("browser3d")
    data = yaml.safe_load(CONFIG_PATH.read_text())
    data["machines"] = {k: data["machines"][k] for k in ("mill-1", "lathe-1")}
    config = tmp / "machines.yaml"
    config.write_text(yaml.safe_dump(data))
    proc = ServerProcess(["serve", "--demo", "--port", "0", "--config", str(config), "--data-dir", str(tmp / "data"),
                          "--poll-hz", "10", "--log-level", "warning"], cwd=ROOT)
    try:
        client = httpx.Client(base_url=proc.url, timeout=30)
        token = admin_first_sign_in(client, proc.password)
        auth = {"Authorization": f"Bearer {token}"}
        for role in ("operator", "trainer"):
            r = client.post("/api/users", headers=auth, json={"username": role, "password": password_of(role),
                                                              "role": role})
            assert r.status_code == 201, r.text
        proc.client, proc.auth = client, auth  # type: ignore[attr-defined]
        yield proc
    finally:
        proc.stop()


def check_in_page(page: Any, text: str, machine: str) -> None:
    page.goto(page.url.split("#")[0] + "#/programs")
    page.select_option("#program-machine", machine)
    page.fill("#program-text", text)
    page.click("#check-btn")
    page.wait_for_selector("#view-3d[data-ready=true]")
    page.wait_for_timeout(300)


def queue_program(server: ServerProcess, text: str, name: str, machine: str = "mill-1") -> int:
    c, auth = server.client, server.auth  # type: ignore[attr-defined]
    h = c.post("/api/programs/text", headers=auth, json={"name": name, "text": text}).json()["hash"]
    r = c.post("/api/queue", headers=auth, json={"program": h, "machine": machine})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_path_and_envelope_are_drawn_and_a_click_selects_a_line(browser: Any, server: ServerProcess) -> None:
    page = sign_in(browser, server, "trainer", password_of("trainer"), viewport={"width": 1400, "height": 1000})
    check_in_page(page, MILL, "mill-1")
    px = page.evaluate(READ_PIXELS, "#view-3d")
    assert px["cut"] > 200 and px["envelope"] > 200 and px["flagged"] > 20, px
    assert px["background"] > px["total"] * 0.5, px
    page.screenshot(path=str(ARTIFACTS / "toolpath-3d-mill.png"), full_page=True)
    # click the middle of the segment drawing line 9 (G1 X0 Y20 from X60 Y16): the listing shows line 9
    point = page.evaluate("""(line) => {
      const v = document.querySelector('#view-3d').toolpathView, tp = v.tp;
      let i = 0; while (tp.lines[i] !== line) i++;
      const a = new v.camera.position.constructor(...tp.positions.slice(3 * (i - 1), 3 * i));
      const b = new v.camera.position.constructor(...tp.positions.slice(3 * i, 3 * i + 3));
      const m = a.add(b).multiplyScalar(0.5).project(v.camera), r = v.canvas.getBoundingClientRect();
      return [r.left + (m.x + 1) / 2 * r.width, r.top + (1 - m.y) / 2 * r.height];
    }""", 9)
    page.mouse.click(*point)
    page.wait_for_selector("#listing li.current")
    assert page.get_attribute("#listing li.current", "id") == "L9"
    assert "line 9" in page.text_content("#view3d-info")
    page.click('.diag[data-line="18"]')  # and back: a diagnostic's line is highlighted in the view
    assert page.evaluate("document.querySelector('#view-3d').toolpathView.selected") == [18, 18]
    for preset in ("top", "front", "side", "iso"):
        page.click(f'#view3d-box [data-preset="{preset}"]')
        assert page.evaluate("document.querySelector('#view-3d').toolpathView.preset") == preset
    assert not page.errors


def test_lathe_is_shown_in_xz(browser: Any, server: ServerProcess) -> None:
    page = sign_in(browser, server, "trainer", password_of("trainer"), viewport={"width": 1400, "height": 1000})
    check_in_page(page, LATHE, "lathe-1")
    view = page.evaluate("""() => { const v = document.querySelector('#view-3d').toolpathView;
      return {preset: v.preset, up: v.camera.up.toArray(), lathe: v.lathe}; }""")
    assert view == {"preset": "xz", "up": [1, 0, 0], "lathe": True}
    px = page.evaluate(READ_PIXELS, "#view-3d")
    assert px["cut"] > 30 and px["envelope"] > 100 and px["flagged"] == 0, px
    assert page.is_visible('#view3d-box [data-preset="xz"]') and not page.is_visible('#view3d-box [data-preset="top"]')
    page.screenshot(path=str(ARTIFACTS / "toolpath-3d-lathe.png"), full_page=True)
    assert not page.errors


def test_tool_follows_a_running_job(browser: Any, server: ServerProcess) -> None:
    c, auth = server.client, server.auth  # type: ignore[attr-defined]
    entry = queue_program(server, JOB, "job.nc")
    page = sign_in(browser, server, "operator", password_of("operator"), viewport={"width": 1400, "height": 1000})
    if c.get("/api/machines/mill-1", headers=auth).json()["state"]["homed"] is not True:
        assert c.post("/api/machines/mill-1/home", headers=auth).status_code == 200
    wait_for(lambda: c.get("/api/machines/mill-1", headers=auth).json()["state"]["state"] == "Idle", timeout=60,
             what="mill-1 homed and idle")
    r = c.post(f"/api/queue/{entry}/start", headers=auth)
    assert r.status_code == 200, r.text
    box = '.card[data-machine="mill-1"] .card-3d'
    page.wait_for_selector(f'{box}[data-ready=true][data-mode=job]', timeout=30_000)
    seen = set()
    for _ in range(30):
        pos = page.evaluate(f"""() => {{ const v = document.querySelector('{box}').toolpathView;
          return v.tool.visible ? v.tool.position.toArray().map((x) => Math.round(x)) : null; }}""")
        if pos:
            seen.add(tuple(pos))
        page.wait_for_timeout(200)
        if len(seen) > 3:
            break
    assert len(seen) > 3, seen  # the tool moved with the status reports
    # the part already cut follows the acknowledged lines (the first come after the long rapid from home)
    page.wait_for_function(f"document.querySelector('{box}').toolpathView.path.material.uniforms.uDone.value > 4",
                           timeout=60_000)
    px = page.evaluate(READ_PIXELS, box)  # the card draws the path (in its cut colour too) on white
    assert px["envelope"] > 200 and px["background"] > px["total"] * 0.5, px
    page.screenshot(path=str(ARTIFACTS / "toolpath-3d-running-job.png"), full_page=True)
    c.post("/api/machines/mill-1/cancel", headers=auth)
    assert not page.errors


def test_dry_run_at_16x_runs_to_the_end(browser: Any, server: ServerProcess) -> None:
    entry = queue_program(server, JOB, "rehearse.nc")
    page = sign_in(browser, server, "trainer", password_of("trainer"), viewport={"width": 1400, "height": 1000})
    page.click(f'.card[data-machine="mill-1"] .qitem[data-entry="{entry}"] button.dry-run[data-speed="16"]')
    banner = '.card[data-machine="mill-1"] .dry-run-banner'
    page.wait_for_selector(f"{banner}:not([hidden])", timeout=30_000)
    assert "DRY RUN — the machine does not move" in page.text_content(banner)
    box = '.card[data-machine="mill-1"] .card-3d'
    page.wait_for_selector(f'{box}[data-ready=true][data-mode=dry-run]', timeout=30_000)
    page.wait_for_timeout(600)
    page.screenshot(path=str(ARTIFACTS / "toolpath-3d-dry-run.png"), full_page=True)
    moved = page.evaluate(f"document.querySelector('{box}').toolpathView.tool.visible")
    assert moved
    page.wait_for_selector(f"{banner}[hidden]", state="attached", timeout=120_000)
    page.goto(page.url.split("#")[0] + "#/queue")
    row = f'#queue-table tr[data-entry="{entry}"] .rehearsed'
    page.wait_for_selector(row)
    text = page.text_content(row)
    assert "rehearsed at 16×: completed" in text and "simulated" in text, text
    page.screenshot(path=str(ARTIFACTS / "queue-rehearsed.png"), full_page=True)
    assert not page.errors


def test_lathe_dry_run_shows_the_banner_and_its_twin_in_xz(browser: Any, server: ServerProcess) -> None:
    c, auth = server.client, server.auth  # type: ignore[attr-defined]
    entry = queue_program(server, (ROOT / "examples" / "lathe-1-shaft.nc").read_text(), "shaft.nc", "lathe-1")
    page = sign_in(browser, server, "trainer", password_of("trainer"), viewport={"width": 1400, "height": 1000})
    card = '.card[data-machine="lathe-1"]'
    banner = f"{card} .dry-run-banner"
    dry = lambda: c.get("/api/machines/lathe-1/dry-run", headers=auth).json()  # noqa: E731
    # at 1x first: hold, resume and stop it from the banner's own buttons
    page.click(f'{card} .qitem[data-entry="{entry}"] button.dry-run[data-speed="1"]')
    wait_for(lambda: dry()["twin_state"] == "Run" and dry()["job_state"] == "running", timeout=60,
             what="the twin to run")
    page.click(f'{banner} button[data-action="hold"]')
    # (the short tape may be read whole before the hold: the twin's control is held all the same)
    held = wait_for(lambda: (lambda d: d if d["twin_state"] == "Hold" else None)(dry()), timeout=30,
                    what="the twin to hold")
    assert held["job_state"] in ("holding", "completed"), held
    page.click(f'{banner} button[data-action="resume"]:not([hidden])', timeout=30_000)
    wait_for(lambda: dry()["twin_state"] == "Run", timeout=30, what="the twin to run again")
    page.click(f'{banner} button[data-action="stop"]')
    page.wait_for_selector(f"{banner}[hidden]", state="attached", timeout=60_000)
    assert dry()["result"]["outcome"] == "cancelled"
    # then at 16x to the end
    page.click(f'{card} .qitem[data-entry="{entry}"] button.dry-run[data-speed="16"]')
    page.wait_for_selector(f"{banner}:not([hidden])", timeout=30_000)
    assert "DRY RUN — the machine does not move" in page.text_content(banner)
    assert page.is_hidden('.card[data-machine="mill-1"] .dry-run-banner')  # only the lathe rehearses
    box = f"{card} .card-3d"
    page.wait_for_selector(f"{box}[data-ready=true][data-mode=dry-run]", timeout=30_000)
    page.wait_for_function(f"document.querySelector('{box}').toolpathView.tool.visible", timeout=30_000)
    # the twin's tool leaves the turret's home (X 160, Z 0) on the card's view
    page.wait_for_function(f"document.querySelector('{box}').toolpathView.tool.position.x < 150", timeout=30_000)
    view = page.evaluate(f"""() => {{ const v = document.querySelector('{box}').toolpathView;
      return {{preset: v.preset, lathe: v.lathe, tool: v.tool.position.toArray()}}; }}""")
    assert view["preset"] == "xz" and view["lathe"], view
    x, y, z = view["tool"]  # the twin's tool in the lathe's plane: X a diameter within the envelope, Y 0
    assert -2.0 <= x <= 160.0 and y == 0 and -260.0 <= z <= 0.0, view
    page.screenshot(path=str(ARTIFACTS / "toolpath-3d-lathe-dry-run.png"), full_page=True)
    page.wait_for_selector(f"{banner}[hidden]", state="attached", timeout=120_000)
    lathe = c.get("/api/machines/lathe-1", headers=auth).json()["state"]
    assert lathe["job"] is None or lathe["job"]["program"] != "shaft.nc"  # the machine itself ran nothing
    page.goto(page.url.split("#")[0] + "#/queue")
    row = f'#queue-table tr[data-entry="{entry}"] .rehearsed'
    page.wait_for_selector(row)
    text = page.text_content(row)
    assert "rehearsed at 16×: completed" in text and "simulated" in text, text
    assert not page.errors
