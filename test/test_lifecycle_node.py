"""
perception_lifecycle_node: each lifecycle transition does its part of the perception node's work.

Unconfigured: no worker, no camera subscription; configure: the worker runs, detections publishers
exist, frames are not taken yet; activate: frames flow; deactivate: no new frames are taken, the
worker and every counter are kept; activate again: the same worker goes on; cleanup: no worker
process and no shared-memory segment left; a worker that cannot start fails configure and the node
stays unconfigured.
"""
import os
import time

import pytest

pytest.importorskip('rclpy', reason='needs the ROS 2 rclpy wheels (make test installs them)')

from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from ros_helpers import Driver, overrides  # noqa: E402
from s3dnn_ros.ros.config import ConfigError  # noqa: E402
from s3dnn_ros.ros.perception_lifecycle_node import PerceptionLifecycleNode  # noqa: E402
from s3dnn_ros.scheduler.placement import Slot  # noqa: E402

CAMERAS = ['cam0', 'cam1']


def params(**extra):
    result = {'cameras': CAMERAS, 'engine': 'reference', 'detections_format': 'json',
              'diagnostics_period_s': 0.25}
    for name in CAMERAS:
        result[f'{name}.deadline_ms'] = 60_000.0
        result[f'{name}.queue_depth'] = 8
    result.update(extra)
    return result


def subscribers(driver) -> int:
    return sum(pub.get_subscription_count() for pub in driver.image_pubs.values())


def test_transitions_do_their_part_and_keep_state_across_deactivate(session):
    node = session.add(PerceptionLifecycleNode(context=session.context,
                                               parameter_overrides=overrides(params())))
    driver = session.add(Driver(session.context, CAMERAS))
    session.spin_for(0.3)
    assert not node.workers and subscribers(driver) == 0

    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    pid = node.workers[Slot(0)].pid
    os.kill(pid, 0)  # the worker runs
    assert session.spin_until(lambda: all(sub.get_publisher_count() > 0
                                          for sub in driver.detection_subs))
    session.spin_for(0.3)
    assert subscribers(driver) == 0

    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert session.spin_until(lambda: subscribers(driver) == len(CAMERAS))
    for camera in CAMERAS:
        driver.send(camera, 1)
    assert session.spin_until(lambda: all(driver.detections[c] for c in CAMERAS), 60)

    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert session.spin_until(lambda: subscribers(driver) == 0)
    driver.send('cam0', 2)  # nobody takes it
    session.spin_for(0.5)
    assert node.cameras['cam0'].received == 1 and node.workers[Slot(0)].pid == pid

    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert session.spin_until(lambda: subscribers(driver) == len(CAMERAS))
    driver.send('cam0', 3)
    assert session.spin_until(lambda: len(driver.detections['cam0']) == 2, 60)
    assert node.cameras['cam0'].received == 2 and node.cameras['cam0'].completed == 2 \
        and node.workers[Slot(0)].pid == pid

    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    segments = node.workers[Slot(0)].segments()
    assert segments and all(os.path.exists(f'/dev/shm/{name}') for name in segments)
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert not node.workers and node.cameras == {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not any(os.path.exists(f'/dev/shm/{name}') for name in segments)
    assert node._state_machine.current_state[1] == 'unconfigured'

    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS  # and it can start again
    assert node.workers[Slot(0)].pid != pid
    assert node.trigger_shutdown() == TransitionCallbackReturn.SUCCESS
    assert not node.workers


def test_a_worker_that_cannot_start_fails_configure(session, tmp_path):
    from lifecycle_msgs.msg import State

    node = session.add(PerceptionLifecycleNode(
        context=session.context,
        parameter_overrides=overrides(params(weights=str(tmp_path / 'missing.npz')))))
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert not node.workers
    assert node._state_machine.current_state[0] == State.PRIMARY_STATE_UNCONFIGURED


def test_a_bad_parameter_stops_the_lifecycle_node_at_once(session):
    with pytest.raises(ConfigError) as error:
        PerceptionLifecycleNode(context=session.context,
                                parameter_overrides=overrides(params(policy='rr')))
    assert str(error.value).startswith("parameter policy='rr': allowed one of s3dnn")


def test_a_destroyed_lifecycle_node_leaves_the_graph(session):
    """
    A destroyed lifecycle node leaves the graph.

    rclpy's LifecycleNode keeps its node on the graph until its state machine is collected; this
    one's destroy_node removes it, so a later node of the same name is not reported as a second
    one.
    """
    from rclpy.node import Node
    probe = session.add(Node('probe', context=session.context))
    node = PerceptionLifecycleNode(context=session.context,
                                   parameter_overrides=overrides(params()))
    assert session.spin_until(
        lambda: ('s3dnn_perception', '/') in probe.get_node_names_and_namespaces())
    node.destroy_node()
    assert session.spin_until(
        lambda: ('s3dnn_perception', '/') not in probe.get_node_names_and_namespaces(), 10)
