"""The dashboard's account and safety parts in Chromium: the one-time password asks for a new one, a share
link's QR code lets a phone watch without a password, and a full disk shows "storage full" to the admin.

The server's data directory is a small tmpfs where this user may mount one (root, as in CI), so that the disk
can really be filled; elsewhere the storage test is skipped and the other two run on a plain directory.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import ARTIFACTS, browser  # noqa: F401 (fixture)
from tests.web_support import ADMIN_PASSWORD, ROOT, ServerProcess, write_lab_config

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, bool]]:
    """A directory for the server's data, and whether it is a tmpfs of its own (that may be filled)."""
    base = tmp_path_factory.mktemp("browser-accounts")
    mount = base / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)], capture_output=True,
                          timeout=20)
    try:
        yield mount, done.returncode == 0
    finally:
        if done.returncode == 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=20)


@pytest.fixture(scope="module")
def server(disk: tuple[Path, bool]) -> Iterator[ServerProcess]:
    mount, _ = disk
    config = write_lab_config(mount.parent / "machines.yaml", unreachable=False)
    proc = ServerProcess(["serve", "--demo", "--port", "0", "--config", str(config), "--data-dir",
                          str(mount / "data"), "--poll-hz", "10", "--log-level", "warning"], cwd=ROOT)
    try:
        yield proc
    finally:
        proc.stop()


def open_page(browser: Any, url: str, **context_kw: Any) -> Any:
    # wait_for_function evaluates its predicate with eval, which the dashboard's CSP forbids (the dashboard test
    # suite checks the app under its CSP without this bypass)
    page = browser.new_context(bypass_csp=True, **context_kw).new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    return page


def sign_in_admin(browser: Any, server: ServerProcess) -> Any:
    page = open_page(browser, server.url + "/")
    page.fill("#login-form input[name=username]", "admin")
    page.fill("#login-form input[name=password]", ADMIN_PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector('.card[data-machine="mill-1"]')
    return page


def test_first_sign_in_asks_for_a_new_password(browser: Any, server: ServerProcess) -> None:
    page = open_page(browser, server.url + "/")
    page.fill("#login-form input[name=username]", "admin")
    page.fill("#login-form input[name=password]", server.password)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#view-first-password:not([hidden])")
    page.fill("#first-password-form input[name=password]", "password123")
    page.fill("#first-password-form input[name=repeat]", "password123")
    page.click("#first-password-form button[type=submit]")
    page.wait_for_function("document.querySelector('#first-password-error').textContent.includes('common')")
    page.fill("#first-password-form input[name=password]", ADMIN_PASSWORD)
    page.fill("#first-password-form input[name=repeat]", ADMIN_PASSWORD)
    page.click("#first-password-form button[type=submit]")
    page.wait_for_selector('.card[data-machine="mill-1"]')
    assert "admin" in page.text_content("#whoami")
    page.screenshot(path=str(ARTIFACTS / "first-password-done.png"), full_page=True)


def test_share_link_qr_lets_a_phone_watch_without_a_password(browser: Any, server: ServerProcess) -> None:
    admin = sign_in_admin(browser, server)
    admin.click("#nav a[data-view=share]")
    admin.fill("#share-form input[name=label]", "class 7b")
    admin.click("#share-form button[type=submit]")
    admin.wait_for_selector("#share-new img.qr")
    assert admin.evaluate("document.querySelector('#share-new img.qr').naturalWidth") > 50  # the QR code drew
    url = admin.text_content("#share-new a")
    assert "#share=" in url
    admin.screenshot(path=str(ARTIFACTS / "share-link.png"), full_page=True)
    phone = open_page(browser, url.replace(url.split("/#")[0], server.url), viewport={"width": 390, "height": 844},
                      is_mobile=True, has_touch=True)
    phone.wait_for_selector('.card[data-machine="mill-1"] .mpos-X')
    phone.wait_for_selector("#link-state.up")
    assert "share:class 7b" in phone.text_content("#whoami")
    assert "#share=" not in phone.url  # the token left the address bar
    for selector in ("#nav a[data-view=queue]", "#nav a[data-view=programs]", "#hold-all"):
        assert not phone.is_visible(selector), selector
    admin.click("#share-table button")  # revoke: the phone is signed out
    phone.wait_for_selector("#view-login:not([hidden])")


def test_a_full_disk_shows_storage_full_to_the_admin(browser: Any, server: ServerProcess,
                                                    disk: tuple[Path, bool]) -> None:
    mount, is_tmpfs = disk
    if not is_tmpfs:
        pytest.skip("filling a disk needs a tmpfs of its own (mounting one needs root)")
    admin = sign_in_admin(browser, server)
    assert admin.is_hidden("#storage-banner")
    filler = mount / "filler.bin"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError:
            pass
    try:
        admin.click("#hold-all")  # a hold is answered and audited (in memory) while the disk is full
        admin.wait_for_selector("#storage-banner:not([hidden])")
        assert "Storage full" in admin.text_content("#storage-banner")
        admin.screenshot(path=str(ARTIFACTS / "storage-full.png"), full_page=True)
    finally:
        filler.unlink()
    admin.wait_for_selector("#storage-banner", state="hidden", timeout=30_000)
