"""
The perception node with real rclpy nodes and topics.

Detections with the source header, diagnostics, bad frames, parameters, queue drops and shutdown.
The reference engine runs the network on the CPU.
"""
import dataclasses
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading

from process_helpers import interrupt_after, popen, repo_env, REPO_ROOT
import pytest

rclpy = pytest.importorskip('rclpy',
                            reason='needs the ROS 2 rclpy wheels (make test installs them)')
DiagnosticStatus = pytest.importorskip('diagnostic_msgs.msg').DiagnosticStatus

from rclpy.node import Node  # noqa: E402
from ros_helpers import Driver, overrides, RosSession, values  # noqa: E402
from s3dnn_ros.engine.costs import estimate  # noqa: E402
from s3dnn_ros.model import alexnet  # noqa: E402
from s3dnn_ros.ros.config import ConfigError, imagenet_classes  # noqa: E402
from s3dnn_ros.ros.messages import vision_msgs_types  # noqa: E402
from s3dnn_ros.ros.perception_node import (camera_level, host_cost_values,  # noqa: E402
                                           PerceptionNode)
from s3dnn_ros.scheduler.placement import Slot  # noqa: E402
from s3dnn_ros.worker.client import NO_SLOT, WorkerError  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

CAMERAS = ['cam0', 'cam1', 'cam2']


def node_params(cameras=CAMERAS, **extra):
    params = {'cameras': cameras, 'engine': 'reference', 'diagnostics_period_s': 0.25,
              'detections_format': 'json'}
    for name in cameras:
        params[f'{name}.deadline_ms'] = 10_000.0
        params[f'{name}.queue_depth'] = 8
    params.update(extra)
    return params


def start(session, params, cameras=CAMERAS):
    node = session.add(PerceptionNode(context=session.context,
                                      parameter_overrides=overrides(params)))
    driver = session.add(Driver(session.context, cameras))
    assert session.spin_until(driver.connected), 'discovery did not complete'
    return node, driver


def test_detections_carry_each_frames_header_and_sorted_scores(session):
    node, driver = start(session, node_params())
    sent = {}
    for k in range(2):
        for i, camera in enumerate(CAMERAS):
            sec, nanosec = 1000 + k, 100 * i + 7
            driver.send(camera, sec, nanosec, frame_id=f'{camera}_frame{k}')
            sent.setdefault(camera, []).append((sec, nanosec, f'{camera}_frame{k}'))
    assert session.spin_until(lambda: all(len(driver.detections[c]) == 2 for c in CAMERAS), 60)
    for camera in CAMERAS:
        got = [(d['header']['stamp']['sec'], d['header']['stamp']['nanosec'],
                d['header']['frame_id']) for d in driver.detections[camera]]
        assert sorted(got) == sorted(sent[camera])
        for detection in driver.detections[camera]:
            scores = [c['score'] for c in detection['classes']]
            assert len(scores) == 5 and scores == sorted(scores, reverse=True)
            assert 0 < sum(scores) <= 1.0 + 1e-6
            assert all(type(c['id']) is int and 0 <= c['id'] < 1000 and c['label'] is None
                       for c in detection['classes'])
            assert detection['camera'] == camera and detection['deadline_ms'] == 10_000.0
            assert detection['latency_ms'] > 0 and detection['missed'] is False


def test_a_namespace_moves_every_camera_and_detections_topic_so_two_robots_do_not_collide(session):
    """
    Two nodes with the same camera name in /robot1 and /robot2 (as ``-r __ns:=`` gives them).

    Each subscribes and publishes under its own namespace, and frames sent to one robot come back
    only there.
    """
    params = overrides(node_params(['cam0']))
    robots = {}
    for robot in ('robot1', 'robot2'):
        node = session.add(PerceptionNode(context=session.context, parameter_overrides=params,
                                          cli_args=['--ros-args', '-r', f'__ns:=/{robot}']))
        robots[robot] = (node,
                         session.add(Driver(session.context, ['cam0'], namespace=f'/{robot}')))
    node = robots['robot1'][0]
    assert [sub.topic_name for sub in node.subscriptions if sub.msg_type is Image] == \
        ['/robot1/cam0/image_raw']
    assert node.cameras['cam0'].publisher.topic_name == '/robot1/s3dnn/cam0/detections'
    assert session.spin_until(lambda: all(driver.connected() for _, driver in robots.values()))
    robots['robot1'][1].send('cam0', 7, 1)
    robots['robot2'][1].send('cam0', 9, 2)
    robots['robot2'][1].send('cam0', 9, 3)
    assert session.spin_until(lambda: len(robots['robot1'][1].detections['cam0']) == 1
                              and len(robots['robot2'][1].detections['cam0']) == 2, 60)
    session.spin_for(0.5)
    stamps = {robot: sorted(d['header']['stamp']['nanosec'] for d in driver.detections['cam0'])
              for robot, (_, driver) in robots.items()}
    assert stamps == {'robot1': [1], 'robot2': [2, 3]}


