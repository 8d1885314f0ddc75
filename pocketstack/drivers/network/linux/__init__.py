"""The Linux network driver, split by concern: bridges (L2), routers (namespaces, NAT),
nftables (security groups), dnsmasq (DHCP), metadata (169.254.169.254)."""

from pocketstack.drivers.network.linux.driver import LinuxNetworkDriver

__all__ = ["LinuxNetworkDriver"]
