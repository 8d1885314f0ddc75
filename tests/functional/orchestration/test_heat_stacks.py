"""Heat through the real `openstack stack ...` CLI (python-heatclient plugin) and HTTP.

The session cloud is shared with other services' tests: every stack, image and volume here
has a unique name, and nothing assumes an empty cloud.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

SEED = Path("/work/shared/seeds/000_ffd084f2b2682f6f.txt")
HERE = Path(__file__).parent


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def wait_status(cloud, stack: str, want: str, timeout: float = 120, user: str = "admin"
                ) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        info = cloud.openstack("stack", "show", stack, "--no-resolve-outputs", user=user)
        status = info["stack_status"]
        if status == want:
            return info
        if not status.endswith("IN_PROGRESS") or time.monotonic() > deadline:
            raise AssertionError(f"{stack}: {status} ({info['stack_status_reason']}), "
                                 f"wanted {want}")
        time.sleep(0.3)


def stack_events(cloud, stack: str) -> list[dict]:
    return cloud.openstack("stack", "event", "list", stack, "-f", "json")


TEMPLATE = """
heat_template_version: 2016-04-08
parameters:
  word:
    type: string
    default: hello
    constraints:
      - allowed_pattern: "[a-z]+"
resources:
  first:
    type: OS::Heat::TestResource
    properties:
      value: {get_param: word}
  second:
    type: OS::Heat::RandomString
    depends_on: first
    properties:
      length: 12
  joined:
    type: OS::Heat::Value
    properties:
      value:
        list_join: ['-', [{get_attr: [first, output]}, {get_param: word}]]
outputs:
  word_out:
    description: the word
    value: {get_attr: [first, output]}
  random:
    value: {get_attr: [second, value]}
  joined:
    value: {get_attr: [joined, value]}
