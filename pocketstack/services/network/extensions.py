"""The /v2.0/extensions document: only what this slice really implements."""

from __future__ import annotations

_UPDATED = "2024-01-01T00:00:00-00:00"

_EXTENSIONS = [
    ("agent-less", "Not an agent based deployment", "quotas", "Quota management support"),
]

_LIST = [
    ("allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs"),
    ("availability_zone", "Availability Zone", "The availability zone extension."),
    ("binding", "Port Binding", "Expose port bindings of a virtual port to external "
                                "application"),
    ("default-subnetpools", "Default Subnetpools", "Provides ability to mark and use a "
                                                   "subnetpool as the default."),
    ("empty-string-filtering", "Empty String Filtering Extension",
     "Allow filtering by attributes with empty string value"),
    ("external-net", "Neutron external network", "Adds external network attribute to network "
                                                 "resource."),
    ("ext-gw-mode", "Neutron L3 Configurable external gateway mode",
     "Extension of the router abstraction for specifying whether SNAT should occur on the "
     "external gateway"),
    ("extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router"),
    ("extraroute-atomic", "Atomically add/remove extra routes",
     "Edit extra routes of a router on server side by atomically adding/removing extra "
     "routes"),
    ("filter-validation", "Filter parameters validation", "Provides validation on filter "
                                                          "parameters."),
    ("fip-port-details", "Floating IP Port Details Extension",
     "Add port_details attribute to Floating IP resource"),
    ("ip-substring-filtering", "IP address substring filtering",
     "Provides IP address substring filtering when listing ports"),
    ("metering", "Neutron Metering", "Neutron Metering extension."),
    ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
    ("net-mtu-writable", "Network MTU (writable)", "Provides a writable MTU attribute for a "
                                                   "network resource."),
    ("network_availability_zone", "Network Availability Zone",
     "Availability zone support for network."),
    ("pagination", "Pagination support", "Extension that indicates that pagination is "
                                         "enabled."),
    ("port-security", "Port Security", "Provides port security"),
    ("project-id", "project_id field enabled", "Extension that indicates that project_id field "
                                               "is enabled."),
    ("provider", "Provider Network", "Expose mapping of virtual networks to physical "
                                     "networks"),
    ("quotas", "Quota management support", "Expose functions for quotas management per "
                                           "tenant"),
    ("quota_details", "Quota details management support",
     "Expose functions for quotas usage statistics per project"),
    ("rbac-policies", "RBAC Policies", "Allows creation and modification of policies that "
                                       "control tenant access to resources."),
    ("router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 "
                                    "Neutron networks and access to external networks via a "
                                    "NAT gateway."),
    ("router_availability_zone", "Router Availability Zone",
     "Availability zone support for router."),
    ("security-group", "security-group", "The security groups extension."),
    ("sorting", "Sorting support", "Extension that indicates that sorting is enabled."),
    ("standard-attr-description", "standard-attr-description",
     "Extension to add descriptions to standard attributes"),
    ("standard-attr-revisions", "Resource revision numbers",
     "This extension will display the revision number of neutron resources."),
    ("standard-attr-tag", "Tag support for resources with standard attribute: subnet, "
                          "trunk, network_segment_range, router, network, policy, subnetpool, "
                          "port, security_group, floatingip",
     "Enables to set tag on resources with standard attribute."),
    ("tag", "Tag support", "Enables to set tag on resources."),
    ("tag-ext", "Tag support for resources: subnet, subnetpool, port, router",
     "Extends tag support to more L2 and L3 resources."),
    ("standard-attr-timestamp", "Resource timestamps",
     "Adds created_at and updated_at fields to all Neutron resources that have Neutron "
     "standard attributes."),
    ("stateful-security-group", "Stateful security group",
     "Indicates if the security group is stateful or not"),
    ("subnet_allocation", "Subnet Allocation", "Enables allocation of subnets from a subnet "
                                               "pool"),
    ("subnet-external-network", "Subnet External Network",
     "Informs if the subnet is associated to an external network"),
    ("subnet-service-types", "Subnet service types",
     "Provides ability to set the subnet service_types field"),
    ("subnet-dns-publish-fixed-ip", "Subnet DNS publish fixed IP",
     "Support choosing to publish DNS records for IPs from a subnet"),
    # address_scopes.py, trunks.py, qos.py, flavors.py, ip_availability.py
    ("address-scope", "Address scope", "Address scopes extension."),
    ("network-ip-availability", "Network IP Availability",
     "Provides IP availability data for each network and subnet."),
    ("service-type", "Neutron Service Type Management",
     "API for retrieving service providers for Neutron advanced services"),
    ("trunk", "Trunk Extension", "Provides support for trunk ports"),
    ("trunk-details", "Trunk port details", "Expose trunk port details"),
    ("qos", "Quality of Service", "The Quality of Service extension."),
    ("qos-bw-limit-direction", "Direction for QoS bandwidth limit rule",
     "Allow to configure QoS bandwidth limit rule with specific direction: ingress or "
     "egress"),
    ("qos-bw-minimum-ingress", "Ingress direction for QoS minimum bandwidth rule",
     "Allow to configure QoS minumum bandwidth rule with ingress direction."),
    ("qos-pps", "QoS packet rate limit rule", "Add QoS packet rate limit rule."),
    ("qos-pps-minimum", "QoS minimum packet rate rule",
     "Add QoS minimum packet rate rule."),
    ("qos-default", "QoS default policy", "Expose the QoS default policy per project"),
    ("qos-rule-type-details", "Details of QoS rule types",
     "Expose details about QoS rule types supported by loaded backend drivers"),
    ("flavors", "Neutron Service Flavors", "Flavor specification for Neutron advanced "
                                           "services."),
]

EXTENSIONS = [{"name": name, "alias": alias, "description": desc, "updated": _UPDATED,
               "links": []} for alias, name, desc in _LIST]
ALIASES = [e["alias"] for e in EXTENSIONS]
del _EXTENSIONS