def test_diagnostics_report_every_camera_and_the_scheduler(session):
    node, driver = start(session, node_params())
    for camera in CAMERAS:
        driver.send(camera, 1)
    assert session.spin_until(lambda: all(driver.detections[c] for c in CAMERAS), 60)
    assert session.spin_until(lambda: any(values(s)['completed'] == '1'
                                          for s in driver.statuses('s3dnn: cam2')))
    status = [s for s in driver.statuses('s3dnn: cam2') if values(s)['completed'] == '1'][-1]
    assert status.level == DiagnosticStatus.OK and status.hardware_id == 'cpu'
    fields = values(status)
    for key in ('received', 'completed', 'missed', 'dropped', 'rejected', 'miss ratio (window)',
                'miss ratio (total)', 'latency p50 ms', 'latency p95 ms', 'latency p99 ms',
                'latency max ms', 'deadline ms', 'queue length'):
        assert key in fields
    assert fields['received'] == '1' and fields['missed'] == '0' \
        and fields['deadline ms'] == '10000.0000'
    scheduler = values(driver.statuses('s3dnn: scheduler')[-1])
    assert scheduler['policy'] == 's3dnn' and scheduler['engine'] == 'reference' \
        and scheduler['device'] == 'cpu'
    assert int(scheduler['groups dispatched']) > 0 \
        and 0.0 <= float(scheduler['gpu busy fraction']) <= 1.0
    for key in ('mean group size', 'fused launches', 'segment launches', 'mean batch',
                'engine errors'):
        assert key in scheduler
    # the worker process's resident memory (a Python process with numpy: more than 10 MB)
    assert float(scheduler['worker memory MB']) > 10


def test_the_scheduler_status_names_each_host_cost_with_its_unit():
    from s3dnn_ros.engine.costs import HostCosts
    host = HostCosts(frame_us=1.5, decision_us=2.0, launch_us=3.0, upload_us=0.5,
                     completion_us=4.0, launch_layers=13.5).to_json()
    assert host_cost_values(host) == {
        'host frame us': 1.5, 'host decision us': 2.0, 'host launch us': 3.0,
        'host upload us': 0.5, 'host completion us': 4.0, 'host launch layers': 13.5}
    assert host_cost_values(None) == {}


@pytest.mark.skipif(vision_msgs_types() is not None,
                    reason='checks the fallback where vision_msgs is not installed')
def test_detections_format_auto_without_vision_msgs_falls_back_to_json_with_a_warning(session):
    node, driver = start(session, node_params(cameras=['cam0'], detections_format='auto'),
                         cameras=['cam0'])
    driver.send('cam0', 1)
    assert session.spin_until(lambda: driver.detections['cam0'], 60)  # JSON on std_msgs/String
    assert session.spin_until(lambda: driver.statuses('s3dnn: scheduler'))
    status = driver.statuses('s3dnn: scheduler')[-1]
    assert status.level == DiagnosticStatus.WARN
    assert status.message.startswith('running; detections are JSON in '
                                     'std_msgs/String because vision_msgs is not')
    assert values(status)['detections'] == 'std_msgs/msg/String (JSON)'


@pytest.mark.skipif(vision_msgs_types() is not None,
                    reason='checks the refusal where vision_msgs is not installed')
def test_detections_format_vision_msgs_without_vision_msgs_stops_the_node(session):
    with pytest.raises(ConfigError) as error:
        PerceptionNode(context=session.context,
                       parameter_overrides=overrides(node_params(detections_format='vision_msgs')))
    assert str(error.value) == ("parameter detections_format='vision_msgs': "
                                'allowed only where vision_msgs is installed (not importable '
                                'here); allowed here: json, auto')


def test_a_tiny_deadline_turns_the_camera_status_to_error(session):
    params = node_params(cameras=['cam0'])
    params['cam0.deadline_ms'] = 0.01
    node, driver = start(session, params, cameras=['cam0'])
    driver.send('cam0', 5)
    assert session.spin_until(lambda: driver.detections['cam0'], 60)
    assert driver.detections['cam0'][0]['missed'] is True
    assert session.spin_until(lambda: any(s.level == DiagnosticStatus.ERROR
                                          for s in driver.statuses('s3dnn: cam0')))
    error = [s for s in driver.statuses('s3dnn: cam0') if s.level == DiagnosticStatus.ERROR][0]
    assert error.message.startswith('miss ratio 1.00 >= 0.2') and values(error)['missed'] == '1'


