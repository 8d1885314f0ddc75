"""OS::Neutron::Net sent shared=False (its schema default) in a member's create request,
and Neutron's policy refuses any `shared` from non-admins: heat-tempest-plugin's
BasicResourcesTest failed with "Policy doesn't allow network:create_network:shared"."""

from __future__ import annotations

from pocketstack.services.orchestration.resources.neutron import Net, Subnet


class _Rt:
    name = "net"

    def physical_resource_name(self) -> str:
        return "s-net-x"


def test_defaults_are_left_out_but_required_attributes_stay():
    net = Net(_Rt())  # type: ignore[arg-type]
    props = {"name": "n1", "admin_state_up": True, "shared": False, "value_specs": {}}
    attrs = net.attrs(props)
    assert "shared" not in attrs and "admin_state_up" not in attrs
    assert attrs["name"] == "n1"
    assert net.attrs({**props, "shared": True})["shared"] is True
    assert "ip_version" in Subnet.always
