"""
Which GPU each camera's frames run on, when one scheduler serves each GPU.

A camera given a device runs there. The others are spread over ``devices`` by expected load (every
GPU runs the same network, so a frame costs the same everywhere and a camera's frame rate is its
load; a camera of unknown rate, 0, counts as the mean of the known rates, or 1 when none is known):
largest first, each to the device with the least load so far, counting the cameras placed by hand
(ties: the lowest device). Fusion and tbRatio grouping then stay within a GPU. Deterministic: the
same inputs give the same placement.
"""
from __future__ import annotations

from typing import Sequence


def place(rates: Sequence[float], devices: Sequence[int],
          fixed: Sequence[int | None] | None = None) -> list[int]:
    """Return each camera's device (``rates[i]`` frames/s, ``fixed[i]`` its device or None)."""
    fixed = list(fixed) if fixed is not None else [None] * len(rates)
    known = [rate for rate in rates if rate > 0]
    unknown = sum(known) / len(known) if known else 1.0
    loads = [rate if rate > 0 else unknown for rate in rates]
    total = dict.fromkeys(devices, 0.0)
    placed: list[int | None] = list(fixed)
    for i, device in enumerate(fixed):
        if device is not None:
            total[device] = total.get(device, 0.0) + loads[i]
    free = [i for i, device in enumerate(fixed) if device is None]
    for i in sorted(free, key=lambda i: -loads[i]):  # stable: equal loads keep their order
        device = min(devices, key=lambda d: (total[d], d))
        placed[i] = device
        total[device] += loads[i]
    return placed