def test_a_camera_that_stops_publishing_turns_error_after_five_periods(session):
    node, driver = start(session, node_params(cameras=['cam0'], diagnostics_period_s=0.2),
                         cameras=['cam0'])
    driver.send('cam0', 1)
    assert session.spin_until(lambda: driver.detections['cam0'], 60)
    assert session.spin_until(lambda: any(s.message.startswith('no frame for')
                                          for s in driver.statuses('s3dnn: cam0')), 10)
    stale = [s for s in driver.statuses('s3dnn: cam0') if s.message.startswith('no frame for')][0]
    assert stale.level == DiagnosticStatus.ERROR
    assert float(stale.message.split()[3]) >= 5 * 0.2


class _Config:
    diagnostics_period_s = 1.0
    miss_warn_ratio = 0.05
    miss_error_ratio = 0.2


def test_camera_level_rejects_and_silence():
    level, message = camera_level(_Config(), 1.0, 0, 0.1, 0, 0, None, rejected=5, accepted=0,
                                  reject_reason='encoding bayer_rggb8 is not supported')
    assert (level, message) == ('ERROR',
                                'every frame rejected (5 in the last period): '
                                'encoding bayer_rggb8 is not supported')
    level, message = camera_level(_Config(), 0.5, 1, 0.1, 0, 1, None, rejected=1, accepted=1)
    # a rejected frame counts as missed
    assert level == 'ERROR' and message.startswith('miss ratio 0.50')
    assert camera_level(_Config(), 0.0, 0, None, 0, 0, None, waiting_s=4.9) == \
        ('OK', 'waiting for the first frame')
    level, message = camera_level(_Config(), 0.0, 0, None, 0, 0, None, waiting_s=5.0,
                                  publishers=lambda: '1 publisher(s) on /x: '
                                                     'cam publishes best_effort')
    assert (level, message) == ('WARN',
                                'no frame in 5.0 s since start; 1 publisher(s) on /x: '
                                'cam publishes best_effort')


@pytest.mark.parametrize('ratio, resolved, quiet_s, error_drops, expected', [
    (0.0, 10, 0.5, 0, 'OK'),
    (0.05, 20, 0.5, 0, 'WARN'),
    (0.19, 100, 0.5, 0, 'WARN'),
    (0.2, 5, 0.5, 0, 'ERROR'),
    (0.0, 0, 5.0, 0, 'ERROR'),     # stale: 5 periods without a frame
    (0.0, 0, 4.9, 0, 'OK'),
    (0.0, 0, None, 0, 'OK'),       # never sent anything: waiting, not an error
    (0.0, 3, 0.1, 1, 'ERROR'),     # engine failure
    (0.9, 0, 0.1, 0, 'OK'),        # nothing resolved in the window: no ratio to judge
])
def test_camera_level_thresholds(ratio, resolved, quiet_s, error_drops, expected):
    level, message = camera_level(_Config(), ratio, resolved, quiet_s, error_drops, 1,
                                  'launch failed')
    assert level == expected
    if error_drops:
        assert message == 'engine error: launch failed'


def bad_frames():
    """One of each frame the node must reject, with the word its reason must contain."""
    wrong_encoding = Image(height=4, width=4, encoding='yuv422', step=8, data=bytes(32))
    short = Image(height=4, width=4, encoding='rgb8', step=12, data=bytes(40))
    zero = Image(height=0, width=4, encoding='rgb8', step=12, data=b'')
    narrow_step = Image(height=4, width=4, encoding='rgb8', step=8, data=bytes(48))
    return [(wrong_encoding, 'yuv422'), (short, 'data has 40 bytes'), (zero, 'zero size'),
            (narrow_step, 'step 8')]


def test_bad_frames_are_rejected_and_counted_while_a_good_camera_goes_on(session):
    node, driver = start(session, node_params(cameras=['good', 'bad']), cameras=['good', 'bad'])
    for k, (msg, reason) in enumerate(bad_frames()):
        driver.send('bad', 10 + k, msg=msg)
        driver.send('good', 10 + k)
        assert session.spin_until(lambda: node.cameras['bad'].rejected == k + 1)
        assert reason in node.cameras['bad'].last_reject_reason
    assert session.spin_until(lambda: len(driver.detections['good']) == 4, 60)
    assert driver.detections['bad'] == []
    assert session.spin_until(lambda: any(values(s).get('rejected') == '4'
                                          for s in driver.statuses('s3dnn: bad')))
    bad = [s for s in driver.statuses('s3dnn: bad') if values(s).get('rejected') == '4'][-1]
    assert 'last reject reason' in values(bad) and values(bad)['completed'] == '0'


