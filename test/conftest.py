"""
Test session set-up: an isolated ROS 2 environment.

A random domain, temporary ROS home and logs, set before anything initialises rclpy so parallel
runs never talk to each other; the ROS home is removed when the session's process exits.
"""
import atexit
import os
import random
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # scheduling_helpers, ros_helpers

_ROS_HOME = tempfile.mkdtemp(prefix='s3dnn-test-ros-')
atexit.register(shutil.rmtree, _ROS_HOME, ignore_errors=True)
os.environ['ROS_DOMAIN_ID'] = str(random.SystemRandom().randint(1, 101))
os.environ['ROS_HOME'] = _ROS_HOME
os.environ['ROS_LOG_DIR'] = os.path.join(_ROS_HOME, 'log')
os.environ.setdefault('RCUTILS_LOGGING_BUFFERED_STREAM', '1')


@pytest.fixture
def session():
    """
    Yield a ROS 2 context with an executor (ros_helpers.RosSession), closed after the test.

    Only tests of modules that found rclpy ask for it, so rclpy is imported here only then.
    """
    from ros_helpers import RosSession
    ros = RosSession()
    yield ros
    ros.close()
