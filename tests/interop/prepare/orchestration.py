"""Tempest prepare hook for heat-tempest-plugin: settings its tests read from [heat_plugin].

Prints one JSON object merged into tempest.conf. The hidden stack tag is the one the
orchestration service hides from stack lists (service.HIDDEN_TAGS); image/flavor/network
names are filled in when the compute, image and network services publish them.
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.parse_args()
    conf = {"hidden_stack_tag": "data-processing-cluster", "build_interval": "1",
            "build_timeout": "300",
            # The image, flavor and network DevStack-like clouds give the demo project
            # (seeded by the image, compute and network slices).
            "minimal_image_ref": "busybox", "image_ref": "busybox",
            "minimal_instance_type": "m1.tiny", "instance_type": "m1.tiny",
            "fixed_network_name": "private", "network_for_ssh": "private",
            "floating_network_name": "public"}
    print(json.dumps({"heat_plugin": conf}))


if __name__ == "__main__":
    main()
