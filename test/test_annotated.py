"""
<camera>.annotated: s3dnn/<camera>/annotated carries a small bgr8 copy of some frames.

The copy has the source header, the top classes and the latency written on it and a border that is
green for a frame that made its deadline and red for one that missed; at most annotated_hz pictures
a second per camera.
"""
import numpy as np
import pytest

pytest.importorskip('rclpy', reason='needs the ROS 2 rclpy wheels (make test installs them)')
pytest.importorskip(
    'cv2', reason='annotated pictures need OpenCV (make test installs opencv-python-headless)')

from rclpy.node import Node  # noqa: E402
from ros_helpers import Driver, overrides  # noqa: E402
from s3dnn_ros.ros import overlay  # noqa: E402
from s3dnn_ros.ros.perception_node import PerceptionNode  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402


def test_annotated_pictures_mark_the_deadline_and_respect_the_rate(session):
    params = {'cameras': ['ontime', 'late', 'plain'], 'engine': 'reference',
              'detections_format': 'json', 'annotated_hz': 0.5, 'annotated_width': 64,
              'ontime.annotated': True, 'ontime.deadline_ms': 60_000.0, 'ontime.queue_depth': 8,
              'late.annotated': True, 'late.deadline_ms': 0.01, 'late.queue_depth': 8,
              'plain.queue_depth': 8}
    session.add(PerceptionNode(context=session.context, parameter_overrides=overrides(params)))
    driver = session.add(Driver(session.context, ['ontime', 'late', 'plain']))
    viewer = session.add(Node('viewer', context=session.context))
    pictures = {'ontime': [], 'late': []}
    for name in pictures:
        viewer.create_subscription(Image, f'/s3dnn/{name}/annotated', pictures[name].append, 10)
    assert viewer.count_publishers('/s3dnn/plain/annotated') == 0
    assert session.spin_until(driver.connected)
    for k in range(4):  # 4 frames in well under 2 s: one picture per camera at 0.5 per second
        for name in ('ontime', 'late', 'plain'):
            driver.send(name, 100 + k, shape=(48, 64, 3))
    assert session.spin_until(lambda: all(len(driver.detections[n]) == 4
                                          for n in ('ontime', 'late', 'plain')), 60)
    assert session.spin_until(lambda: all(pictures.values()), 10)
    session.spin_for(0.3)
    for name, colour in (('ontime', overlay.GREEN), ('late', overlay.RED)):
        assert len(pictures[name]) == 1
        msg = pictures[name][0]
        assert (msg.header.stamp.sec, msg.header.frame_id) == (100, f'{name}_optical')
        assert (msg.encoding, msg.width, msg.height, msg.step) == ('bgr8', 64, 48, 192)
        picture = np.frombuffer(bytes(msg.data), np.uint8).reshape(48, 64, 3)
        assert tuple(picture[0, 32]) == colour and tuple(picture[47, 0]) == colour  # the border
        # the frame and text inside
        assert len({tuple(p) for p in picture[8:40, 8:56].reshape(-1, 3)}) > 3


def test_thumbnail_converts_every_encoding_to_bgr():
    rgb = np.zeros((10, 20, 3), np.uint8)
    rgb[..., 0] = 200  # red in rgb8
    small = overlay.thumbnail(rgb, 'rgb8', 10)
    assert small.shape == (5, 10, 3) and tuple(small[2, 2]) == (0, 0, 200)
    gray = np.full((10, 20, 1), 77, np.uint8)
    # never wider than the image
    assert tuple(overlay.thumbnail(gray, 'mono8', 40)[0, 0]) == (77, 77, 77)
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[..., 0] = 9
    assert overlay.thumbnail(bgra, 'bgra8', 4).shape == (4, 4, 3)
