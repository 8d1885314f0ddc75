"""Seed 000's advanced Heat template launched through the dashboard's stack form: the
parameters form is generated from the template (its allowed_values become a select), a
constraint violation is shown with Heat's own message, the stack completes, its page shows
resources and events, and delete removes it."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest

from tests.functional.dashboard.conftest import csrf_of

SEED = Path("/work/shared/seeds/000_ffd084f2b2682f6f.txt")
pytestmark = pytest.mark.skipif(not SEED.exists(), reason="seed 000 text not available")


def advanced_template() -> str:
    # The seed page indents with U+00A0 (rendered HTML); saving the snippet gives spaces.
    lines = SEED.read_text(encoding="utf-8").replace("\xa0", " ").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("heat_template_version")]
    text = "\n".join(lines[starts[1]:])
    return text[:text.index("mountpoint: /dev/vdc") + len("mountpoint: /dev/vdc")] + "\n"


@pytest.fixture(scope="module")
def centos7(cloud, tmp_path_factory):
    images = cloud.openstack("image", "list", "--name", "centos7", "--public")
    if images:
        return images[0]["ID"]
    path = tmp_path_factory.mktemp("img") / "centos7.raw"
    path.write_bytes(b"\0" * 1024 * 1024)
    return cloud.openstack("image", "create", "centos7", "--file", str(path), "--disk-format",
                           "raw", "--container-format", "bare", "--public")["id"]


def test_seed000_template_through_the_parameters_form(cloud, demo_web, centos7):
    template = advanced_template()
    page = demo_web.get("/dashboard/stacks/launch")
    csrf = csrf_of(page.text)
    r = demo_web.post("/dashboard/stacks/launch", data={
        "csrf_token": csrf, "step": "template", "template": template})
    assert r.status_code == 200, r.text[:2000]
    form = r.text
    select = re.search(r'<select name="param_instance_type".*?</select>', form, re.S).group(0)
    assert re.findall(r"<option[^>]*>([^<]+)</option>", select) == [
        "m1.small", "m1.medium", "m1.large"]
    assert 'name="param_volume_size"' in form and 'name="param_availability_zone"' in form
    name = f"ps-dash-stack-{uuid.uuid4().hex[:6]}"
    base = {"csrf_token": csrf, "step": "params", "template": template, "stack_name": name,
            "param_image_id": "centos7", "param_availability_zone": "nova",
            "param_volume_size": "2"}
    # a value outside the constraint: Heat's own message, the form kept
    r = demo_web.post("/dashboard/stacks/launch", data={**base, "param_instance_type": "m1.tiny"})
    assert r.status_code == 400
    assert "Value must be one of &#39;m1.small&#39;, &#39;m1.medium&#39; or &#39;m1.large&#39;." \
        in r.text
    assert 'name="param_instance_type"' in r.text
    r = demo_web.post("/dashboard/stacks/launch", data={**base, "param_instance_type": "m1.small"})
    assert r.status_code == 303, r.text[:2000]
    stack = cloud.openstack("stack", "show", name, user="demo")
    deadline = time.monotonic() + 60
    while stack["stack_status"] != "CREATE_COMPLETE":
        assert time.monotonic() < deadline and "FAILED" not in stack["stack_status"], stack
        time.sleep(0.2)
        stack = cloud.openstack("stack", "show", name, user="demo")
    page = demo_web.get(f"/dashboard/stacks/{stack['id']}")
    assert page.status_code == 200
    for resource in ("nova_instance", "cinder_volume", "volume_attachment"):
        assert f"<td>{resource}</td>" in page.text
    assert "CREATE_COMPLETE" in page.text
    r = demo_web.post(f"/dashboard/stacks/{stack['id']}/delete",
                      data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 303
    deadline = time.monotonic() + 60
    while cloud.openstack("stack", "show", name, user="demo", check=False).returncode == 0:
        status = cloud.openstack("stack", "show", name, user="demo")["stack_status"]
        if status == "DELETE_COMPLETE":
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    # and another project's stack page is not found
    r = demo_web.get("/dashboard/stacks/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 404