def test_a_camera_whose_every_frame_is_rejected_is_an_error_naming_the_reason(session):
    node, driver = start(session, node_params(cameras=['good', 'bad']), cameras=['good', 'bad'])
    wrong_encoding = bad_frames()[0][0]
    for k in range(6):
        driver.send('bad', 10 + k, msg=wrong_encoding)
        driver.send('good', 10 + k)
        session.spin_for(0.05)
    assert session.spin_until(lambda: any(s.message.startswith('every frame rejected')
                                          for s in driver.statuses('s3dnn: bad')), 10)
    bad = [s for s in driver.statuses('s3dnn: bad')
           if s.message.startswith('every frame rejected')][0]
    assert bad.level == DiagnosticStatus.ERROR and 'yuv422' in bad.message
    assert session.spin_until(lambda: len(driver.detections['good']) == 6, 60)
    assert all(s.level != DiagnosticStatus.ERROR for s in driver.statuses('s3dnn: good'))


def test_a_camera_that_never_sends_warns_naming_its_topic_and_publishers(session):
    node, driver = start(session, node_params(cameras=['cam0', 'silent']), cameras=['cam0'])
    assert session.spin_until(lambda: any(s.level == DiagnosticStatus.WARN
                                          for s in driver.statuses('s3dnn: silent')), 10)
    status = [s for s in driver.statuses('s3dnn: silent') if s.level == DiagnosticStatus.WARN][0]
    assert status.message.startswith('no frame in ') \
        and 'since start; no publisher on /silent/image_raw' in status.message
    assert float(status.message.split()[3]) >= 5 * 0.25
    early = driver.statuses('s3dnn: silent')[0]
    assert early.level == DiagnosticStatus.OK and early.message == 'waiting for the first frame'


def test_a_silent_camera_names_publishers_of_the_wrong_type_for_its_transport(session):
    params = node_params(cameras=['cam0', 'typed', 'packed'], **{'packed.transport': 'compressed'})
    node, driver = start(session, params, cameras=['cam0'])
    # a participant of its own: DDS refuses a second type for a topic within one
    other = RosSession()
    try:
        wrong = other.add(Node('wrong_types', context=other.context))
        wrong.create_publisher(String, 'typed/image_raw', 1)
        wrong.create_publisher(Image, 'packed/image_raw/compressed', 1)
        warned = {}

        def both_warned():
            for camera in ('typed', 'packed'):
                # DDS learns a participant's node names after its publishers: wait for them
                warns = [s for s in driver.statuses(f's3dnn: {camera}')
                         if s.level == DiagnosticStatus.WARN and 'wrong_types' in s.message]
                if warns:
                    warned[camera] = warns[-1].message
            return len(warned) == 2
        assert session.spin_until(both_warned, 10)
    finally:
        other.close()
    assert warned['typed'].endswith('1 publisher(s) on /typed/image_raw: wrong_types publishes '
                                    'std_msgs/msg/String, not sensor_msgs/msg/Image')
    assert warned['packed'].endswith(
        '1 publisher(s) on /packed/image_raw/compressed: wrong_types publishes '
        'sensor_msgs/msg/Image, not sensor_msgs/msg/CompressedImage')


def test_reject_warnings_are_throttled_per_camera_and_reason(session):
    node, driver = start(session, node_params(cameras=['a', 'b']), cameras=['a', 'b'])
    logged = []
    node.get_logger().warning = lambda text, **_: logged.append(text)
    (wrong, _), (short, _) = bad_frames()[:2]
    for k in range(3):
        for camera in ('a', 'b'):
            driver.send(camera, k, msg=wrong)
            session.spin_for(0.02)
            driver.send(camera, k, msg=short)
            session.spin_for(0.02)
    assert session.spin_until(lambda: node.cameras['a'].rejected >= 4
                              and node.cameras['b'].rejected >= 4)
    assert sorted(text.split(':')[0] for text in logged) == ['camera a'] * 2 + ['camera b'] * 2
    # each camera's two reasons once, within the 5 s period
    assert len(set(logged)) == 4


