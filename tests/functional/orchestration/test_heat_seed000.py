"""Seed 000 "plays with Heat": its two templates through `openstack stack create -t FILE`.

The seed page indents its YAML with U+00A0 (no-break spaces, as rendered HTML); no YAML
parser accepts those as indentation (heatclient parses the file client-side), so the test
turns them into plain spaces, which is what saving the snippet to a file gives. The
templates are otherwise used unchanged. They run as the demo user (whose project has
DevStack's private network for the server to boot on). Real servers and volumes must exist while the stack
lives and be gone after delete.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from test_heat_stacks import wait_status

SEED = Path("/work/shared/seeds/000_ffd084f2b2682f6f.txt")


def templates() -> tuple[str, str]:
    lines = SEED.read_text(encoding="utf-8").replace("\xa0", " ").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("heat_template_version")]
    single = "\n".join(lines[starts[0]:starts[0] + 12]) + "\n"
    advanced = "\n".join(lines[starts[1]:])
    end = advanced.index("mountpoint: /dev/vdc") + len("mountpoint: /dev/vdc")
    return single, advanced[:end] + "\n"


@pytest.fixture(scope="module")
def centos7(cloud, tmp_path_factory):
    """The image the templates name; created unless the cloud already has one."""
    images = cloud.openstack("image", "list", "--name", "centos7", "--public")
    if images:
        return images[0]["ID"]
    path = tmp_path_factory.mktemp("img") / "centos7.raw"
    path.write_bytes(b"\0" * 1024 * 1024)
    img = cloud.openstack("image", "create", "centos7", "--file", str(path), "--disk-format",
                          "raw", "--container-format", "bare", "--public")
    return img["id"]


@pytest.mark.skipif(not SEED.exists(), reason="seed 000 text not available")
def test_single_server_template(cloud, tmp_path, centos7):
    single, _ = templates()
    tfile = tmp_path / "single.yaml"
    tfile.write_text(single)
    name = f"ps-heat-seed-{uuid.uuid4().hex[:8]}"
    cloud.openstack("stack", "create", "-t", str(tfile), name, user="demo")
    wait_status(cloud, name, "CREATE_COMPLETE", user="demo")
    res = cloud.openstack("stack", "resource", "show", name, "my_instance", user="demo")
    server = cloud.openstack("server", "show", res["physical_resource_id"])
    assert server["status"] == "ACTIVE"
    cloud.openstack("stack", "delete", "--yes", "--wait", name, user="demo")
    gone = cloud.openstack("server", "show", res["physical_resource_id"], check=False)
    assert gone.returncode != 0


@pytest.mark.skipif(not SEED.exists(), reason="seed 000 text not available")
def test_server_volume_attachment_template(cloud, tmp_path, centos7):
    _, advanced = templates()
    tfile = tmp_path / "advanced.yaml"
    tfile.write_text(advanced)
    name = f"ps-heat-seed-{uuid.uuid4().hex[:8]}"
    # A constraint violation is refused before anything is created.
    bad = cloud.openstack("stack", "create", "-t", str(tfile), "--parameter",
                          "instance_type=m1.tiny", name, check=False, user="demo")
    assert bad.returncode != 0
    assert "Value must be one of 'm1.small', 'm1.medium' or 'm1.large'." in bad.stderr
    cloud.openstack("stack", "create", "-t", str(tfile), "--parameter", "volume_size=2",
                    "--parameter", "instance_type=m1.small", name, user="demo")
    wait_status(cloud, name, "CREATE_COMPLETE", user="demo")
    rows = {r["resource_name"]: r for r in cloud.openstack("stack", "resource", "list", name, user="demo")}
    server_id = rows["nova_instance"]["physical_resource_id"]
    volume_id = rows["cinder_volume"]["physical_resource_id"]
    volume = cloud.openstack("volume", "show", volume_id)
    assert volume["size"] == 2 and volume["status"] == "in-use"
    assert volume["attachments"][0]["server_id"] == server_id
    assert volume["attachments"][0]["device"] == "/dev/vdc"
    assert cloud.openstack("server", "show", server_id)["status"] == "ACTIVE"
    cloud.openstack("stack", "delete", "--yes", "--wait", name, user="demo")
    assert cloud.openstack("volume", "show", volume_id, check=False).returncode != 0
    assert cloud.openstack("server", "show", server_id, check=False).returncode != 0
