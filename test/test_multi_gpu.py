"""
Several GPUs: cameras placed on GPUs, one scheduler worker per GPU, diagnostics per GPU.

The placement rules (s3dnn_ros/ros/placement.py) are checked on configurations; the node runs with
two reference-engine workers (devices 0 and 1 are labels to the reference engine), so partitioning,
per-GPU statuses and a killed worker beside one that keeps serving are checked on any machine.
"""
import os
import signal

import pytest

rclpy = pytest.importorskip('rclpy',
                            reason='needs the ROS 2 rclpy wheels (make test installs them)')
DiagnosticStatus = pytest.importorskip('diagnostic_msgs.msg').DiagnosticStatus

from ros_helpers import Driver, overrides, values  # noqa: E402
from s3dnn_ros.ros.config import ConfigError, validate  # noqa: E402
from s3dnn_ros.ros.perception_node import PerceptionNode  # noqa: E402
from s3dnn_ros.ros.placement import describe_placement, place_cameras  # noqa: E402
from s3dnn_ros.scheduler.placement import Slot  # noqa: E402


def config(cameras: dict[str, float], **extra):
    """Return a validated configuration of ``cameras`` (name -> fps_hint) plus ``extra``."""
    params = {'cameras': list(cameras), **extra}
    for name, fps in cameras.items():
        params[f'{name}.fps_hint'] = fps
    return validate(params)


def gpus(placement: dict[str, Slot]) -> dict[str, int]:
    """Return camera -> its GPU."""
    return {camera: slot.device for camera, slot in placement.items()}


# ------------------------------------------------------------------------------------ placement
def test_one_gpu_takes_every_camera():
    assert set(place_cameras(config({'a': 30.0, 'b': 10.0})).values()) == {Slot(0, 0)}
    assert set(place_cameras(config({'a': 30.0}, device_id=3)).values()) == {Slot(3, 0)}


def test_cameras_are_balanced_by_expected_load_largest_first():
    """Largest first, each to the least loaded GPU: 60 + 15 against 30 + 30 + 10 + 10."""
    placement = place_cameras(config({'a': 10.0, 'big': 60.0, 'b': 30.0, 'c': 30.0, 'd': 10.0,
                                      'e': 15.0}, gpus=2))
    assert gpus(placement) == {'a': 1, 'big': 0, 'b': 1, 'c': 1, 'd': 1, 'e': 0}
    assert list(placement) == ['a', 'big', 'b', 'c', 'd', 'e']  # configuration order
    assert describe_placement(placement) == 'gpu0: big, e; gpu1: a, b, c, d'


def test_a_camera_without_fps_hint_counts_as_the_mean_hint_and_ties_go_to_the_lowest_gpu():
    placement = place_cameras(config({'a': 20.0, 'b': 0.0, 'c': 0.0}, gpus=2, device_id=4))
    assert gpus(placement) == {'a': 4, 'b': 5, 'c': 4}  # b and c count 20 each
    assert gpus(place_cameras(config({'x': 0.0, 'y': 0.0, 'z': 0.0}, gpus=3))) == {
        'x': 0, 'y': 1, 'z': 2}


def test_cameras_placed_by_hand_count_in_the_balance():
    """Camera a is on GPU 1 by hand, so the others fill GPU 0 first; d names a GPU outside."""
    placement = place_cameras(config({'a': 30.0, 'b': 20.0, 'c': 20.0, 'd': 5.0}, gpus=2,
                                     **{'a.device_id': 1, 'd.device_id': 7}))
    assert gpus(placement) == {'a': 1, 'b': 0, 'c': 0, 'd': 7}