def test_queue_depth_one_drops_older_frames_and_counts_them(session):
    """
    A burst far faster than the CPU engine's ~30 ms a frame.

    The worker keeps the newest frame in the queue (older ones are dropped as 'queue'), and a frame
    that finds all queue_depth + 2 slots of its camera still held is refused at once ('no free
    slot'). Every frame is accounted for.
    """
    # DDS keeps the whole burst for the node
    params = node_params(cameras=['cam0'], **{'qos.depth': 20})
    params['cam0.queue_depth'] = 1
    node, driver = start(session, params, cameras=['cam0'])
    for k in range(12):
        driver.send('cam0', 100 + k)
    camera = node.cameras['cam0']
    assert session.spin_until(lambda: camera.received == 12, 20)
    assert session.spin_until(lambda: camera.completed + sum(camera.dropped.values()) == 12, 60)
    assert set(camera.dropped) <= {'queue', NO_SLOT} and camera.dropped['queue'] > 0
    assert session.spin_until(lambda: len(driver.detections['cam0']) == camera.completed)
    assert 0 < camera.completed < 12
    assert node.pending() == 0
    assert session.spin_until(lambda: any(values(s)['dropped'] == str(sum(camera.dropped.values()))
                                          and values(s)['dropped (queue)'] ==
                                          str(camera.dropped['queue'])
                                          for s in driver.statuses('s3dnn: cam0')))


def test_the_timed_engine_serves_every_camera_without_a_gpu(session, tmp_path):
    """With engine timed the headers come back and every class is 0 with score 0."""
    estimate(alexnet(), 't4').save(tmp_path / 'costs.json')
    node, driver = start(session, node_params(engine='timed',
                                              cost_table=str(tmp_path / 'costs.json')))
    assert node.engine_name == 'timed'
    for i, camera in enumerate(CAMERAS):
        driver.send(camera, 2000, i, frame_id=f'{camera}_timed')
    assert session.spin_until(lambda: all(driver.detections[c] for c in CAMERAS), 60)
    for i, camera in enumerate(CAMERAS):
        (detection,) = driver.detections[camera]
        assert detection['header'] == {'stamp': {'sec': 2000, 'nanosec': i},
                                       'frame_id': f'{camera}_timed'}
        assert [(c['id'], c['score']) for c in detection['classes']] == [(0, 0.0)] * 5


@pytest.mark.parametrize('name, value, words', [
    ('policy', 'lottery', ["policy='lottery'", 's3dnn, streams, sequential, fifo, edf']),
    ('engine', 'tpu', ["engine='tpu'", 'auto, cuda, reference, timed']),
    ('engine', 'timed', ["parameter engine='timed'", 'cost table: give one (cost_table)']),
    ('top_k', 0, ['top_k=0', '1..1000']),
    ('device_id', -1, ['device_id=-1']),
    ('qos.reliability', 'sometimes', ["qos.reliability='sometimes'", 'best_effort, reliable']),
    ('diagnostics_period_s', 0.0, ['diagnostics_period_s=0.0', '>= 0.1']),
    ('diagnostics_period_s', 1e-6, ['diagnostics_period_s=1e-06', '>= 0.1']),
    ('firm_deadlines', 'yes', ["firm_deadlines='yes'", 'true or false']),
    ('cameras', ['a', 'a'], ['distinct']),
    ('cam0.deadline_ms', 'soon', ["cam0.deadline_ms='soon'", 'a number >= 0.001']),
    ('cam0.queue_depth', 0, ['cam0.queue_depth=0', '1..1000']),
    ('cam0.topic', 'not a topic', ["cam0.topic='not a topic'"]),
    ('weights', '/nonexistent/alexnet.npz', ['parameter weights=', 'does not exist']),
    ('labels', '/nonexistent/labels.txt', ['parameter labels=', 'cannot read it']),
])
def test_an_invalid_parameter_stops_the_node_with_a_message_naming_it(session, name, value, words):
    params = node_params(cameras=['cam0'])
    params[name] = value
    before = {t.name for t in threading.enumerate()}
    with pytest.raises((ConfigError, WorkerError)) as error:
        PerceptionNode(context=session.context, parameter_overrides=overrides(params))
    for word in words:
        assert word in str(error.value)
    assert {t.name for t in threading.enumerate()} == before  # nothing started half-way


def test_labels_file_must_have_one_line_per_class(session, tmp_path):
    labels = tmp_path / 'labels.txt'
    labels.write_text('\n'.join(f'class {i}' for i in range(999)) + '\n')
    with pytest.raises(ConfigError, match='has 999 lines; allowed a text file with 1000 lines'):
        PerceptionNode(context=session.context,
                       parameter_overrides=overrides(node_params(labels=str(labels))))
    labels.write_text('\n'.join(f'class {i}' for i in range(1000)) + '\n')
    node, driver = start(session, node_params(cameras=['cam0'], labels=str(labels)),
                         cameras=['cam0'])
    driver.send('cam0', 1)
    assert session.spin_until(lambda: driver.detections['cam0'], 60)
    assert all(c['label'] == f'class {c["id"]}' for c in driver.detections['cam0'][0]['classes'])


