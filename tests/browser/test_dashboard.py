"""The dashboard in a real browser (root, Debian's chromium, real container servers): demo
logs in, launches an instance from the form and watches it reach ACTIVE without a reload,
launches one no host can take and reads the scheduler's reason in the fault card, switches
project, logs out; admin disables a compute service with a reason and creates a flavor
with extra specs. No Content-Security-Policy violation on any page.

Playwright drives /usr/bin/chromium (never a downloaded browser), headless. One cloud for
the module. A failing test leaves a screenshot in $POCKETSTACK_SCREENSHOTS
(default /tmp/pocketstack-screenshots).
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.conftest import LiveCloud

pytestmark = pytest.mark.system

CHROMIUM = "/usr/bin/chromium"
if os.geteuid() != 0:
    pytest.skip("container servers need root", allow_module_level=True)
if not Path(CHROMIUM).exists():
    pytest.skip("no /usr/bin/chromium (Debian chromium; scripts/install)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]
SHOTS = Path(os.environ.get("POCKETSTACK_SCREENSHOTS", "/tmp/pocketstack-screenshots"))
HUGE = "ps-dash-huge"  # a flavor whose disk no host has
ROOTFS = Path("/var/cache/pocketstack/test-images/rootfs.tar")
SEED = Path("/work/shared/seeds/000_ffd084f2b2682f6f.txt")
if not ROOTFS.is_file():
    pytest.skip(f"no {ROOTFS} (scripts/build-test-images)", allow_module_level=True)


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def live():
    base = Path(tempfile.mkdtemp(prefix="ps-dash-"))
    cloud = LiveCloud(base / "data", extra_env={"POCKETSTACK_COMPUTE__DRIVER": "container"})
    try:
        cloud.start()
        cloud.openstack("flavor", "create", "--ram", "64", "--disk", "100000", "--vcpus", "1",
                        HUGE)
        # seed 000's templates name the image "centos7": the busybox root file system here
        cloud.openstack("image", "create", "centos7", "--file", str(ROOTFS), "--disk-format",
                        "raw", "--container-format", "docker", "--public")
        yield cloud
    finally:
        cloud.destroy(base)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser context (its own cookies) per test; a screenshot if the test failed;
    any CSP violation or page error fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(str(e)))
    failed_before = request.session.testsfailed
    yield pg
    if request.session.testsfailed > failed_before:
        SHOTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(SHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], \
        problems


def log_in(page, live, user: str) -> None:
    page.goto(live.base_url + "/")  # a browser at the root is sent to the dashboard
    expect(page).to_have_url(re.compile(r"/dashboard/login"))
    page.fill("#username", user)
    page.fill("#password", live.password(user))
    page.click("#login")
    expect(page.locator("h1")).to_contain_text("Overview")


def launch(page, name: str, flavor: str) -> None:
    page.click("text=Instances")
    page.click("#launch-link")
    page.fill("#name", name)
    page.select_option("#image", label="busybox")
    page.select_option("#flavor", value=flavor)
    page.click("#launch")


def test_demo_launches_an_instance_and_watches_it_become_active(page, live):
    log_in(page, live, "demo")
    name = uniq("ps-dash")
    flavor = live.openstack("flavor", "show", "m1.tiny")["id"]
    launch(page, name, flavor)
    expect(page.locator("h1")).to_contain_text(name)
    # a marker only this page load has: still there at ACTIVE means no reload happened
    page.evaluate("() => { window.__psMarker = 1; }")
    expect(page.locator("#server-status")).to_have_text("ACTIVE", timeout=90000)
    assert page.evaluate("() => window.__psMarker") == 1
    expect(page.locator("#action-log")).to_contain_text("create")
    # the list shows it too
    page.click("text=Instances")
    expect(page.locator(f"tr:has-text('{name}') .status")).to_have_text("ACTIVE")


def test_unschedulable_instance_shows_the_reason_in_the_fault_card(page, live):
    log_in(page, live, "demo")
    flavor = live.openstack("flavor", "show", HUGE)["id"]
    launch(page, uniq("ps-dash-huge"), flavor)
    card = page.locator("#fault-card")
    expect(card).to_be_visible(timeout=60000)
    expect(page.locator("#fault-message")).to_contain_text("No valid host was found")
    expect(page.locator("#server-status")).to_have_text("ERROR")
    # the same message the API gives
    sid = page.url.rsplit("/", 1)[-1]
    api = live.openstack("server", "show", sid, user="demo")
    assert api["fault"]["message"] in page.locator("#fault-message").inner_text()


def test_switch_project_and_log_out(page, live):
    pname = uniq("ps-dash-proj")
    live.openstack("project", "create", "--domain", "default", pname)
    live.openstack("role", "add", "--user", "demo", "--user-domain", "default", "--project",
                   pname, "--project-domain", "default", "member")
    log_in(page, live, "demo")
    expect(page.locator("h1 small")).to_have_text("demo")
    page.select_option("#project-switch", label=pname)  # dashboard.js submits on change
    expect(page.locator("h1 small")).to_have_text(pname)
    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/dashboard/login$"))
    page.goto(live.base_url + "/dashboard/instances")
    expect(page).to_have_url(re.compile(r"/dashboard/login"))


def test_admin_disables_a_compute_service_with_a_reason(page, live):
    log_in(page, live, "admin")
    page.click("text=Compute services")
    row = page.locator("tr[data-binary='nova-compute']").first
    host = row.get_attribute("data-host")
    reason = "seed 004: maintenance window"
    row.locator("input.reason").fill(reason)
    row.locator("button.act-disable").click()
    row = page.locator(f"tr[data-binary='nova-compute'][data-host='{host}']")
    expect(row.locator(".svc-status")).to_have_text("disabled")
    expect(row.locator(".svc-reason")).to_have_text(reason)
    api = live.openstack("compute", "service", "list", "--long")
    assert any(s["Host"] == host and s["Status"] == "disabled" and
               s["Disabled Reason"] == reason for s in api)
    row.locator("button.act-enable").click()  # the other tests need the host
    expect(page.locator(f"tr[data-host='{host}'] .svc-status")).to_have_text("enabled")


def test_admin_creates_a_flavor_with_extra_specs(page, live):
    log_in(page, live, "admin")
    page.click("text=Flavors")
    name = uniq("ps-dash-gpu")
    page.fill("#flavor-name", name)
    page.fill("#flavor-vcpus", "2")
    page.fill("#flavor-ram", "1024")
    page.fill("#flavor-disk", "5")
    page.fill("#flavor-specs", "pci_passthrough:alias=K20m:1\nhw:cpu_policy=shared")
    page.click("#flavor-create")
    row = page.locator(f"tr[data-name='{name}']")
    expect(row.locator(".specs")).to_contain_text("pci_passthrough:alias=K20m:1")
    shown = live.openstack("flavor", "show", name)
    props = shown["properties"]
    assert props["pci_passthrough:alias"] == "K20m:1" and props["hw:cpu_policy"] == "shared"


def test_network_subnet_and_router_are_linked_in_the_topology(page, live):
    log_in(page, live, "demo")
    page.click("nav >> text=Networks")
    net, router = uniq("ps-dash-net"), uniq("ps-dash-r")
    page.fill("#net-name", net)
    page.fill("#net-cidr", "10.77.3.0/24")
    page.click("#net-create")
    expect(page.locator("#networks")).to_contain_text(net)
    expect(page.locator("#networks")).to_contain_text("10.77.3.0/24")
    page.fill("#router-name", router)
    page.select_option("#router-gw", label="public")
    page.select_option("#router-subnet", label=f"{net}-subnet 10.77.3.0/24")
    page.click("#router-create")
    expect(page.locator("#routers")).to_contain_text(router)
    page.click("nav >> text=Topology")
    net_id = live.openstack("network", "show", net, user="demo")["id"]
    router_id = live.openstack("router", "show", router, user="demo")["id"]
    public_id = live.openstack("network", "show", "public", user="demo")["id"]
    svg = page.locator("svg#topology")
    expect(svg.locator(f"a.router[data-id='{router_id}']")).to_contain_text(router)
    expect(svg.locator(f"a.network[data-id='{net_id}']")).to_contain_text(net)
    # the router's two links: its interface network and its gateway network
    expect(svg.locator(f"line[data-node='{router_id}'][data-network='{net_id}']")).to_have_count(1)
    expect(svg.locator(f"line[data-node='{router_id}'][data-network='{public_id}']")
           ).to_have_count(1)
    svg.locator(f"a.network[data-id='{net_id}']").click()  # nodes link to their pages
    expect(page).to_have_url(re.compile(r"/dashboard/networks$"))
    # a second network in demo's project would make later boots without a NIC choice
    # ambiguous (Nova's 409 NetworkAmbiguous): remove what this test made
    live.openstack("router", "remove", "subnet", router, f"{net}-subnet", user="demo")
    live.openstack("router", "delete", router, user="demo")
    live.openstack("network", "delete", net, user="demo")


def test_volume_create_and_attach(page, live):
    log_in(page, live, "demo")
    server = uniq("ps-dash-vm")
    flavor = live.openstack("flavor", "show", "m1.tiny")["id"]
    launch(page, server, flavor)
    expect(page.locator("#server-status")).to_have_text("ACTIVE", timeout=90000)
    page.click("nav >> text=Volumes")
    vol = uniq("ps-dash-vol")
    page.fill("#volume-name", vol)
    page.fill("#volume-size", "1")
    page.click("#volume-create")
    row = page.locator(f"tr[data-name='{vol}']")
    expect(row.locator(".vol-status")).to_have_text("available", timeout=60000)
    page.select_option("#attach-volume-id", label=vol)
    page.select_option("#attach-server-id", label=server)
    page.click("#volume-attach")
    row = page.locator(f"tr[data-name='{vol}']")
    expect(row.locator(".vol-status")).to_have_text("in-use", timeout=60000)
    expect(row.locator(".vol-attached")).to_contain_text(server)
    shown = live.openstack("volume", "show", vol, user="demo")
    assert shown["status"] == "in-use"
    row.locator("button.act-detach").click()
    expect(page.locator(f"tr[data-name='{vol}'] .vol-status")).to_have_text("available",
                                                                            timeout=60000)


def test_image_upload_shows_progress_and_lands_active(page, live):
    log_in(page, live, "demo")
    page.click("nav >> text=Images")
    name = uniq("ps-dash-img")
    size = 6 * 1024 * 1024
    page.fill("#image-name", name)
    page.set_input_files("#image-file", files=[{
        "name": "disk.raw", "mimeType": "application/octet-stream",
        "buffer": bytes(range(256)) * (size // 256)}])
    # every progress event the bar gets, as the user would see it move
    page.evaluate("""() => { window.__psProgress = [];
      new MutationObserver(() => window.__psProgress.push(
        document.getElementById('upload-progress').value)).observe(
        document.getElementById('upload-progress'), {attributes: true}); }""")
    page.click("#image-submit")
    expect(page.locator("#upload-done")).to_be_visible(timeout=60000)
    bar = page.locator("#upload-progress")
    assert bar.is_visible()
    assert float(bar.get_attribute("max") or 0) == size or bar.evaluate("b => b.max") == size
    assert bar.evaluate("b => b.value") == size
    seen = page.evaluate("() => window.__psProgress")
    assert seen and max(seen) == size
    page.click("#upload-done")
    expect(page.locator(f"tr[data-name='{name}'] .img-status")).to_have_text("active")
    shown = live.openstack("image", "show", name, user="demo")
    assert shown["size"] == size and shown["status"] == "active"


def test_keypair_created_downloads_the_private_key_once(page, live):
    log_in(page, live, "demo")
    page.click("nav >> text=Key pairs")
    name = uniq("ps-dash-key")
    page.fill("#keypair-name", name)
    with page.expect_download() as dl:
        page.click("#keypair-create-button")
    download = dl.value
    assert download.suggested_filename == f"{name}.pem"
    key = Path(download.path()).read_text()
    assert "PRIVATE KEY" in key
    page.goto(live.base_url + "/dashboard/keypairs")
    expect(page.locator(f"tr[data-name='{name}']")).to_be_visible()
    assert live.openstack("keypair", "show", name, user="demo")["name"] == name


@pytest.mark.skipif(not SEED.exists(), reason="seed 000 text not available")
def test_seed000_heat_template_from_a_file_with_its_parameters_form(page, live, tmp_path):
    lines = SEED.read_text(encoding="utf-8").replace("\xa0", " ").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("heat_template_version")]
    text = "\n".join(lines[starts[1]:])
    template = text[:text.index("mountpoint: /dev/vdc") + len("mountpoint: /dev/vdc")] + "\n"
    log_in(page, live, "demo")
    page.click("nav >> text=Stacks")
    page.click("#stack-launch-link")
    page.set_input_files("#template-file", files=[{
        "name": "seed000.yaml", "mimeType": "text/yaml", "buffer": template.encode()}])
    expect(page.locator("#template-text")).to_have_value(template)  # read by dashboard.js
    page.click("#stack-next")
    options = page.locator("#param-instance_type option").all_inner_texts()
    assert options == ["m1.small", "m1.medium", "m1.large"]
    name = uniq("ps-dash-stack")
    page.fill("#stack-name", name)
    page.select_option("#param-image_id", "centos7")
    page.fill("#param-volume_size", "1")
    page.click("#stack-create")
    row = page.locator(f"#stack-table tr[data-name='{name}']")
    expect(row.locator(".stack-status")).to_have_text("CREATE_COMPLETE", timeout=120000)
    row.locator("a").click()
    for resource in ("nova_instance", "cinder_volume", "volume_attachment"):
        expect(page.locator("#stack-resources")).to_contain_text(resource)
    page.once("dialog", lambda d: d.accept())  # "Delete it?"
    page.click("#stack-delete")
    expect(page).to_have_url(re.compile(r"/dashboard/stacks$"))
    expect(page.locator(f"#stack-table tr[data-name='{name}']")).to_have_count(0, timeout=60000)
