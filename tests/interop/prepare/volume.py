#!/usr/bin/env python3
"""scripts/tempest prepare hook for block storage: tempest's [volume] and
[volume-feature-enabled] options that must agree with this cloud's Cinder.

- storage_protocol / vendor_name: tempest puts them in volume type extra specs and expects
  volumes of those types to be scheduled; Cinder's capabilities filter (ours too) only
  places them on a backend reporting exactly these values ("local", "pocketstack").
- microversions 3.0 to 3.70: what the API advertises, so the microversioned tests run.
- backups (to the object store) when this build serves object-store; no manage/unmanage,
  one backend; attached volumes can be extended.
"""

from __future__ import annotations

import argparse
import json
import sys

from pocketstack.drivers.volume.base import PoolStats
from pocketstack.services.volume import microversion


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.parse_args()
    from pocketstack.app import service_specs

    has_objects = any(spec.type == "object-store" for spec in service_specs())
    stats = PoolStats(pool_name="", total_capacity_gb=0, free_capacity_gb=0)
    print(json.dumps({
        "volume": {"storage_protocol": stats.storage_protocol,
                   "vendor_name": stats.vendor_name, "volume_size": "1",
                   "min_microversion": microversion.fmt(microversion.MIN),
                   "max_microversion": microversion.fmt(microversion.MAX)},
        "volume-feature-enabled": {"backup": str(has_objects), "manage_volume": "False",
                                   "manage_snapshot": "False",
                                   "extend_attached_volume": "True",
                                   "multi_backend": "False"},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