def test_labels_imagenet_name_every_class_with_the_shipped_names(session):
    node, driver = start(session, node_params(cameras=['cam0'], labels='imagenet'),
                         cameras=['cam0'])
    driver.send('cam0', 1)
    assert session.spin_until(lambda: driver.detections['cam0'], 60)
    names = imagenet_classes()
    assert all(c['label'] == names[c['id']] for c in driver.detections['cam0'][0]['classes'])


def test_shutdown_under_load_leaves_no_worker_and_no_shared_memory(session):
    node, driver = start(session, node_params(cameras=['cam0', 'cam1']), cameras=['cam0', 'cam1'])
    for k in range(30):
        driver.send('cam0', k)
        driver.send('cam1', k)
        session.spin_for(0.01)
    assert session.spin_until(lambda: driver.detections['cam0'] and driver.detections['cam1'], 60)
    pid, segments = node.workers[Slot(0)].pid, node.workers[Slot(0)].segments()
    assert len(segments) == 2 and all(os.path.exists(f'/dev/shm/{name}') for name in segments)
    session.executor.remove_node(node)
    session.nodes.remove(node)
    node.destroy_node()
    assert not node.workers
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the worker exited and was reaped
    assert not any(os.path.exists(f'/dev/shm/{name}') for name in segments)
    assert 's3dnn-worker-receiver' not in {t.name for t in threading.enumerate()}


def test_a_killed_worker_is_reported_and_replaced_and_every_camera_goes_on(session):
    node, driver = start(session, node_params(cameras=['cam0', 'cam1']), cameras=['cam0', 'cam1'])
    for camera in ('cam0', 'cam1'):
        driver.send(camera, 1)
    assert session.spin_until(lambda: driver.detections['cam0'] and driver.detections['cam1'], 60)
    first = node.workers[Slot(0)].pid
    os.kill(first, signal.SIGKILL)
    assert session.spin_until(lambda: any(s.level == DiagnosticStatus.ERROR
                                          and 'SIGKILL' in s.message
                                          for s in driver.statuses('s3dnn: scheduler')), 30)
    assert session.spin_until(lambda: node.workers[Slot(0)].pid not in (None, first), 60)
    for camera in ('cam0', 'cam1'):
        driver.send(camera, 2)
    assert session.spin_until(lambda: all(any(d['header']['stamp']['sec'] == 2
                                              for d in driver.detections[c])
                                          for c in ('cam0', 'cam1')), 60)
    worker = node.workers[Slot(0)]
    assert worker.restarts == 1
    assert session.spin_until(lambda: any(values(s)['worker restarts'] == '1'
                                          and values(s)['worker pid'] == str(worker.pid)
                                          for s in driver.statuses('s3dnn: scheduler')))


def test_an_engine_failure_is_an_error_on_diagnostics_and_the_node_goes_on(session, monkeypatch):
    """
    A launch that fails (inside the real worker process) drops that frame.

    It turns its camera and the scheduler status to ERROR, and the next frames are served again.
    """
    monkeypatch.setenv('PYTHONPATH', os.pathsep.join([str(Path(__file__).parent),
                                                      os.environ.get('PYTHONPATH', '')]))
    spec = PerceptionNode.worker_spec
    monkeypatch.setattr(PerceptionNode, 'worker_spec',
                        lambda self, *args: dataclasses.replace(
                            spec(self, *args), engine_factory='worker_engines:first_frame_fails'))
    node, driver = start(session, node_params(cameras=['cam0']), cameras=['cam0'])
    assert 'made by worker_engines:first_frame_fails' in node.workers[Slot(0)].info['why']
    driver.send('cam0', 1)
    camera = node.cameras['cam0']
    assert session.spin_until(lambda: camera.dropped['error'] == 1, 30)
    assert session.spin_until(lambda: any(s.level == DiagnosticStatus.ERROR
                                          for s in driver.statuses('s3dnn: cam0')))
    error = [s for s in driver.statuses('s3dnn: cam0') if s.level == DiagnosticStatus.ERROR][0]
    assert error.message == 'engine error: illegal memory access in conv2'
    assert session.spin_until(lambda: any(s.level == DiagnosticStatus.ERROR
                                          for s in driver.statuses('s3dnn: scheduler')))
    driver.send('cam0', 2)
    assert session.spin_until(lambda: driver.detections['cam0'], 60)
    assert driver.detections['cam0'][0]['header']['stamp']['sec'] == 2
    # an engine error is not a lost context: the same worker goes on
    assert node.workers[Slot(0)].restarts == 0


