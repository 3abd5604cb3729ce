"""
Which GPU and scheduler worker each configured camera runs on.

See :mod:`s3dnn_ros.scheduler.placement`. A camera with ``<camera>.device_id`` >= 0 runs on that
GPU; the others are spread over the GPUs ``device_id .. device_id + gpus - 1`` by their
``fps_hint``; then each GPU's cameras over its ``workers_per_gpu`` workers.
"""
from __future__ import annotations

from .config import AUTO_DEVICE, NodeConfig
from ..scheduler.placement import place_workers, Slot


def place_cameras(config: NodeConfig) -> dict[str, Slot]:
    """Return camera name -> its worker (device, worker), in the order of ``config.cameras``."""
    devices = list(range(config.device_id, config.device_id + config.gpus))
    fixed = [None if camera.device_id == AUTO_DEVICE else camera.device_id
             for camera in config.cameras]
    placed = place_workers([camera.fps_hint for camera in config.cameras], devices,
                           config.workers_per_gpu, fixed)
    return {camera.name: slot for camera, slot in zip(config.cameras, placed)}


def describe_placement(placement: dict[str, Slot], workers_per_gpu: int = 1) -> str:
    """Return one line: each worker used and its cameras, for the log."""
    by_slot: dict[Slot, list[str]] = {}
    for camera, slot in placement.items():
        by_slot.setdefault(slot, []).append(camera)
    return '; '.join(f'{slot.label(workers_per_gpu)}: {", ".join(cameras)}'
                     for slot, cameras in sorted(by_slot.items()))
