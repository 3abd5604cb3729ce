"""
The annotated picture of a camera (``<camera>.annotated``).

What the node decided, drawn on a small copy of the frame, for a person to look at (rqt_image_view,
RViz).

At reception the node keeps a downscaled BGR copy of at most ``annotated_hz`` frames a second per
camera (:func:`thumbnail`); when such a frame's result comes back, :func:`annotate` writes its top
classes and its latency against the deadline on it, with a border that is green when the frame made
its deadline and red when it missed, and the node publishes it as sensor_msgs/Image (bgr8) with the
source header. All of it runs on the node's executor from the frames it already has: nothing in the
scheduler worker or on the GPU. Uses OpenCV (resize, colour conversion, text).
"""
from __future__ import annotations

import numpy as np

from .image_codec import opencv

#: border width in pixels of the deadline mark
BORDER = 4
GREEN, RED, WHITE, BLACK = (0, 200, 0), (0, 0, 230), (255, 255, 255), (0, 0, 0)
#: classes written on the picture
CLASSES_SHOWN = 3

_TO_BGR = {'rgb8': 'COLOR_RGB2BGR', 'rgba8': 'COLOR_RGBA2BGR', 'bgra8': 'COLOR_BGRA2BGR',
           'mono8': 'COLOR_GRAY2BGR'}


def thumbnail(image: np.ndarray, encoding: str, width: int) -> np.ndarray:
    """
    Return a BGR copy of ``image`` (an engine encoding) ``width`` pixels wide.

    It is never wider than the image, and keeps its aspect ratio.
    """
    cv2 = opencv()
    height, full_width = image.shape[:2]
    width = min(width, full_width)
    size = (width, max(1, round(height * width / full_width)))
    small = cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA)
    if encoding == 'bgr8':
        return small
    if small.ndim == 2:
        small = small[:, :, None]
    return cv2.cvtColor(small, getattr(cv2, _TO_BGR[encoding]))


def annotate(picture: np.ndarray, classes: list[tuple[str, float]], latency_ms: float,
             deadline_ms: float, missed: bool) -> np.ndarray:
    """
    Draw the first CLASSES_SHOWN ``(name, score)`` classes, the latency and the deadline mark.

    They are drawn on ``picture`` (BGR, changed in place and returned).
    """
    cv2 = opencv()
    colour = RED if missed else GREEN
    height, width = picture.shape[:2]
    cv2.rectangle(picture, (0, 0), (width - 1, height - 1), colour, BORDER)
    scale = max(0.3, width / 640)
    step = max(10, round(22 * scale))
    lines = [f'{name} {score:.2f}' for name, score in classes[:CLASSES_SHOWN]]
    lines.append(f'{latency_ms:.1f} / {deadline_ms:g} ms{" MISSED" if missed else ""}')
    for row, text in enumerate(lines):
        origin = (BORDER + 4, BORDER + step * (row + 1))
        cv2.putText(picture, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, BLACK, 3, cv2.LINE_AA)
        cv2.putText(picture, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale,
                    colour if row == len(lines) - 1 else WHITE, 1, cv2.LINE_AA)
    return picture
