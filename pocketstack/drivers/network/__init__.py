"""Network drivers, chosen from an explicit registry (see services/network/service.py)."""

from __future__ import annotations

from typing import Any


def _fake(**kw: Any) -> Any:
    from pocketstack.drivers.network.fake import FakeNetworkDriver

    return FakeNetworkDriver(prefix=kw["prefix"])


def _linux(**kw: Any) -> Any:
    from pocketstack.drivers.network.linux import LinuxNetworkDriver

    return LinuxNetworkDriver(prefix=kw["prefix"], settings=kw["settings"])


DRIVERS = {"fake": _fake, "linux": _linux}