def run_node(*ros_args, env_extra=None):
    env = repo_env(PYTHONUNBUFFERED='1', **(env_extra or {}))
    return popen([sys.executable, '-m', 's3dnn_ros.ros.perception_node', '--ros-args', *ros_args],
                 cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                 text=True)


def test_main_exits_2_naming_a_bad_parameter():
    process = run_node('-p', 'policy:=bogus')
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "parameter policy='bogus': allowed one of s3dnn" in output and 'Traceback' not in output


@pytest.mark.parametrize('signals',
                         [[signal.SIGINT], [signal.SIGTERM], [signal.SIGINT, signal.SIGINT]],
                         ids=['SIGINT', 'SIGTERM', 'SIGINT-twice'])
def test_main_stops_cleanly_on_a_stop_signal(signals):
    """
    Ctrl-C, ros2 launch's SIGTERM, and a Ctrl-C that reaches the node twice.

    Twice: from the terminal and from the launch.
    """
    env = repo_env()
    returncode, output = interrupt_after(
        [sys.executable, '-m', 's3dnn_ros.ros.perception_node', '--ros-args',
         '-p', 'engine:=reference', '-p', 'cameras:=[cam0]'], 'policy s3dnn', signals,
        cwd=REPO_ROOT, env=env)
    assert returncode == 0, output
    assert 'Traceback' not in output and 'Fatal Python error' not in output


@pytest.mark.parametrize('name, value, words', [
    ('deadline_msec', 5.0,
     ['parameter deadline_msec=5.0', 'has no such parameter', 'did you mean cam0.deadline_ms?']),
    ('polcy', 'streams', ["parameter polcy='streams'", 'did you mean policy?']),
    ('cam9.deadline_ms', 5.0, ["'cam9' is not one of the cameras", 'cameras cam0']),
])
def test_a_parameter_the_node_does_not_have_stops_it_naming_the_nearest_one(session, name, value,
                                                                            words):
    params = node_params(cameras=['cam0'])
    params[name] = value
    with pytest.raises(ConfigError) as error:
        PerceptionNode(context=session.context, parameter_overrides=overrides(params))
    for word in words:
        assert word in str(error.value)


@pytest.mark.parametrize('section, remap, ok', [
    ('other_node', [], False),                             # a file for another node
    # the namespace moved the node away from its section
    ('s3dnn_perception', ['-r', '__ns:=/robot1'], False),
    ('/robot1/s3dnn_perception', ['-r', '__ns:=/robot1'], True),
    ('/**', ['-r', '__ns:=/robot1'], True),
    ('/robot1:\n  s3dnn_perception', ['-r', '__ns:=/robot1'], True),  # nested under its namespace
])
def test_a_params_file_without_a_section_for_the_node_stops_it(session, tmp_path, section, remap,
                                                               ok):
    path = tmp_path / 'params.yaml'
    indent = '  ' * section.count('\n')
    path.write_text(f'{section}:\n{indent}  ros__parameters:\n'
                    f'{indent}    cameras: [front]\n{indent}    engine: reference\n')
    args = ['--ros-args', *remap, '--params-file', str(path)]
    if not ok:
        with pytest.raises(ConfigError) as error:
            PerceptionNode(context=session.context, cli_args=args)
        assert str(error.value).startswith(f'parameters file {str(path)!r}: no section for node ')
        assert f'(sections: {section})' in str(error.value)
        return
    node = session.add(PerceptionNode(context=session.context, cli_args=args))
    # the file's values, not the defaults
    assert [camera.name for camera in node.config.cameras] == ['front']