def test_several_workers_per_gpu_share_each_gpus_cameras_by_the_same_rule():
    """GPU 0 takes big + e (60 + 15) and GPU 1 a..d; each GPU's cameras split over 2 workers."""
    placement = place_cameras(config({'a': 10.0, 'big': 60.0, 'b': 30.0, 'c': 30.0, 'd': 10.0,
                                      'e': 15.0}, gpus=2, workers_per_gpu=2))
    assert placement == {'a': Slot(1, 0), 'big': Slot(0, 0), 'b': Slot(1, 0), 'c': Slot(1, 1),
                         'd': Slot(1, 1), 'e': Slot(0, 1)}
    assert describe_placement(placement, 2) == ('gpu0 worker0: big; gpu0 worker1: e; '
                                                'gpu1 worker0: a, b; gpu1 worker1: c, d')
    one = place_cameras(config({f'c{i}': 30.0 for i in range(5)}, workers_per_gpu=3))
    assert [slot.worker for slot in one.values()] == [0, 1, 2, 0, 1]
    assert {slot.device for slot in one.values()} == {0}


def test_bad_gpu_parameters_name_the_key_and_the_allowed_values():
    with pytest.raises(ConfigError, match=r'gpus=3.*at most 2 with device_id 62'):
        config({'a': 1.0}, device_id=62, gpus=3)
    with pytest.raises(ConfigError, match=r'a\.device_id=-2.*an integer -1\.\.63'):
        config({'a': 1.0}, **{'a.device_id': -2})
    with pytest.raises(ConfigError, match=r'gpus=0.*an integer 1\.\.64'):
        config({'a': 1.0}, gpus=0)
    with pytest.raises(ConfigError, match=r'workers_per_gpu=9.*an integer 1\.\.8'):
        config({'a': 1.0}, workers_per_gpu=9)


# ------------------------------------------------------------------------------------- the node
#: placed gpu0: cam0, cam2; gpu1: cam1, cam3
CAMERAS = {'cam0': 30.0, 'cam1': 30.0, 'cam2': 10.0, 'cam3': 10.0}


GPU0, GPU1 = Slot(0), Slot(1)


def start_two_gpus(session, **extra):
    params = {'cameras': list(CAMERAS), 'engine': 'reference', 'gpus': 2,
              'diagnostics_period_s': 0.25, 'detections_format': 'json', **extra}
    for name, fps in CAMERAS.items():
        params.update({f'{name}.fps_hint': fps, f'{name}.deadline_ms': 10_000.0,
                       f'{name}.queue_depth': 8})
    node = session.add(PerceptionNode(context=session.context,
                                      parameter_overrides=overrides(params)))
    driver = session.add(Driver(session.context, list(CAMERAS)))
    assert session.spin_until(driver.connected), 'discovery did not complete'
    return node, driver


def stamped(driver, camera: str, sec: int) -> bool:
    return any(d['header']['stamp']['sec'] == sec for d in driver.detections[camera])


def test_two_gpus_two_workers_each_serving_its_cameras_with_a_status_each(session):
    node, driver = start_two_gpus(session)
    assert sorted(node.workers) == [GPU0, GPU1]
    assert node.workers[GPU0].pid != node.workers[GPU1].pid
    assert {name: state.worker for name, state in node.cameras.items()} == {
        'cam0': GPU0, 'cam1': GPU1, 'cam2': GPU0, 'cam3': GPU1}
    assert [c.name for c in node.workers[GPU0].spec.cameras] == ['cam0', 'cam2']
    assert [c.name for c in node.workers[GPU1].spec.cameras] == ['cam1', 'cam3']
    assert (node.workers[GPU0].spec.device_id, node.workers[GPU1].spec.device_id) == (0, 1)
    assert node.workers[GPU0].spec.gpu_share == node.workers[GPU1].spec.gpu_share == 1.0
    for camera in CAMERAS:
        driver.send(camera, 1)
    assert session.spin_until(lambda: all(stamped(driver, c, 1) for c in CAMERAS), 60)
    assert all(d['camera'] == c for c in CAMERAS for d in driver.detections[c])
    assert session.spin_until(lambda: driver.statuses('s3dnn: scheduler gpu0')
                              and driver.statuses('s3dnn: scheduler gpu1'), 10)
    gpu0, gpu1 = (values(driver.statuses(f's3dnn: scheduler gpu{d}')[-1]) for d in (0, 1))
    assert (gpu0['cameras'], gpu1['cameras']) == ('cam0, cam2', 'cam1, cam3')
    assert gpu0['worker pid'] == str(node.workers[GPU0].pid)
    assert driver.statuses('s3dnn: scheduler') == []  # one status per GPU instead
    assert values(driver.statuses('s3dnn: cam3')[-1])['gpu'] == '1'


