"""Heat ResourceGroup attributes (issue 22): ``attributes`` is a map of member name to the
named attribute of each member (not null), and paths select inside each member's value,
as Heat's ResourceGroup.get_attribute; through openstacksdk."""

from __future__ import annotations

import time
import uuid

TEMPLATE = {
    "heat_template_version": "2016-10-14",
    "resources": {"group": {"type": "OS::Heat::ResourceGroup", "properties": {
        "count": 3, "resource_def": {"type": "OS::Heat::Value", "properties": {
            "type": "json", "value": {"n": "m%index%", "list": ["a%index%", "b"]}}}}}},
    "outputs": {
        "attributes": {"value": {"get_attr": ["group", "attributes", "value"]}},
        "attributes_path": {"value": {"get_attr": ["group", "attributes", "value", "n"]}},
        "per_member": {"value": {"get_attr": ["group", "value", "list", 0]}},
        "refs_first": {"value": {"get_attr": ["group", "refs", 0]}},
        "refs": {"value": {"get_attr": ["group", "refs"]}},
        "one": {"value": {"get_attr": ["group", "resource.1.value", "n"]}},
    },
}


def test_resource_group_attributes_map(cloud):
    conn = cloud.sdk()
    stack = conn.orchestration.create_stack(name=f"fid-{uuid.uuid4().hex[:8]}",
                                            template=TEMPLATE)
    try:
        deadline = time.monotonic() + 60
        while True:
            st = conn.orchestration.get_stack(stack.id)
            if st.status != "CREATE_IN_PROGRESS" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert st.status == "CREATE_COMPLETE", st.status_reason
        out = {o["output_key"]: o["output_value"] for o in st.outputs}
        assert out["attributes"] == {str(i): {"n": f"m{i}", "list": [f"a{i}", "b"]}
                                     for i in range(3)}
        assert out["attributes_path"] == {"0": "m0", "1": "m1", "2": "m2"}
        assert out["per_member"] == ["a0", "a1", "a2"]
        assert out["refs_first"] == out["refs"][0] and len(out["refs"]) == 3
        assert out["one"] == "m1"
    finally:
        conn.orchestration.delete_stack(stack.id)
