"""
Which GPU each configured camera runs on (see :mod:`s3dnn_ros.scheduler.placement`).

A camera with ``<camera>.device_id`` >= 0 runs there; the others are spread over the GPUs
``device_id .. device_id + gpus - 1`` by their ``fps_hint``.
"""
from __future__ import annotations

from .config import AUTO_DEVICE, NodeConfig
from ..scheduler.placement import place


def place_cameras(config: NodeConfig) -> dict[str, int]:
    """Return camera name -> CUDA device, in the order of ``config.cameras``."""
    devices = list(range(config.device_id, config.device_id + config.gpus))
    fixed = [None if camera.device_id == AUTO_DEVICE else camera.device_id
             for camera in config.cameras]
    placed = place([camera.fps_hint for camera in config.cameras], devices, fixed)
    return {camera.name: device for camera, device in zip(config.cameras, placed)}


def describe_placement(placement: dict[str, int]) -> str:
    """Return one line: each GPU used and its cameras, for the log."""
    by_device: dict[int, list[str]] = {}
    for camera, device in placement.items():
        by_device.setdefault(device, []).append(camera)
    return '; '.join(f'gpu{device}: {", ".join(cameras)}'
                     for device, cameras in sorted(by_device.items()))