"""


def test_create_show_update_outputs_events_delete(cloud, tmp_path):
    name = uniq("ps-heat")
    tfile = write(tmp_path, "t.yaml", TEMPLATE)
    created = cloud.openstack("stack", "create", "-t", tfile, "--parameter", "word=abc", name)
    assert created["stack_status"] in ("CREATE_IN_PROGRESS", "CREATE_COMPLETE")
    wait_status(cloud, name, "CREATE_COMPLETE")
    out = cloud.openstack("stack", "output", "show", name, "word_out")
    assert out["output_value"] == "abc"
    joined = cloud.openstack("stack", "output", "show", name, "joined")
    assert joined["output_value"] == "abc-abc"
    rand = cloud.openstack("stack", "output", "show", name, "random")["output_value"]
    assert len(rand) == 12
    resources = {r["resource_name"]: r for r in
                 cloud.openstack("stack", "resource", "list", name)}
    assert set(resources) == {"first", "second", "joined"}
    assert all(r["resource_status"] == "CREATE_COMPLETE" for r in resources.values())
    # first must be complete before second starts (depends_on).
    events = stack_events(cloud, name)
    order = [(e["resource_name"], e["resource_status"]) for e in events]
    assert order.index(("first", "CREATE_COMPLETE")) < order.index(
        ("second", "CREATE_IN_PROGRESS"))
    assert order[0] == (name, "CREATE_IN_PROGRESS") and order[-1] == (name, "CREATE_COMPLETE")

    # PATCH update with existing parameters: only the parameter changes; first is updated
    # in place, the random string (no changed properties) keeps its value.
    dry = json.loads(cloud.openstack("stack", "update", "--dry-run", "--existing",
                                     "--parameter", "word=xyz", name, "-f", "json"))
    assert "first" in {r["resource_name"] for r in dry["updated"]}
    assert "second" in {r["resource_name"] for r in dry["unchanged"]}
    assert cloud.openstack("stack", "show", name)["stack_status"] == "CREATE_COMPLETE"
    cloud.openstack("stack", "update", "--existing", "--parameter", "word=xyz", name)
    wait_status(cloud, name, "UPDATE_COMPLETE")
    assert cloud.openstack("stack", "output", "show", name, "word_out")["output_value"] == "xyz"
    assert cloud.openstack("stack", "output", "show", name, "random")["output_value"] == rand
    first = cloud.openstack("stack", "resource", "show", name, "first")
    assert first["resource_status"] == "UPDATE_COMPLETE"
    assert first["physical_resource_id"] == resources["first"]["physical_resource_id"]

    template = cloud.openstack("stack", "template", "show", name, "-f", "json")
    assert template["resources"]["second"]["depends_on"] == "first"
    env = cloud.openstack("stack", "environment", "show", name, "-f", "json")
    assert env["parameters"] == {"word": "xyz"}

    cloud.openstack("stack", "delete", "--yes", "--wait", name)
    listed = cloud.openstack("stack", "list")
    assert name not in {s["Stack Name"] for s in listed}


def test_bad_templates_are_400_with_where(cloud, tmp_path):
    base = "heat_template_version: 2015-04-30\n"
    cases = {
        "unknown function": (base + "resources:\n  r:\n    type: OS::Heat::RandomString\n"
                             "    properties:\n      length: {get_parm: x}\n",
                             'resources.r.properties.length: Unknown function "get_parm"'),
        "cycle": (base + "resources:\n  a:\n    type: OS::Heat::None\n    depends_on: b\n"
                  "  b:\n    type: OS::Heat::None\n    depends_on: a\n",
                  "Circular Dependency Found"),
        "missing parameter": (base + "parameters:\n  p:\n    type: number\nresources: {}\n",
                              "The Parameter (p) was not provided."),
        "wrong type": (base + "resources:\n  r:\n    type: OS::Heat::RandomString\n"
                       "    properties:\n      length: twelve\n",
                       "resources.r.properties.length: : Value 'twelve' is not an integer"),
        "unknown type": (base + "resources:\n  r:\n    type: OS::Nope::Thing\n",
                         "The Resource Type (OS::Nope::Thing) could not be found."),
        "bad version": ("heat_template_version: 2099-01-01\n", "The template version is "
                                                               "invalid"),
    }
    for label, (text, message) in cases.items():
        res = cloud.openstack("stack", "create", "-t", write(tmp_path, "bad.yaml", text),
                              uniq("ps-heat-bad"), check=False)
        assert res.returncode != 0, label
        assert message in res.stderr, (label, res.stderr)
    # Constraint violations name the parameter and use the template's description.
    res = cloud.openstack("stack", "create", "-t", write(tmp_path, "t.yaml", TEMPLATE),
                          "--parameter", "word=ABC", uniq("ps-heat-bad"), check=False)
    assert res.returncode != 0
    assert "Parameter 'word' is invalid" in res.stderr

    # A template sent as text gets the line of the problem; the body is Heat's fault.
    token = cloud.openstack("token", "issue")
    body = json.dumps({"stack_name": uniq("ps-heat-bad"), "template": cases["wrong type"][0]})
    req = urllib.request.Request(
        f"{cloud.base_url}/orchestration/v1/{token['project_id']}/stacks", data=body.encode(),
        headers={"X-Auth-Token": token["id"], "Content-Type": "application/json"},
        method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    assert err.value.code == 400
    fault = json.loads(err.value.read())
    assert fault["error"]["type"] == "StackValidationFailed"
    assert "(line 6)" in fault["error"]["message"]
    # Nothing was created by any of the failed requests.
    names = {s["Stack Name"] for s in cloud.openstack("stack", "list")}
    assert not any(n.startswith("ps-heat-bad") for n in names)


def test_failed_resource_rolls_back_and_shows_reason(cloud, tmp_path):
    text = """
heat_template_version: 2015-04-30
resources:
  keep:
    type: OS::Heat::RandomString
  boom:
    type: OS::Heat::TestResource
    depends_on: keep
    properties:
      fail: true
