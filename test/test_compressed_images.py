"""
Cameras with ``transport: compressed``.

sensor_msgs/CompressedImage on ``<topic>/compressed``, decoded by OpenCV on decoder threads. A png
frame (lossless) gives exactly the detection its pixels give as a raw bgr8 frame; jpeg frames come
through with their headers; data that does not decode is rejected with the reason, while the other
cameras go on; the decode time is on /diagnostics and inside the latency.
"""
import numpy as np
import pytest

pytest.importorskip('rclpy', reason='needs the ROS 2 rclpy wheels (make test installs them)')
cv2 = pytest.importorskip(
    'cv2', reason='compressed images need OpenCV (make test installs opencv-python-headless)')

from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, QoSReliabilityPolicy  # noqa: E402
from ros_helpers import Driver, overrides, values  # noqa: E402
from s3dnn_ros.ros import perception_node  # noqa: E402
from s3dnn_ros.ros.config import ConfigError  # noqa: E402
from s3dnn_ros.ros.image_codec import array_to_image  # noqa: E402
from s3dnn_ros.ros.perception_node import PerceptionNode  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402


def params(**extra):
    result = {'cameras': ['raw', 'packed'], 'engine': 'reference', 'diagnostics_period_s': 0.25,
              'packed.transport': 'compressed'}
    for name in ('raw', 'packed'):
        result[f'{name}.deadline_ms'] = 60_000.0
        result[f'{name}.queue_depth'] = 8
    result.update(extra)
    return result


def compressed(data: bytes, fmt: str, sec: int) -> CompressedImage:
    msg = CompressedImage(format=fmt, data=data)
    msg.header.stamp.sec = sec
    msg.header.frame_id = f'packed_{sec}'
    return msg


def test_compressed_frames_are_decoded_and_detected_like_their_pixels(session):
    node = session.add(PerceptionNode(context=session.context,
                                      parameter_overrides=overrides(params())))
    driver = session.add(Driver(session.context, ['raw', 'packed']))
    sender = session.add(Node('compressed_sender', context=session.context))
    publisher = sender.create_publisher(CompressedImage, '/packed/image_raw/compressed',
                                        QoSProfile(depth=20,
                                                   reliability=QoSReliabilityPolicy.BEST_EFFORT))
    assert session.spin_until(lambda: publisher.get_subscription_count() > 0
                              and driver.image_pubs['raw'].get_subscription_count() > 0
                              and all(sub.get_publisher_count() > 0
                                      for sub in driver.detection_subs))
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)  # bgr
    ok, png = cv2.imencode('.png', pixels)
    ok2, jpeg = cv2.imencode('.jpg', pixels)
    assert ok and ok2
    publisher.publish(compressed(png.tobytes(), 'png', 1))
    publisher.publish(compressed(jpeg.tobytes(), 'jpeg', 2))
    publisher.publish(compressed(b'\xff\xd8 not a jpeg at all', 'jpeg', 3))
    raw = Image()
    array_to_image(pixels, 'bgr8', raw)  # the png's pixels, sent raw
    driver.send('raw', 1, msg=raw)
    assert session.spin_until(lambda: len(driver.detections['packed']) == 2
                              and len(driver.detections['raw']) == 1
                              and node.cameras['packed'].rejected == 1, 60)
    by_sec = {d['header']['stamp']['sec']: d for d in driver.detections['packed']}
    assert sorted(by_sec) == [1, 2] and by_sec[1]['header']['frame_id'] == 'packed_1'
    same_pixels = driver.detections['raw'][0]
    assert [c['id'] for c in by_sec[1]['classes']] == [c['id'] for c in same_pixels['classes']]
    assert [c['score'] for c in by_sec[1]['classes']] == \
        pytest.approx([c['score'] for c in same_pixels['classes']])
    camera = node.cameras['packed']
    assert camera.received == 3 and camera.completed == 2 and camera.decoded == 3
    assert 'cannot be decoded' in camera.last_reject_reason \
        and "'jpeg' format" in camera.last_reject_reason
    assert session.spin_until(lambda: any('decode ms (mean)' in values(s)
                                          for s in driver.statuses('s3dnn: packed')))
    status = [s for s in driver.statuses('s3dnn: packed') if 'decode ms (mean)' in values(s)][-1]
    assert float(values(status)['decode ms (mean)']) > 0


def test_a_decode_backlog_drops_frames_and_counts_them(session, monkeypatch):
    """
    Frames that arrive while DECODE_BACKLOG of their camera's wait for a decoder are dropped.

    They are counted, never queued without bound.
    """
    monkeypatch.setattr(perception_node, 'DECODE_BACKLOG', 1)
    node = session.add(PerceptionNode(context=session.context,
                                      parameter_overrides=overrides(params())))
    camera = node.cameras['packed']
    camera.decoding = 1  # one frame already with a decoder
    ok, png = cv2.imencode('.png', np.zeros((8, 8, 3), np.uint8))
    node._on_compressed(camera, compressed(png.tobytes(), 'png', 1))
    assert camera.received == 1 and camera.dropped['decode backlog'] == 1 and camera.decoding == 1


def test_compressed_transport_without_opencv_stops_the_node(session, monkeypatch):
    monkeypatch.setattr(perception_node, 'opencv', lambda: None)
    with pytest.raises(ConfigError) as error:
        PerceptionNode(context=session.context, parameter_overrides=overrides(params()))
    assert str(error.value).startswith("parameter packed.transport='compressed': "
                                       'allowed only with OpenCV')


def test_an_unknown_transport_is_refused(session):
    with pytest.raises(ConfigError) as error:
        PerceptionNode(context=session.context,
                       parameter_overrides=overrides(params(**{'packed.transport': 'theora'})))
    assert str(error.value).startswith("parameter packed.transport='theora': allowed")
