"""
Which GPU each camera's frames run on: one scheduler worker per GPU used.

A camera with ``<camera>.device_id`` >= 0 runs there. The others are spread over the GPUs
``device_id .. device_id + gpus - 1`` by expected load, the camera's ``fps_hint`` (every GPU runs
the same network, so a frame costs the same everywhere and the frame rate is the load; a camera
without a hint counts as the mean of the hints given, or 1 when none is): largest first, each to
the GPU with the least load so far, counting the cameras placed there by hand (ties: the lowest
device). Fusion and tbRatio grouping stay within a GPU. Deterministic: the same configuration gives
the same placement.
"""
from __future__ import annotations

from .config import AUTO_DEVICE, NodeConfig


def place_cameras(config: NodeConfig) -> dict[str, int]:
    """Return camera name -> CUDA device, in the order of ``config.cameras``."""
    devices = list(range(config.device_id, config.device_id + config.gpus))
    hints = [camera.fps_hint for camera in config.cameras if camera.fps_hint > 0]
    unknown = sum(hints) / len(hints) if hints else 1.0
    load = dict.fromkeys(devices, 0.0)
    placed = {}
    for camera in config.cameras:
        if camera.device_id != AUTO_DEVICE:
            placed[camera.name] = camera.device_id
            load[camera.device_id] = load.get(camera.device_id, 0.0) + (camera.fps_hint or unknown)
    automatic = [camera for camera in config.cameras if camera.device_id == AUTO_DEVICE]
    # sorted() is stable: cameras of equal load keep the configuration order
    for camera in sorted(automatic, key=lambda c: -(c.fps_hint or unknown)):
        device = min(devices, key=lambda d: (load[d], d))
        placed[camera.name] = device
        load[device] += camera.fps_hint or unknown
    return {camera.name: placed[camera.name] for camera in config.cameras}


def describe_placement(placement: dict[str, int]) -> str:
    """Return one line: each GPU used and its cameras, for the log."""
    by_device: dict[int, list[str]] = {}
    for camera, device in placement.items():
        by_device.setdefault(device, []).append(camera)
    return '; '.join(f'gpu{device}: {", ".join(cameras)}'
                     for device, cameras in sorted(by_device.items()))