def test_a_killed_gpu_worker_is_an_error_with_its_cameras_while_the_other_gpu_serves(session):
    node, driver = start_two_gpus(session)
    for camera in CAMERAS:
        driver.send(camera, 1)
    assert session.spin_until(lambda: all(stamped(driver, c, 1) for c in CAMERAS), 60)
    first, other = node.workers[GPU0].pid, node.workers[GPU1].pid
    os.kill(first, signal.SIGKILL)
    for camera in ('cam1', 'cam3'):  # gpu1's cameras while gpu0's worker is down or restarting
        driver.send(camera, 2)
    assert session.spin_until(lambda: stamped(driver, 'cam1', 2) and stamped(driver, 'cam3', 2),
                              60)
    assert session.spin_until(lambda: any(s.level == DiagnosticStatus.ERROR
                                          and 'SIGKILL' in s.message
                                          for s in driver.statuses('s3dnn: scheduler gpu0')), 30)
    error = next(s for s in driver.statuses('s3dnn: scheduler gpu0')
                 if s.level == DiagnosticStatus.ERROR)
    assert values(error)['cameras'] == 'cam0, cam2'
    assert all(s.level != DiagnosticStatus.ERROR for s in driver.statuses('s3dnn: scheduler gpu1'))
    assert node.workers[GPU1].pid == other and node.workers[GPU1].restarts == 0
    assert session.spin_until(lambda: node.workers[GPU0].pid not in (None, first), 60)
    for camera in ('cam0', 'cam2'):
        driver.send(camera, 3)
    assert session.spin_until(lambda: stamped(driver, 'cam0', 3) and stamped(driver, 'cam2', 3),
                              60)
    assert node.workers[GPU0].restarts == 1


def test_two_workers_on_one_gpu_each_serve_their_cameras_with_a_status_each(session):
    """Two worker processes on device 0 (gpus 1, workers_per_gpu 2): cam0 + cam2, cam1 + cam3."""
    node, driver = start_two_gpus(session, gpus=1, workers_per_gpu=2)
    first, second = Slot(0, 0), Slot(0, 1)
    assert sorted(node.workers) == [first, second]
    assert node.workers[first].pid != node.workers[second].pid
    assert (node.workers[first].spec.device_id, node.workers[second].spec.device_id) == (0, 0)
    # each leaves the GPU to the other by half (rule 6 of the s3dnn policy)
    assert node.workers[first].spec.gpu_share == node.workers[second].spec.gpu_share == 0.5
    assert [c.name for c in node.workers[second].spec.cameras] == ['cam1', 'cam3']
    for camera in CAMERAS:
        driver.send(camera, 1)
    assert session.spin_until(lambda: all(stamped(driver, c, 1) for c in CAMERAS), 60)
    assert all(d['camera'] == c for c in CAMERAS for d in driver.detections[c])
    names = ('s3dnn: scheduler gpu0 worker0', 's3dnn: scheduler gpu0 worker1')
    assert session.spin_until(lambda: all(driver.statuses(name) for name in names), 10)
    assert values(driver.statuses(names[1])[-1])['cameras'] == 'cam1, cam3'
    assert values(driver.statuses(names[1])[-1])['worker pid'] == str(node.workers[second].pid)
    # the s3dnn policy of each worker launched its cameras' first layers (rule 6's counters)
    assert session.spin_until(lambda: all(
        sum(int(v) for k, v in values(driver.statuses(name)[-1]).items()
            if k.startswith('first-layer launches')) >= 1 for name in names), 10)
    assert driver.statuses('s3dnn: scheduler gpu0') == []
    cam3 = values(driver.statuses('s3dnn: cam3')[-1])
    assert (cam3['gpu'], cam3['worker']) == ('0', '1')
