"""Weighers: each gives a raw score per host; scores are normalised to [0, 1] across the
candidates and multiplied by the weigher's multiplier (as nova/weights.py does)."""

from __future__ import annotations

from pocketstack.scheduler.weighers.affinity import (ServerGroupSoftAffinityWeigher,
                                                     ServerGroupSoftAntiAffinityWeigher)
from pocketstack.scheduler.weighers.cpu import CPUWeigher
from pocketstack.scheduler.weighers.ram import RAMWeigher

REGISTRY = {cls.__name__: cls for cls in (RAMWeigher, CPUWeigher, ServerGroupSoftAffinityWeigher,
                                          ServerGroupSoftAntiAffinityWeigher)}
