"""
camera_sim: publishes sensor_msgs/Image with real stamps and moving content.

It is meant for machines without cameras. Each frame is the moving test pattern of
``pattern.make_frames``.

Parameters: topic, fps, width, height, encoding (rgb8|bgr8|rgba8|bgra8|mono8), frame_id,
reliability (default reliable: as REP 2003 asks of sensor drivers, so that reliable and best-effort
subscribers alike receive the frames).
"""
from __future__ import annotations

from rclpy.node import Node
from sensor_msgs.msg import Image

from .config import ConfigError, RELIABILITY
from .image_codec import array_to_image
from .pattern import make_frames
from .spin import image_qos, run_node
from ..engine.base import ENCODINGS


class CameraSim(Node):
    """A fake camera: one Image per timer tick."""

    def __init__(self, name: str = 'camera_sim', **node_options):
        super().__init__(name, **node_options)
        self.topic = self.declare_parameter('topic', 'camera/image_raw').value
        fps = self.declare_parameter('fps', 30.0).value
        width = self.declare_parameter('width', 640).value
        height = self.declare_parameter('height', 480).value
        encoding = self.declare_parameter('encoding', 'rgb8').value
        self.frame_id = self.declare_parameter('frame_id', 'camera').value
        reliability = self.declare_parameter('reliability', 'reliable').value
        problems = [f'{name}={value!r}: allowed {allowed}' for name, value, ok, allowed in (
            ('fps', fps, 0 < fps <= 1000, 'a number in (0, 1000]'),
            ('width', width, 8 <= width <= 8192, 'an integer 8..8192'),
            ('height', height, 8 <= height <= 8192, 'an integer 8..8192'),
            ('encoding', encoding, encoding in ENCODINGS, ', '.join(ENCODINGS)),
            ('reliability', reliability, reliability in RELIABILITY, ', '.join(RELIABILITY)))
                    if not ok]
        if problems:
            self.destroy_node()
            raise ConfigError('parameter ' + problems[0])
        self.encoding = encoding
        self.published = 0
        self._frames = make_frames(width, height, encoding)
        self.publisher = self.create_publisher(Image, self.topic, image_qos(reliability, 5))
        self.create_timer(1.0 / fps, self._tick)
        self.get_logger().info(f'{width}x{height} {encoding} at {fps:g} FPS on '
                               f'{self.publisher.topic_name}')

    def _tick(self) -> None:
        msg = Image()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.frame_id
        array_to_image(next(self._frames), self.encoding, msg)
        self.publisher.publish(msg)
        self.published += 1


def main(args=None):
    return run_node(CameraSim, 'camera_sim', (ConfigError,), args)


if __name__ == '__main__':
    raise SystemExit(main())
