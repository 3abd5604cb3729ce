"""
Fuzzed camera frames against the real node.

Random width, height, step, encoding, data length and byte order, sent beside a good camera. No
frame crashes the node or the worker, every frame is accounted for (received = completed + dropped
+ rejected), exactly the unusable ones are rejected, and the good camera keeps its detections. CI
runs a fixed seed; S3DNN_FUZZ_SEED and S3DNN_FUZZ_FRAMES run a longer one by hand (README: Bad
input).
"""
import os

import numpy as np
import pytest

pytest.importorskip('rclpy', reason='needs the ROS 2 rclpy wheels (make test installs them)')

from ros_helpers import Driver, overrides, RosSession  # noqa: E402
from s3dnn_ros.engine.base import ENCODINGS  # noqa: E402
from s3dnn_ros.ros.image_codec import cv_bridge  # noqa: E402
from s3dnn_ros.ros.perception_node import PerceptionNode  # noqa: E402
from s3dnn_ros.scheduler.placement import Slot  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

SEED = int(os.environ.get('S3DNN_FUZZ_SEED', '0'))
FRAMES = int(os.environ.get('S3DNN_FUZZ_FRAMES', '60'))
OTHER_ENCODINGS = ['yuv422', 'bayer_rggb8', '16UC1', 'mono16', '', 'RGB8', 'rgb8\n']


def fuzzed_frame(rng) -> tuple[Image, bool]:
    """
    Return a random frame, and whether the node can use it.

    Usable: non-zero size, an encoding it reads in place, a step of at least a row, data of at
    least step x height.
    """
    encoding = str(rng.choice(list(ENCODINGS) + OTHER_ENCODINGS))
    width, height = int(rng.integers(0, 40)), int(rng.integers(0, 30))
    channels = ENCODINGS[encoding][0] if encoding in ENCODINGS else 2
    row = width * channels
    step = max(0, row + int(rng.choice([0, 0, 0, 3, -1, -row])))
    length = max(0, step * height + int(rng.choice([0, 0, 0, 5, -1, -step * height])))
    msg = Image(height=height, width=width, encoding=encoding,
                is_bigendian=int(rng.integers(0, 2)), step=step,
                data=rng.integers(0, 256, length, dtype=np.uint8).tobytes())
    usable = (width > 0 and height > 0 and encoding in ENCODINGS and step >= row
              and length >= step * height)
    return msg, usable


@pytest.mark.skipif(cv_bridge() is not None,
                    reason='with cv_bridge other encodings are converted, not rejected')
def test_fuzzed_frames_are_rejected_exactly_when_unusable_and_all_accounted_for():
    session = RosSession()
    try:
        params = {'cameras': ['good', 'fuzz'], 'engine': 'reference', 'diagnostics_period_s': 0.25,
                  # what the test driver reads, with or without vision_msgs
                  'detections_format': 'json'}
        for name in ('good', 'fuzz'):
            params[f'{name}.deadline_ms'] = 60_000.0
            params[f'{name}.queue_depth'] = 1000
        node = session.add(PerceptionNode(context=session.context,
                                          parameter_overrides=overrides(params)))
        driver = session.add(Driver(session.context, ['good', 'fuzz']))
        assert session.spin_until(driver.connected), 'discovery did not complete'
        rng = np.random.default_rng(SEED)
        usable = 0
        for k in range(FRAMES):
            msg, ok = fuzzed_frame(rng)
            usable += ok
            driver.send('fuzz', k, msg=msg)
            if k % 10 == 0:
                driver.send('good', k)
            session.spin_for(0.01)
        fuzz, good = node.cameras['fuzz'], node.cameras['good']
        assert session.spin_until(lambda: fuzz.received == FRAMES and node.pending() == 0, 120)
        assert fuzz.rejected == FRAMES - usable
        assert fuzz.completed + sum(fuzz.dropped.values()) == usable and not fuzz.dropped
        assert session.spin_until(lambda: len(driver.detections['good']) == good.received ==
                                  (FRAMES + 9) // 10, 60)
        assert node.workers[Slot(0)].restarts == 0
    finally:
        session.close()


def fuzzed_parameters(rng) -> dict:
    """Parameters with a few random values of random types for known and near-known names."""
    from s3dnn_ros.ros.config import CAMERA_PARAMETERS, GLOBAL_PARAMETERS
    names = [name for name, _, _ in GLOBAL_PARAMETERS if name != 'cameras']
    names += [f'cam0.{key}' for key, _, _ in CAMERA_PARAMETERS] \
        + ['cam1.deadline_ms', 'polic', 'cam0.deadline']
    values = [0, -1, 1, 7, 2**40, 0.0, -0.5, 1e-9, 1e300, float('nan'), float('inf'), True, False,
              '', 'x', 'reliable', 's3dnn', '/cam0/image_raw', 'not a topic', [1, 2], ['a', 'b'],
              [0.5]]
    params = {'cameras': ['cam0'], 'engine': 'reference'}
    for _ in range(int(rng.integers(1, 4))):
        params[str(rng.choice(names))] = values[int(rng.integers(0, len(values)))]
    return params


def test_fuzzed_parameters_start_the_node_or_stop_it_with_one_line():
    """
    Whatever the values, the node either starts or raises ConfigError / WorkerError.

    One line, which the programs print before exit 2: never another exception.
    """
    from s3dnn_ros.ros.config import ConfigError
    from s3dnn_ros.worker.client import WorkerError
    session = RosSession()
    rng = np.random.default_rng(SEED)
    outcomes = {'started': 0, 'refused': 0}
    try:
        for _ in range(max(20, FRAMES // 3)):
            params = fuzzed_parameters(rng)
            try:
                node = PerceptionNode(context=session.context,
                                      parameter_overrides=overrides(params))
            except (ConfigError, WorkerError) as error:
                assert '\n' not in str(error) \
                    and str(error).startswith(('parameter', 'parameters file')), params
                outcomes['refused'] += 1
            else:
                node.destroy_node()
                outcomes['started'] += 1
    finally:
        session.close()
    assert outcomes['refused'] > 0 and outcomes['started'] > 0
