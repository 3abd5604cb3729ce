"""
camera_sim: real stamps, moving content, the configured size and encoding.

Bad parameters refused; a clean stop on SIGINT.
"""
import signal
import sys

import numpy as np
from process_helpers import interrupt_after, repo_env, REPO_ROOT
import pytest

pytest.importorskip('rclpy', reason='needs the ROS 2 rclpy wheels (make test installs them)')

from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from s3dnn_ros.ros.camera_sim import CameraSim  # noqa: E402
from s3dnn_ros.ros.config import ConfigError  # noqa: E402
from s3dnn_ros.ros.image_codec import image_to_array  # noqa: E402
from s3dnn_ros.ros.pattern import make_frames  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402


def test_publishes_moving_frames_with_increasing_stamps(session):
    sim = session.add(CameraSim(context=session.context, parameter_overrides=[
        Parameter('topic', value='/sim/image_raw'), Parameter('fps', value=50.0),
        Parameter('width', value=80), Parameter('height', value=60),
        Parameter('encoding', value='bgra8'), Parameter('frame_id', value='sim')]))
    listener = session.add(Node('listener', context=session.context))
    received = []
    listener.create_subscription(Image, '/sim/image_raw', received.append, qos_profile_sensor_data)
    assert session.spin_until(lambda: len(received) >= 3, 20)
    first, second = received[0], received[1]
    assert (first.width, first.height, first.encoding, first.header.frame_id) == \
        (80, 60, 'bgra8', 'sim')
    t = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in received[:3]]
    assert t[0] > 0 and t[0] < t[1] < t[2]
    assert not np.array_equal(image_to_array(first)[0], image_to_array(second)[0])
    assert sim.published >= 3


@pytest.mark.parametrize('encoding', ['rgb8', 'mono8', 'rgba8'])
def test_frames_have_the_encoding_shape_and_move(encoding):
    frames = make_frames(32, 24, encoding)
    a, b = next(frames), next(frames)
    assert a.shape == (24, 32, {'rgb8': 3, 'mono8': 1, 'rgba8': 4}[encoding]) \
        and a.dtype == np.uint8
    assert not np.array_equal(a, b) and a.std() > 10


@pytest.mark.parametrize('name, value', [('fps', 0.0), ('width', 4), ('encoding', 'yuv422'),
                                         ('reliability', 'x')])
def test_invalid_parameters_are_refused(session, name, value):
    with pytest.raises(ConfigError, match=rf'parameter {name}='):
        CameraSim(context=session.context, parameter_overrides=[Parameter(name, value=value)])


def test_main_stops_cleanly_on_sigint_while_publishing():
    env = repo_env()
    returncode, output = interrupt_after(
        [sys.executable, '-m', 's3dnn_ros.ros.camera_sim', '--ros-args', '-p', 'fps:=200.0',
         '-p', 'width:=64', '-p', 'height:=48'], 'at 200 FPS on', [signal.SIGINT], cwd=REPO_ROOT,
        env=env)
    assert returncode == 0, output
    assert 'Traceback' not in output and 'Fatal Python error' not in output
