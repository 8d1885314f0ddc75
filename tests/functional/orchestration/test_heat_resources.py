"""Neutron, Swift and Nova keypair resources through `openstack stack create`, checked with
the services' own CLI commands while the stack lives and after it is deleted."""

from __future__ import annotations

import uuid

from test_heat_stacks import wait_status, write

TEMPLATE = """
heat_template_version: 2018-08-31
parameters:
  prefix: {type: string}
resources:
  net:
    type: OS::Neutron::Net
    properties: {name: {list_join: ['-', [{get_param: prefix}, net]]}}
  subnet:
    type: OS::Neutron::Subnet
    properties:
      network: {get_resource: net}
      cidr: 10.199.7.0/24
  sg:
    type: OS::Neutron::SecurityGroup
    properties:
      rules: [{protocol: tcp, port_range_min: 80, port_range_max: 80}]
  port:
    type: OS::Neutron::Port
    properties:
      network: {get_resource: net}
      fixed_ips: [{subnet: {get_resource: subnet}, ip_address: 10.199.7.20}]
      security_groups: [{get_resource: sg}]
  bucket:
    type: OS::Swift::Container
    properties:
      name: {list_join: ['-', [{get_param: prefix}, bucket]]}
      X-Container-Meta: {Color: blue}
  key:
    type: OS::Nova::KeyPair
    properties:
      name: {list_join: ['-', [{get_param: prefix}, key]]}
      save_private_key: true
outputs:
  ip: {value: {get_attr: [port, fixed_ips, 0, ip_address]}}
  url: {value: {get_attr: [bucket, WebsiteURL]}}
  has_private_key: {value: {if: [true, {get_attr: [key, private_key]}, '']}}
"""


def test_network_container_keypair_resources(cloud, tmp_path):
    prefix = f"ps-heat-{uuid.uuid4().hex[:6]}"
    name = f"{prefix}-stack"
    cloud.openstack("stack", "create", "-t", write(tmp_path, "r.yaml", TEMPLATE),
                    "--parameter", f"prefix={prefix}", name, user="demo")
    wait_status(cloud, name, "CREATE_COMPLETE", user="demo")
    assert cloud.openstack("stack", "output", "show", name, "ip",
                           user="demo")["output_value"] == "10.199.7.20"
    url = cloud.openstack("stack", "output", "show", name, "url", user="demo")["output_value"]
    assert url.endswith(f"/{prefix}-bucket")
    key = cloud.openstack("stack", "output", "show", name, "has_private_key", user="demo")
    assert "PRIVATE KEY" in key["output_value"]
    net = cloud.openstack("network", "show", f"{prefix}-net", user="demo")
    assert net["subnets"]
    container = cloud.openstack("container", "show", f"{prefix}-bucket", user="demo")
    assert {k.lower(): v for k, v in container["properties"].items()} == {"color": "blue"}
    assert cloud.openstack("keypair", "show", f"{prefix}-key", user="demo")["name"] == \
        f"{prefix}-key"
    cloud.openstack("stack", "delete", "--yes", "--wait", name, user="demo")
    for cmd in (("network", "show", f"{prefix}-net"),
                ("container", "show", f"{prefix}-bucket"),
                ("keypair", "show", f"{prefix}-key")):
        assert cloud.openstack(*cmd, user="demo", check=False).returncode != 0, cmd
