"""
Which GPU, and which of its scheduler workers, each camera's frames run on.

A camera given a device runs there. The others are spread over ``devices`` by expected load (every
GPU runs the same network, so a frame costs the same everywhere and a camera's frame rate is its
load; a camera of unknown rate, 0, counts as the mean of the known rates, or 1 when none is known):
largest first, each to the device with the least load so far, counting the cameras placed by hand
(ties: the lowest device). With several workers per GPU each GPU's cameras are spread over its
workers by the same rule. Fusion and tbRatio grouping then stay within a worker. Deterministic:
the same inputs give the same placement.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable, NamedTuple, Sequence


class Slot(NamedTuple):
    """One scheduler worker: its CUDA device and its number among that device's workers."""

    device: int
    worker: int = 0

    def label(self, workers_per_device: int) -> str:
        """Return 'gpu<N>' with one worker per device, else 'gpu<N> worker<K>'."""
        return (f'gpu{self.device}' if workers_per_device == 1
                else f'gpu{self.device} worker{self.worker}')


def place(rates: Sequence[float], devices: Sequence[int],
          fixed: Sequence[int | None] | None = None) -> list[int]:
    """Return each camera's device (``rates[i]`` frames/s, ``fixed[i]`` its device or None)."""
    fixed = list(fixed) if fixed is not None else [None] * len(rates)
    loads = _loads(rates)
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


def place_workers(rates: Sequence[float], devices: Sequence[int], workers_per_device: int = 1,
                  fixed: Sequence[int | None] | None = None) -> list[Slot]:
    """
    Return each camera's worker.

    Its device as :func:`place` gives it, then one of the device's ``workers_per_device`` workers
    by the same rule over the device's cameras.
    """
    on_device = place(rates, devices, fixed)
    loads = _loads(rates)
    slots: list[Slot] = [Slot(device) for device in on_device]
    for device in dict.fromkeys(on_device):
        members = [i for i, d in enumerate(on_device) if d == device]
        workers = place([loads[i] for i in members], range(workers_per_device))
        for i, worker in zip(members, workers):
            slots[i] = Slot(device, worker)
    return slots


def _loads(rates: Sequence[float]) -> list[float]:
    """Each camera's load: its rate, or for a rate of 0 the mean known rate (1 if none)."""
    known = [rate for rate in rates if rate > 0]
    unknown = sum(known) / len(known) if known else 1.0
    return [rate if rate > 0 else unknown for rate in rates]


def gpu_shares(slots: Iterable[Slot]) -> dict[Slot, float]:
    """Return each worker's share of its GPU: 1 / the workers in ``slots`` on that GPU."""
    slots = list(slots)
    on_device = Counter(slot.device for slot in slots)
    return {slot: 1 / on_device[slot.device] for slot in slots}
