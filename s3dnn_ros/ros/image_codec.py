"""
sensor_msgs/Image and CompressedImage -> numpy, without copying where the encoding allows.

The engines take H x W x C uint8 images in rgb8, bgr8, rgba8, bgra8 or mono8. Those encodings
become a strided view straight over ``msg.data`` (row padding in ``step`` is skipped by the stride,
and 8-bit channels have no byte order, so ``is_bigendian`` needs no swap). Any other encoding goes
through cv_bridge when it is importable; without it the frame is rejected with the encoding named.
Compressed images (jpeg, png: whatever OpenCV's ``imdecode`` reads) are decoded by OpenCV into
bgr8, bgra8 or mono8.
"""
from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..engine.base import ENCODINGS


class FrameRejected(ValueError):
    """A frame the node cannot use; the message says why and the node counts it."""


@functools.cache
def cv_bridge():
    """Return a CvBridge when the ROS 2 cv_bridge is importable, else None (looked up once)."""
    try:
        from cv_bridge import CvBridge
    except ImportError:
        return None
    return CvBridge()


@functools.cache
def opencv():
    """Return OpenCV's ``cv2`` module when it is importable, else None (looked up once)."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def decode_compressed(msg) -> tuple[np.ndarray, str]:
    """
    Decode a sensor_msgs/CompressedImage into (H x W x C uint8 array, engine encoding).

    Raises FrameRejected if OpenCV cannot decode it or it is not 8-bit. OpenCV releases the GIL
    while it decodes.
    """
    cv2 = opencv()
    data = np.frombuffer(msg.data, dtype=np.uint8)
    what = repr(msg.format) if msg.format else 'unnamed'
    if not data.size:
        raise FrameRejected(f'compressed image ({what} format) has no data')
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FrameRejected(f'compressed image ({what} format, '
                            f'{data.size} bytes) cannot be decoded')
    if image.dtype != np.uint8:
        raise FrameRejected(f'compressed image ({what} format) decodes to {image.dtype} pixels; '
                            'only 8-bit ones are read')
    if image.ndim == 2:
        return image[:, :, None], 'mono8'
    channels = image.shape[2]
    encoding = {1: 'mono8', 3: 'bgr8', 4: 'bgra8'}.get(channels)
    if encoding is None:
        raise FrameRejected(f'compressed image ({what} format) '
                            f'decodes to {channels} channels; read: 1, 3, 4')
    return image, encoding


def image_to_array(msg) -> tuple[np.ndarray, str]:
    """
    Return (H x W x C uint8 view, engine encoding) of a sensor_msgs/Image.

    Raises FrameRejected if unusable.
    """
    encoding = msg.encoding
    if msg.width == 0 or msg.height == 0:
        raise FrameRejected(f'image has zero size ({msg.width}x{msg.height})')
    if encoding not in ENCODINGS:
        return _convert_with_cv_bridge(msg)
    channels = ENCODINGS[encoding][0]
    row_bytes = msg.width * channels
    if msg.step < row_bytes:
        raise FrameRejected(f'step {msg.step} < width x channels = {msg.width} x {channels} = '
                            f'{row_bytes} for {encoding}')
    needed = msg.step * msg.height
    if len(msg.data) < needed:
        raise FrameRejected(f'data has {len(msg.data)} bytes, step x height = {msg.step} x '
                            f'{msg.height} = {needed}')
    buffer = np.frombuffer(msg.data, dtype=np.uint8, count=needed)
    view = as_strided(buffer, shape=(msg.height, msg.width, channels),
                      strides=(msg.step, channels, 1), writeable=False)
    return view, encoding


def _convert_with_cv_bridge(msg) -> tuple[np.ndarray, str]:
    bridge = cv_bridge()
    if bridge is None:
        raise FrameRejected(f'encoding {msg.encoding!r} is not supported without cv_bridge; '
                            f'supported: {", ".join(ENCODINGS)}')
    try:
        return np.ascontiguousarray(bridge.imgmsg_to_cv2(msg, desired_encoding='rgb8')), 'rgb8'
    except Exception as error:  # cv_bridge raises its own and OpenCV's error types
        raise FrameRejected('cv_bridge could not convert '
                            f'{msg.encoding!r} to rgb8: {error}') from error


def array_to_image(array: np.ndarray, encoding: str, msg) -> None:
    """
    Fill ``msg`` (a sensor_msgs/Image) from an H x W x C uint8 array.

    The data is copied as bytes, not a per-element copy.
    """
    height, width = array.shape[:2]
    msg.height, msg.width = height, width
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = width * (array.shape[2] if array.ndim == 3 else 1)
    msg.data = np.ascontiguousarray(array).tobytes()
