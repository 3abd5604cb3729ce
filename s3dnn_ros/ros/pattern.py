"""
The moving test pattern of camera_sim and s3dnn-make-bag.

A colour gradient scrolling sideways with a bright square bouncing over it, so consecutive frames
differ and a stuck pipeline shows. No rclpy here, so bags can be written without ROS.
"""
from __future__ import annotations

import numpy as np

from ..engine.base import ENCODINGS


def make_frames(width: int, height: int, encoding: str):
    """Generate H x W x C uint8 frames whose content moves from one frame to the next."""
    channels = ENCODINGS[encoding][0]
    x = np.linspace(0, 2 * np.pi, width, endpoint=False)
    phases = np.array([0, 2 * np.pi / 3, 4 * np.pi / 3][:max(1, min(channels, 3))])
    row = (127.5 + 127.5 * np.sin(x[:, None] + phases[None, :])).astype(np.uint8)  # (W, min(C,3))
    if channels == 4:
        row = np.concatenate([row, np.full((width, 1), 255, np.uint8)], axis=1)
    # two periods wide, to scroll through
    gradient = np.repeat(np.tile(row, (2, 1))[None], height, axis=0)
    side = max(4, min(width, height) // 6)
    step = 0
    while True:
        shift = (step * 4) % width
        frame = np.ascontiguousarray(gradient[:, shift:shift + width])
        top = abs((step * 3) % (2 * (height - side)) - (height - side))
        left = abs((step * 5) % (2 * (width - side)) - (width - side))
        frame[top:top + side, left:left + side] = 255
        yield frame
        step += 1
