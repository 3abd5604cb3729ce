"""
Detections as vision_msgs.

Classification messages carrying each frame's header and its classes best first, named by the
labels, and one LabelInfo (transient local, so a late subscriber still gets it) mapping every class
id to its name. vision_msgs has no PyPI wheel, so ``make test`` (CI) skips these; they run wherever
vision_msgs is installed (a ROS 2 install, or built from source).
"""
import numpy as np
import pytest

pytest.importorskip('rclpy', reason='needs the ROS 2 rclpy wheels (make test installs them)')
pytest.importorskip('vision_msgs',
                    reason='needs vision_msgs (no PyPI wheel; part of a ROS 2 install)')

from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSDurabilityPolicy, QoSProfile  # noqa: E402
from ros_helpers import overrides  # noqa: E402
from s3dnn_ros.ros.config import imagenet_classes  # noqa: E402
from s3dnn_ros.ros.image_codec import array_to_image  # noqa: E402
from s3dnn_ros.ros.perception_node import PerceptionNode  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Classification, LabelInfo  # noqa: E402


def test_classification_and_label_info(session):
    params = {'cameras': ['cam0'], 'engine': 'reference', 'detections_format': 'vision_msgs',
              'labels': 'imagenet', 'cam0.deadline_ms': 60_000.0, 'cam0.queue_depth': 8}
    node = session.add(PerceptionNode(context=session.context,
                                      parameter_overrides=overrides(params)))
    client = session.add(Node('vision_client', context=session.context))
    got = []
    client.create_subscription(Classification, '/s3dnn/cam0/detections', got.append, 10)
    publisher = client.create_publisher(Image, '/cam0/image_raw', 10)
    assert session.spin_until(lambda: publisher.get_subscription_count() > 0
                              and node.cameras['cam0'].publisher.get_subscription_count() > 0)
    msg = Image()
    array_to_image(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8), 'rgb8',
                   msg)
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = 5, 9, 'cam0_frame'
    publisher.publish(msg)
    assert session.spin_until(lambda: got, 60)
    detection = got[0]
    assert (detection.header.stamp.sec, detection.header.stamp.nanosec,
            detection.header.frame_id) == (5, 9, 'cam0_frame')
    names = imagenet_classes()
    assert len(detection.results) == 5 and all(r.class_id in names for r in detection.results)
    scores = [r.score for r in detection.results]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
    infos = []  # a subscriber that comes after the node published it still gets the class map
    late = session.add(Node('late_listener', context=session.context))
    late.create_subscription(LabelInfo, '/s3dnn/label_info', infos.append,
                             QoSProfile(depth=1, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL))
    assert session.spin_until(lambda: infos, 20)
    assert len(infos[0].class_map) == 1000
    assert [(c.class_id, c.class_name) for c in infos[0].class_map[:2]] == [(0, 'tench'),
                                                                            (1, 'goldfish')]