def test_parameters_set_at_run_time_apply_or_are_refused_with_a_reason(session):
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient
    node = session.add(PerceptionNode(context=session.context,
                                      parameter_overrides=overrides(node_params(['cam0']))))
    assert node.describe_parameter('policy').read_only \
        and node.describe_parameter('policy').description
    assert not node.describe_parameter('miss_warn_ratio').read_only
    client_node = session.add(rclpy.create_node('param_client', context=session.context))
    client = AsyncParameterClient(client_node, node.get_fully_qualified_name())
    assert session.spin_until(client.services_are_ready)

    def set_remote(name, value):
        future = client.set_parameters([Parameter(name, value=value)])
        assert session.spin_until(future.done)
        return future.result().results[0]
    refused = set_remote('policy', 'streams')
    assert not refused.successful and 'policy' in refused.reason
    assert node.get_parameter('policy').value == 's3dnn' and node.config.policy == 's3dnn'
    deadline = node.describe_parameter('cam0.deadline_ms')
    assert not deadline.read_only
    assert (deadline.floating_point_range[0].from_value,
            deadline.floating_point_range[0].to_value) == (0.001, 3.6e6)
    assert node.describe_parameter('top_k').integer_range[0].to_value == 1000
    refused = set_remote('cam0.deadline_ms', -5.0)  # rclpy refuses it by the descriptor's range
    assert not refused.successful and refused.reason == ('Parameter cam0.deadline_ms out of range '
                                                         'Min: 0.001, Max: 3600000.0, value: -5.0')
    assert node.config.cameras[0].deadline_ms == 10_000.0
    applied = set_remote('miss_warn_ratio', 0.1)
    assert applied.successful and node.config.miss_warn_ratio == 0.1
    assert node.get_parameter('miss_warn_ratio').value == 0.1
    refused = set_remote('miss_warn_ratio', 0.9)  # above miss_error_ratio (0.2)
    assert not refused.successful
    assert refused.reason.startswith('parameter miss_warn_ratio=0.9: '
                                     'allowed miss_warn_ratio <= miss_error_ratio')
    assert node.config.miss_warn_ratio == 0.1 \
        and node.get_parameter('miss_warn_ratio').value == 0.1


def test_two_cameras_on_one_topic_after_name_resolution_stop_the_node(session):
    params = node_params(cameras=['a', 'b'])
    params['a.topic'], params['b.topic'] = '/x/image_raw', 'x/image_raw'
    with pytest.raises(ConfigError) as error:
        PerceptionNode(context=session.context, parameter_overrides=overrides(params))
    assert str(error.value) == ("parameter b.topic='x/image_raw': allowed a topic no other camera "
                                'uses (a uses /x/image_raw)')


def test_another_node_of_the_same_name_makes_the_scheduler_status_an_error(session):
    node, driver = start(session, node_params(cameras=['cam0']), cameras=['cam0'])
    assert session.spin_until(lambda: any(s.message == 'running'
                                          for s in driver.statuses('s3dnn: scheduler')), 10)
    session.add(PerceptionNode(context=session.context,
                               parameter_overrides=overrides(node_params(cameras=['cam0']))))
    assert session.spin_until(lambda: any('nodes named /s3dnn_perception on the graph' in s.message
                                          for s in driver.statuses('s3dnn: scheduler')), 20)
    status = [s for s in driver.statuses('s3dnn: scheduler') if 'nodes named' in s.message][0]
    assert status.level == DiagnosticStatus.ERROR \
        and status.message.startswith('2 nodes named /s3dnn_perception')


def test_an_empty_camera_list_in_a_params_file_is_named_as_empty(session, tmp_path):
    path = tmp_path / 'params.yaml'
    path.write_text('s3dnn_perception:\n  ros__parameters:\n    cameras: '
                    '[]\n    engine: reference\n')
    with pytest.raises(ConfigError) as error:
        PerceptionNode(
            context=session.context, cli_args=['--ros-args', '--params-file', str(path)])
    assert str(error.value) == ('parameter cameras is empty (an empty list has no type in ROS); '
                                'allowed a non-empty list of camera names')


def test_a_deadline_set_at_run_time_judges_the_frames_received_after_it(session):
    """
    cam0's deadline goes from 10 s to 1 µs while the node runs.

    Frames before the change are on time, frames after it all miss, in the node's detections and in
    the worker's own counts.
    """
    from rclpy.parameter import Parameter
    node, driver = start(session, node_params(cameras=['cam0']), cameras=['cam0'])
    driver.send('cam0', 1)
    assert session.spin_until(lambda: len(driver.detections['cam0']) == 1, 60)
    assert not driver.detections['cam0'][0]['missed']
    result = node.set_parameters([Parameter('cam0.deadline_ms', value=0.001)])[0]
    assert result.successful and node.cameras['cam0'].config.deadline_ms == 0.001
    # a replacement worker would start with it
    assert node.workers[Slot(0)].spec.cameras[0].deadline_ns == 1000
    for k in range(2, 4):
        driver.send('cam0', k)
        session.spin_for(0.05)
    assert session.spin_until(lambda: len(driver.detections['cam0']) == 3, 60)
    assert [d['missed'] for d in driver.detections['cam0']] == [False, True, True]
    assert session.spin_until(lambda: node.workers[Slot(0)].stats
                              and node.workers[Slot(0)].stats['cameras'][0]['missed'] == 2, 10)
