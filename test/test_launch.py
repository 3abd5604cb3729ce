"""
perception.launch.py through a real ``ros2 launch``.

A config that is not a file and a node that fails at start end the launch with status 1; the demo
in a namespace publishes every camera's detections under it and stops with status 0 on Ctrl-C.

The launch system and ros2cli are not on PyPI, so ``make test`` (CI) has neither and these tests
skip there; they run wherever the package is built in a ROS 2 workspace with ``ros2`` on the PATH.
"""
import json
import os
import shutil
import signal
import subprocess

import pytest

pytest.importorskip('launch',
                    reason='needs the ROS 2 launch package (not on PyPI; part of a ROS 2 install)')
pytest.importorskip('launch_ros', reason='needs launch_ros (not on PyPI; part of a ROS 2 install)')
if shutil.which('ros2') is None:
    pytest.skip('needs the ros2 command (ros2cli, part of a ROS 2 install)',
                allow_module_level=True)
ament_index = pytest.importorskip('ament_index_python.packages')
try:
    ament_index.get_package_share_directory('s3dnn_ros')
except ament_index.PackageNotFoundError:
    pytest.skip('s3dnn_ros is not installed in the ament index (colcon build, then source)',
                allow_module_level=True)

from rclpy.node import Node  # noqa: E402
from ros_helpers import RosSession  # noqa: E402
from s3dnn_ros.ros.messages import vision_msgs_types  # noqa: E402
from std_msgs.msg import String  # noqa: E402


def launch(*arguments, timeout=90) -> subprocess.CompletedProcess:
    return subprocess.run(['ros2', 'launch', 's3dnn_ros', 'perception.launch.py', *arguments],
                          capture_output=True, text=True, timeout=timeout)


def test_a_config_that_is_not_a_file_stops_the_launch():
    result = launch('config:=/nonexistent/params.yaml')
    assert result.returncode == 1
    assert "launch argument config='/nonexistent/params.yaml': no such file" in \
        result.stderr + result.stdout
    assert 'perception_node' not in result.stdout  # nothing was started


def test_a_node_that_fails_at_start_makes_the_launch_fail():
    result = launch('engine:=reference', 'policy:=bogus')
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "parameter policy='bogus'" in output \
        and 's3dnn_perception exited with status 2' in output


def test_the_demo_in_a_namespace_publishes_there_and_stops_with_status_0():
    session = RosSession()
    got = []
    listener = session.add(Node('launch_listener', context=session.context))
    types = vision_msgs_types()  # the shipped config has detections_format: auto
    if types is None:
        listener.create_subscription(
            String, '/robot1/s3dnn/front/detections',
            lambda msg: got.append(json.loads(msg.data)['header']['frame_id']), 10)
    else:
        listener.create_subscription(types[0], '/robot1/s3dnn/front/detections',
                                     lambda msg: got.append(msg.header.frame_id), 10)
    process = subprocess.Popen(['ros2', 'launch', 's3dnn_ros', 'perception.launch.py',
                                'engine:=reference', 'demo:=true', 'namespace:=/robot1'],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        assert session.spin_until(lambda: got, 60), \
            'no detections on /robot1/s3dnn/front/detections'
        assert got[0] == 'front'  # camera_sim's frame_id, carried from the image
    finally:
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=60)
        session.close()
    assert process.returncode == 0, output
