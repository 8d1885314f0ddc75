"""The server's config drive file: built by the compute worker from the network service's
metadata documents (the same code the metadata service answers with), handed to the driver
in InstanceSpec.config_drive.

As Nova: built when the server is spawned (create, rebuild, unshelve onto a host), not when
its ports change afterwards (an interface attached later is only in the metadata service's
network_data.json, as in Nova, whose config drive is not regenerated either).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pocketstack.drivers.compute.config_drive import build_iso

log = logging.getLogger("pocketstack.compute.worker")


def path_for(svc: Any, server_id: str) -> Path:
    # server ids are our own uuids (checked by the API), never a tenant string
    return Path(svc.settings.data_dir) / "compute" / "config-drives" / f"{server_id}.iso"


def prepare(svc: Any, srv: Any, rebuild: bool) -> Path | None:
    """The server's config drive: None if it has none; (re)built when ``rebuild`` or when
    the file is missing (a reboot after a restore, say)."""
    if not srv.config_drive:
        return None
    target = path_for(svc, srv.id)
    if target.exists() and not rebuild:
        return target
    net = svc.cloud.services.get("network")
    tree = None
    if net is not None:
        from pocketstack.services.network.metadata import Metadata

        tree = Metadata(net).server_tree(srv.id)
    if tree is None:
        raise RuntimeError(f"the config drive of server {srv.id} cannot be built: no "
                           "metadata (network service missing or server unknown)")
    build_iso(tree, target)
    return target


def remove(svc: Any, server_id: str) -> None:
    path_for(svc, server_id).unlink(missing_ok=True)
