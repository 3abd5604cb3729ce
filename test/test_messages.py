"""Detection messages: the JSON form, and the vision_msgs/Classification mapping."""
import json
from types import SimpleNamespace

import pytest

pytest.importorskip('std_msgs', reason='needs the ROS 2 message wheels (make test installs them)')

from s3dnn_ros.ros.messages import Detection, DetectionEncoder, label_info, status  # noqa: E402
from std_msgs.msg import Header, String  # noqa: E402


def detection(labels=None):
    header = Header(frame_id='front_optical')
    header.stamp.sec, header.stamp.nanosec = 12, 345
    return Detection('front', header, [7, 3], [0.6, 0.25], labels, 12.5, 100.0, False)


def test_json_schema():
    encoder = DetectionEncoder(types=None)
    assert encoder.msg_type is String and encoder.type_name == 'std_msgs/msg/String (JSON)'
    data = json.loads(encoder.encode(detection()).data)
    assert data == {'header': {'stamp': {'sec': 12, 'nanosec': 345}, 'frame_id': 'front_optical'},
                    'camera': 'front',
                    'classes': [{'id': 7, 'label': None, 'score': 0.6},
                                {'id': 3, 'label': None, 'score': 0.25}], 'latency_ms': 12.5,
                    'deadline_ms': 100.0, 'missed': False}
    labelled = json.loads(encoder.encode(detection([f'c{i}' for i in range(10)])).data)
    assert [c['label'] for c in labelled['classes']] == ['c7', 'c3']


class FakeHypothesis(SimpleNamespace):
    """
    Stands in for vision_msgs/ObjectHypothesis (fields class_id, score).

    It is used where vision_msgs is absent.
    """


class FakeClassification(SimpleNamespace):
    """Stands in for vision_msgs/Classification (fields header, results)."""


def test_classification_mapping_copies_the_header_and_orders_results():
    encoder = DetectionEncoder(types=(FakeClassification, FakeHypothesis))
    assert encoder.type_name == 'vision_msgs/msg/Classification' \
        and encoder.msg_type is FakeClassification
    msg = encoder.encode(detection())
    assert msg.header.frame_id == 'front_optical' and msg.header.stamp.nanosec == 345
    assert [(r.class_id, r.score) for r in msg.results] == [('7', 0.6), ('3', 0.25)]
    named = encoder.encode(detection([f'c{i}' for i in range(10)]))
    assert [r.class_id for r in named.results] == ['c7', 'c3']


def test_status_values_are_strings():
    s = status('s3dnn: front', 'WARN', 'slow', 'cpu', {'received': 3, 'ratio': 0.25, 'name': 'x'})
    assert s.level == b'\x01' and s.hardware_id == 'cpu'
    assert [(kv.key, kv.value) for kv in s.values] == [('received', '3'), ('ratio', '0.2500'),
                                                       ('name', 'x')]


class FakeLabelInfo(SimpleNamespace):
    """Stands in for vision_msgs/LabelInfo (fields header, class_map, threshold)."""


class FakeVisionClass(SimpleNamespace):
    """Stands in for vision_msgs/VisionClass (fields class_id, class_name)."""


def test_label_info_maps_every_class_id_to_its_name():
    header = Header(frame_id='')
    msg = label_info((FakeLabelInfo, FakeVisionClass), ['tench', 'goldfish', 'shark'], header)
    assert msg.header is header and msg.threshold == 0.0
    assert [(c.class_id, c.class_name) for c in msg.class_map] == [(0, 'tench'), (1, 'goldfish'),
                                                                   (2, 'shark')]