"""
    name = uniq("ps-heat-rb")
    cloud.openstack("stack", "create", "-t", write(tmp_path, "rb.yaml", text),
                    "--enable-rollback", name)
    info = wait_status(cloud, name, "ROLLBACK_COMPLETE")
    assert info["stack_status"] == "ROLLBACK_COMPLETE"
    reasons = [e["resource_status_reason"] for e in stack_events(cloud, name)]
    assert any("Test Resource failed boom" in r for r in reasons), reasons
    resources = cloud.openstack("stack", "resource", "list", name)
    assert all(r["resource_status"] in ("DELETE_COMPLETE", "INIT_COMPLETE") for r in
               resources), resources
    cloud.openstack("stack", "delete", "--yes", "--wait", name)

    # Without rollback the failure stays visible in stack show.
    name2 = uniq("ps-heat-fail")
    cloud.openstack("stack", "create", "-t", write(tmp_path, "rb.yaml", text), name2)
    info = wait_status(cloud, name2, "CREATE_FAILED")
    assert "Resource CREATE failed: ValueError: resources.boom: Test Resource failed boom" \
        in info["stack_status_reason"]
    cloud.openstack("stack", "delete", "--yes", "--wait", name2)


def test_other_project_cannot_see_stack(cloud, tmp_path):
    name = uniq("ps-heat-priv")
    text = "heat_template_version: 2015-04-30\nresources:\n  r:\n    type: OS::Heat::None\n"
    cloud.openstack("stack", "create", "-t", write(tmp_path, "p.yaml", text), name)
    wait_status(cloud, name, "CREATE_COMPLETE")
    res = cloud.openstack("stack", "show", name, user="demo", check=False)
    assert res.returncode != 0 and "not found" in res.stderr.lower()
    assert name not in {s["Stack Name"] for s in cloud.openstack("stack", "list", user="demo")}
    cloud.openstack("stack", "delete", "--yes", "--wait", name)


def test_resource_group_nested_parallel(cloud, tmp_path):
    nested = ("heat_template_version: 2015-04-30\nparameters:\n  idx:\n    type: string\n"
              "resources:\n  s:\n    type: OS::Heat::TestResource\n    properties:\n"
              "      value: {get_param: idx}\n      wait_secs: 3\n"
              "outputs:\n  val:\n    value: {get_attr: [s, output]}\n")
    text = ("heat_template_version: 2015-04-30\nresources:\n  group:\n"
            "    type: OS::Heat::ResourceGroup\n    properties:\n      count: 6\n"
            "      resource_def:\n        type: member.yaml\n        properties:\n"
            "          idx: 'm%index%'\noutputs:\n  vals:\n    value: {get_attr: [group, val]}\n")
    write(tmp_path, "member.yaml", nested)
    name = uniq("ps-heat-rg")
    cloud.openstack("stack", "create", "-t", write(tmp_path, "rg.yaml", text), name)
    wait_status(cloud, name, "CREATE_COMPLETE")
    vals = cloud.openstack("stack", "output", "show", name, "vals")["output_value"]
    assert vals == [f"m{i}" for i in range(6)]
    nested_rows = cloud.openstack("stack", "resource", "list", "-n", "2", name)
    assert len(nested_rows) == 1 + 6 + 6
    # 6 members each waiting 3 s were created side by side: at some point at least 3 of
    # them were in progress at once (serially it would never be more than 1). The window
    # is 3 s rather than 1 s because a loaded 2-core CI box once took over a second to
    # start the second member's nested stack.
    events = cloud.openstack("stack", "event", "list", name, "--nested-depth", "2",
                             "-f", "json")
    running = most = 0
    for e in events:
        if e["resource_name"] != "s":
            continue
        running += {"CREATE_IN_PROGRESS": 1, "CREATE_COMPLETE": -1}.get(e["resource_status"], 0)
        most = max(most, running)
    assert most >= 3, [(e["resource_name"], e["resource_status"]) for e in events]
    cloud.openstack("stack", "delete", "--yes", "--wait", name)
