"""The noVNC page in a real browser (root, Debian's chromium, real QEMU): the URL that
`openstack console url show --novnc` gives for a VM loads, noVNC connects through our
WebSocket proxy with the one-time token, and its canvas shows the VM's screen (not blank),
with no Content-Security-Policy violation on the way.

Playwright drives /usr/bin/chromium (never a downloaded browser), headless, no sandbox.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from tests.conftest import LiveCloud

pytestmark = pytest.mark.system

CHROMIUM = "/usr/bin/chromium"
IMAGES = Path("/var/cache/pocketstack/test-images")
if os.geteuid() != 0:
    pytest.skip("VMs need root", allow_module_level=True)
if not Path(CHROMIUM).exists():
    pytest.skip("no /usr/bin/chromium (Debian chromium; scripts/install)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api")
if not shutil.which("qemu-system-x86_64"):
    pytest.skip("qemu-system-x86_64 not installed", allow_module_level=True)
if not all((IMAGES / f).is_file() for f in ("vmlinuz", "initramfs.gz")):
    pytest.skip(f"no VM test images in {IMAGES} (scripts/build-test-images --with-kernel)",
                allow_module_level=True)


ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]


@pytest.fixture(scope="module")
def vm_cloud():
    base = Path(tempfile.mkdtemp(prefix="ps-novnc-"))
    live = LiveCloud(base / "data", extra_env={"POCKETSTACK_COMPUTE__DRIVER": "qemu"})
    try:
        live.start()
        live.openstack("flavor", "create", "--ram", "256", "--disk", "0", "--vcpus", "1",
                       "ps-novnc-256")
        srv = live.openstack("--os-compute-api-version", "2.37", "server", "create",
                             "--image", "busybox-vm", "--flavor", "ps-novnc-256", "--nic",
                             "none", "--wait", "ps-novnc-vm", "-f", "json", parse=False)
        import json

        sid = json.loads(srv)["id"]
        deadline = time.monotonic() + 120
        while "pocketstack-busybox: booted" not in live.openstack(
                "console", "log", "show", sid, parse=False):
            assert time.monotonic() < deadline, "the VM did not boot"
            time.sleep(1)
        yield live, sid
    finally:
        live.destroy(base)


# JS: how many distinct colours the noVNC canvas shows (1 = blank)
COLOURS = """() => {
  const c = document.querySelector('#screen canvas');
  if (!c || !c.width || !c.height) return 0;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const seen = new Set();
  for (let i = 0; i < d.length && seen.size < 50; i += 4 * 7)
    seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
  return seen.size;
}"""


def test_novnc_canvas_shows_the_vm_screen(vm_cloud):
    live, sid = vm_cloud
    url = live.openstack("console", "url", "show", "--novnc", sid)["url"]
    problems: list[str] = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1024, "height": 768})
            page.on("console", lambda m: problems.append(m.text)
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            t0 = time.monotonic()
            page.goto(url)
            page.wait_for_function("() => document.getElementById('status')"
                                   ".textContent.startsWith('Connected')", timeout=30000)
            connected = time.monotonic() - t0
            deadline = time.monotonic() + 30
            colours = 0
            while time.monotonic() < deadline:
                colours = page.evaluate(COLOURS)
                if colours > 1:
                    break
                time.sleep(0.5)
            status = page.evaluate("() => document.getElementById('status').textContent")
        finally:
            browser.close()
    print(f"noVNC connected in {connected:.2f}s; {colours} colours; status {status!r}")
    assert colours > 1, f"the canvas stayed blank (status {status!r}, errors {problems})"
    assert not [m for m in problems if "Content Security Policy" in m], problems


def test_spice_html5_page_connects(vm_cloud):
    live, sid = vm_cloud
    url = live.openstack("console", "url", "show", "--spice", sid)["url"]
    problems: list[str] = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1024, "height": 768})
            page.on("console", lambda m: problems.append(m.text)
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(url)
            # spice-html5 adds a canvas per display surface once the display channel runs
            page.wait_for_selector("#spice-screen canvas", state="attached", timeout=30000)
            size = page.evaluate("() => { const c = document.querySelector("
                                 "'#spice-screen canvas'); return [c.width, c.height]; }")
        finally:
            browser.close()
    assert size[0] > 0 and size[1] > 0
    assert not [m for m in problems if "Content Security Policy" in m], problems


def test_serial_page_types_a_command(vm_cloud):
    """Our xterm.js page on the serial WebSocket: keys typed in the browser reach the
    VM's shell and its answer shows in the terminal."""
    live, sid = vm_cloud
    ws = live.openstack("console", "url", "show", "--serial", sid)["url"]
    parts = urlsplit(ws)
    page_url = (f"http://{parts.netloc}/compute/console/serial.html?path="
                + quote(parts.path.lstrip("/") + "?" + parts.query, safe=""))
    problems: list[str] = []
    tag = os.urandom(3).hex()
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("console", lambda m: problems.append(m.text)
                    if m.type == "error" else None)
            page.goto(page_url)
            page.wait_for_function("() => document.getElementById('status').textContent"
                                   " === 'connected'", timeout=30000)
            page.click("#terminal")
            page.keyboard.type(f"echo ps-xterm-{tag}-$((6*7))\n")
            page.wait_for_function(
                "(want) => document.querySelector('#terminal .xterm-rows')"
                ".textContent.includes(want)", arg=f"ps-xterm-{tag}-42", timeout=30000)
        finally:
            browser.close()
    assert not [m for m in problems if "Content Security Policy" in m], problems
