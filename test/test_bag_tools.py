"""
Bags: s3dnn-make-bag, BagPlayer and s3dnn-replay.

s3dnn-make-bag writes what rosbags reads back; BagPlayer publishes records with their recorded
spacing; s3dnn-replay plays real bags (written by rosbags) into the perception node, carries their
stamps to the detections, counts bad frames, and refuses unreadable bags and mismatched configs
with one error line.
"""
import json
from pathlib import Path
import signal
import subprocess
import sys
import time

import numpy as np
from process_helpers import interrupt_after, popen, repo_env, REPO_ROOT, run
import pytest

pytest.importorskip('rclpy', reason='needs the ROS 2 rclpy wheels (make test installs them)')
pytest.importorskip('rosbags', reason='needs rosbags (make test installs it)')

import rclpy  # noqa: E402
from ros_helpers import RosSession  # noqa: E402
from rosbags.highlevel import AnyReader  # noqa: E402
from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402
from rosbags.typesys import get_typestore, Stores  # noqa: E402
from s3dnn_ros.ros.bag_player import BagPlayer  # noqa: E402
from s3dnn_ros.ros.config import detections_topic  # noqa: E402
from s3dnn_ros.ros.pattern import make_frames  # noqa: E402
from s3dnn_ros.ros.spin import image_qos, unmatched_topics  # noqa: E402
from s3dnn_ros.tools import make_bag  # noqa: E402
from s3dnn_ros.tools.replay import camera_name  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
START_SEC = 1_700_000_000


def read_images(path) -> dict[str, list[tuple[int, object]]]:
    """Return topic -> [(log time ns, deserialised Image)] of a bag, through rosbags."""
    topics: dict[str, list] = {}
    with AnyReader([Path(path)], default_typestore=TYPESTORE) as reader:
        for connection, log_ns, raw in reader.messages():
            topics.setdefault(connection.topic, []).append(
                (log_ns, reader.deserialize(raw, connection.msgtype)))
    return topics


def image(stamp_ns: int, frame_id: str, width=32, height=24, encoding='rgb8', step=None,
          data=None):
    types = TYPESTORE.types
    pixels = np.random.default_rng(stamp_ns % 2**32).integers(0, 256, height * width * 3,
                                                              dtype=np.uint8)
    return types[IMAGE](
        header=types['std_msgs/msg/Header'](
            stamp=types['builtin_interfaces/msg/Time'](sec=stamp_ns // 10**9,
                                                       nanosec=stamp_ns % 10**9),
            frame_id=frame_id),
        height=height, width=width, encoding=encoding, is_bigendian=0,
        step=width * 3 if step is None else step,
        data=pixels if data is None else data)


def write(path, messages: dict[str, list], storage=StoragePlugin.MCAP, extra_topic=None):
    """
    Write a bag with ``messages[topic] = [(log ns, msg)]``.

    Plus one std_msgs/String topic if ``extra_topic``.
    """
    with Writer(path, version=9, storage_plugin=storage) as writer:
        for topic, items in messages.items():
            connection = writer.add_connection(topic, IMAGE, typestore=TYPESTORE)
            for log_ns, msg in items:
                writer.write(connection, log_ns, TYPESTORE.serialize_cdr(msg, IMAGE))
        if extra_topic:
            connection = writer.add_connection(extra_topic, 'std_msgs/msg/String',
                                               typestore=TYPESTORE)
            msg = TYPESTORE.types['std_msgs/msg/String'](data='hello')
            writer.write(connection, START_SEC * 10**9,
                         TYPESTORE.serialize_cdr(msg, 'std_msgs/msg/String'))


def config_file(tmp_path, cameras: dict[str, str]) -> Path:
    """
    Write the parameters for the given camera -> topic map and return their file.

    Reliable QoS, deep queues and generous deadlines, so every frame should come through and
    complete.
    """
    lines = ['s3dnn_perception:', '  ros__parameters:', f'    cameras: [{", ".join(cameras)}]']
    for name, topic in cameras.items():
        lines += [f'    {name}:', f'      topic: {topic}', '      deadline_ms: 60000.0',
                  '      queue_depth: 100']
    lines += ['    engine: reference', '    qos:', '      reliability: reliable',
              '      depth: 100']
    path = tmp_path / 'params.yaml'
    path.write_text('\n'.join(lines) + '\n')
    return path


def replay(*args, wait=True):
    env = repo_env()
    command = [sys.executable, '-m', 's3dnn_ros.tools.replay', *map(str, args)]
    if not wait:
        return popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True)
    return run(command, timeout=120, cwd=REPO_ROOT, env=env)


# ---------------------------------------------------------------------------------- s3dnn-make-bag
@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_make_bag_writes_the_moving_pattern_on_a_fixed_timeline(tmp_path, storage):
    written = make_bag.write_bag(str(tmp_path / 'bag'), cameras=3, fps=10, seconds=1, width=32,
                                 height=24, encoding='bgra8', storage=storage,
                                 start_sec=START_SEC)
    topics = read_images(tmp_path / 'bag')
    assert written == {f'/cam{i}/image_raw': 10 for i in range(3)}
    assert {topic: len(items) for topic, items in topics.items()} == written
    for i in range(3):
        pattern = make_frames(32, 24, 'bgra8')
        for _ in range(i * make_bag.CAMERA_OFFSET):
            next(pattern)
        for step, (log_ns, msg) in enumerate(topics[f'/cam{i}/image_raw']):
            stamp_ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            assert stamp_ns == log_ns == START_SEC * 10**9 + step * 100_000_000
            assert ((msg.header.frame_id, msg.width, msg.height, msg.encoding, msg.step)
                    == (f'cam{i}', 32, 24, 'bgra8', 128))
            np.testing.assert_array_equal(msg.data, next(pattern).reshape(-1))
    first = [topics[f'/cam{i}/image_raw'][0][1].data for i in range(3)]
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[1], first[2])


def test_make_bag_writes_the_same_bag_for_the_same_arguments(tmp_path):
    def records(path):
        with AnyReader([path], default_typestore=TYPESTORE) as reader:
            return [(c.topic, log_ns, bytes(raw)) for c, log_ns, raw in reader.messages()]

    for name in ('one', 'two'):
        make_bag.write_bag(str(tmp_path / name), cameras=2, fps=15, seconds=0.5, width=24,
                           height=16, encoding='mono8', storage='sqlite3')
    first, second = records(tmp_path / 'one'), records(tmp_path / 'two')
    assert len(first) == 2 * 8 and first == second


def test_make_bag_command_line(tmp_path, capsys):
    path = tmp_path / 'cli'
    assert make_bag.main([str(path), '--cameras', '2', '--fps', '5', '--seconds', '1',
                          '--width', '16', '--height', '16', '--storage', 'sqlite3']) == 0
    assert capsys.readouterr().out.startswith(f'{path}: 10 images, 2 cameras')
    assert list(path.glob('*.db3'))
    assert make_bag.main([str(path)]) == 2  # exists: rosbags refuses to overwrite
    assert f'cannot write {str(path)!r}' in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        make_bag.main([str(tmp_path / 'tiny'), '--width', '4'])
    assert exit_info.value.code == 2
    assert ('--width: 4 is not allowed; allowed: an integer >= 8 and <= 8192'
            in capsys.readouterr().err)


# --------------------------------------------------------------------------------------- BagPlayer
def test_bag_player_keeps_the_recorded_spacing_scaled_by_rate_and_counts_what_it_sent():
    session = RosSession()
    try:
        received = []
        listener = session.add(rclpy.create_node('listener', context=session.context))
        listener.create_subscription(Image, '/a/image_raw',
                                     lambda msg: received.append(msg.header.stamp.nanosec),
                                     image_qos('reliable', 50))
        records = [('/a/image_raw', n * 100_000_000,
                    bytes(TYPESTORE.serialize_cdr(image(n * 100_000_000, 'a'), IMAGE)))
                   for n in range(6)]
        player = session.add(BagPlayer({'/a/image_raw': Image}, iter(records), rate=2.0,
                                       reliability='reliable', depth=50,
                                       context=session.context))
        assert unmatched_topics(player.publishers_by_topic, 5.0) == []
        started = time.monotonic()
        player.start()
        assert session.spin_until(lambda: player.finished.is_set() and len(received) == 6, 10.0)
        elapsed = time.monotonic() - started
        assert player.sent == {'/a/image_raw': 6} and player.error is None
        assert received == [n * 100_000_000 for n in range(6)]
        assert elapsed >= 0.25 - 0.01  # 500 ms of recording at twice the speed
    finally:
        session.close()


def test_bag_player_stops_on_an_unreadable_record_and_keeps_the_error():
    def records():
        yield '/a/image_raw', 0, bytes(TYPESTORE.serialize_cdr(image(0, 'a'), IMAGE))
        raise ValueError('record 2 is garbage')

    session = RosSession()
    try:
        player = session.add(BagPlayer({'/a/image_raw': Image}, records(),
                                       context=session.context))
        player.start()
        assert player.finished.wait(5.0)
        assert player.sent == {'/a/image_raw': 1}
        assert str(player.error) == 'record 2 is garbage'
    finally:
        session.close()


# ------------------------------------------------------------------------------------ s3dnn-replay
def test_camera_names_come_from_topics():
    assert camera_name('/front/image_raw', set()) == 'front'
    assert camera_name('/car/left/image_rect_color', set()) == 'car_left'
    assert camera_name('/image_raw', set()) == 'image_raw'
    assert camera_name('/1st/image', set()) == 'cam_1st'
    assert camera_name('/front/image_raw', {'front', 'front_2'}) == 'front_3'


@pytest.mark.parametrize('storage', [StoragePlugin.MCAP, StoragePlugin.SQLITE3])
def test_replay_publishes_every_frame_and_detections_carry_the_recorded_stamps(tmp_path, storage):
    stamps = {name: [START_SEC * 10**9 + n * 50_000_000 for n in range(6)]
              for name in ('left', 'right')}
    write(tmp_path / 'bag', {f'/{name}/image_raw': [(t, image(t, f'{name}_optical'))
                                                    for t in times]
                             for name, times in stamps.items()}, storage)
    params = config_file(tmp_path, {name: f'/{name}/image_raw' for name in stamps})
    session = RosSession()
    try:
        listener = session.add(rclpy.create_node('detections_listener', context=session.context))
        detections = {name: [] for name in stamps}
        for name in stamps:
            listener.create_subscription(
                String, detections_topic(name),
                lambda msg, n=name: detections[n].append(json.loads(msg.data)), 100)
        process = replay(tmp_path / 'bag', '--config', params, '--json', '--drain-s', '60',
                         '--wait-listeners', '60', wait=False)
        assert session.spin_until(lambda: process.poll() is not None or
                                  sum(map(len, detections.values())) == 12, 120.0)
        session.spin_for(0.5)
        out, err = process.communicate(timeout=60)
    finally:
        session.close()
    assert process.returncode == 0, err
    result = json.loads(out)
    assert (result['engine'], result['error']) == ('reference', None)
    rows = {row['camera']: row for row in result['cameras']}
    for name in stamps:
        row = rows[name]
        assert ((row['topic'], row['sent'], row['received'], row['completed'])
                == (f'/{name}/image_raw', 6, 6, 6))
        assert row['missed'] == row['dropped'] == row['rejected'] == 0
        got = sorted(d['header']['stamp']['sec'] * 10**9 + d['header']['stamp']['nanosec']
                     for d in detections[name])
        assert got == stamps[name]
        assert {d['header']['frame_id'] for d in detections[name]} == {f'{name}_optical'}


def test_replay_counts_bad_frames_and_serves_the_other_camera(tmp_path):
    t0 = START_SEC * 10**9
    bad = [image(t0, 'a', data=np.zeros(10, np.uint8)),  # shorter than step x height
           image(t0 + 10**8, 'a', width=0, data=np.zeros(0, np.uint8)),  # zero width
           image(t0 + 2 * 10**8, 'a', step=8)]  # step < width x channels
    good = [image(t0 + 3 * 10**8, 'a')]
    write(tmp_path / 'bag', {'/a/image_raw': [(m.header.stamp.sec * 10**9
                                               + m.header.stamp.nanosec, m)
                                              for m in bad + good],
                             '/b/image_raw': [(t0 + n * 10**8, image(t0 + n * 10**8, 'b'))
                                              for n in range(4)]})
    result = replay(tmp_path / 'bag', '--config',
                    config_file(tmp_path, {'a': '/a/image_raw', 'b': '/b/image_raw'}),
                    '--json', '--drain-s', '60')
    assert result.returncode == 0, result.stderr
    rows = {row['camera']: row for row in json.loads(result.stdout)['cameras']}
    assert ((rows['a']['sent'], rows['a']['received'], rows['a']['rejected'],
             rows['a']['completed']) == (4, 4, 3, 1))
    assert ((rows['b']['sent'], rows['b']['received'], rows['b']['rejected'],
             rows['b']['completed']) == (4, 4, 0, 4))


def test_replay_without_config_makes_a_camera_of_every_image_topic(tmp_path):
    t0 = START_SEC * 10**9
    write(tmp_path / 'bag', {topic: [(t0 + n * 10**8, image(t0 + n * 10**8, 'x'))
                                     for n in range(3)]
                             for topic in ('/front/image_raw', '/rear/image_raw')},
          extra_topic='/chatter')
    result = replay(tmp_path / 'bag', '--engine', 'reference', '--deadline-ms', '60000',
                    '--queue-depth', '10', '--json', '--drain-s', '60')
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)['cameras']
    assert [(row['camera'], row['topic'], row['sent']) for row in rows] == [
        ('front', '/front/image_raw', 3), ('rear', '/rear/image_raw', 3)]
    for row in rows:  # best-effort QoS may lose frames in transport, never silently
        assert (row['completed'] + row['dropped'] + row['rejected'] == row['received']
                <= row['sent'])


def test_replay_waiting_for_listeners_that_never_come_ends_with_an_error(tmp_path):
    t0 = START_SEC * 10**9
    write(tmp_path / 'bag', {'/front/image_raw': [(t0, image(t0, 'x'))]})
    result = replay(tmp_path / 'bag', '--engine', 'reference', '--wait-listeners', '0.5')
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.splitlines()[-1] == ('s3dnn-replay: error: --wait-listeners 0.5: '
                                              'no subscriber on /s3dnn/front/detections')


def test_sigint_stops_a_replay_early_with_the_summary_of_what_played(tmp_path):
    t0 = START_SEC * 10**9
    write(tmp_path / 'bag', {'/front/image_raw': [(t0 + n * 10**9, image(t0 + n * 10**9, 'x'))
                                                  for n in range(100)]})
    started = time.monotonic()
    returncode, output = interrupt_after(
        [sys.executable, '-m', 's3dnn_ros.tools.replay', str(tmp_path / 'bag'), '--engine',
         'reference', '--json'],
        'policy s3dnn', [signal.SIGINT], cwd=REPO_ROOT,
        env=repo_env())
    assert returncode == 0, output
    assert time.monotonic() - started < 60  # the bag lasts 100 s
    result = json.loads([line for line in output.splitlines() if line.startswith('{')][-1])
    assert result['cameras'][0]['camera'] == 'front' and result['cameras'][0]['sent'] < 100
    assert 'Traceback' not in output


def one_error_line(result, *fragments):
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith('s3dnn-replay: error: ')
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_replay_refuses_bags_it_cannot_use(tmp_path):
    one_error_line(replay(tmp_path / 'missing'), f"bag '{tmp_path / 'missing'}' does not exist")
    t0 = START_SEC * 10**9
    write(tmp_path / 'strings', {}, extra_topic='/chatter')
    one_error_line(replay(tmp_path / 'strings'), 'has no sensor_msgs/msg/Image topic nor',
                   '/chatter (std_msgs/msg/String)')
    write(tmp_path / 'torn', {'/a/image_raw': [(t0, image(t0, 'a'))]})
    (tmp_path / 'torn' / 'metadata.yaml').write_text('rosbag2_bagfile_information: [\n')
    one_error_line(replay(tmp_path / 'torn'), 'cannot be read', 'metadata.yaml')
    write(tmp_path / 'cut', {'/a/image_raw': [(t0 + n, image(t0 + n, 'a')) for n in range(3)]})
    mcap = next((tmp_path / 'cut').glob('*.mcap'))
    mcap.write_bytes(mcap.read_bytes()[:-200])
    one_error_line(replay(tmp_path / 'cut'), f"bag '{tmp_path / 'cut'}' cannot be read")


def test_replay_refuses_a_config_whose_cameras_are_not_in_the_bag(tmp_path):
    t0 = START_SEC * 10**9
    write(tmp_path / 'bag', {'/a/image_raw': [(t0, image(t0, 'a'))]})
    params = config_file(tmp_path, {'a': '/a/image_raw', 'side': '/side/image_raw'})
    one_error_line(replay(tmp_path / 'bag', '--config', params), 'side (/side/image_raw)',
                   'allowed: its image topics /a/image_raw')
    broken = tmp_path / 'broken.yaml'
    broken.write_text('s3dnn_perception:\n  ros__parameters: [\n')
    one_error_line(replay(tmp_path / 'bag', '--config', broken),
                   f'parameters file {str(broken)!r}: not valid YAML')
    wrong = tmp_path / 'wrong.yaml'
    wrong.write_text(params.read_text().replace('engine: reference', 'engine: tpu'))
    one_error_line(replay(tmp_path / 'bag', '--config', wrong),
                   "parameter engine='tpu': allowed one of auto")


def records_before_error(path) -> int | None:
    """
    Return how many records rosbags itself reads from the bag before failing.

    None when the bag does not open or reads to the end.
    """
    from rosbags.rosbag2 import Reader
    reader = Reader(path)
    try:
        reader.open()
    except Exception:  # noqa: BLE001 - any failure to open disqualifies the copy
        return None
    read = 0
    try:
        for _ in reader.messages():
            read += 1
    except Exception:  # noqa: BLE001 - sqlite3 reports the malformed page here
        return read
    finally:
        reader.close()
    return None


def bag_torn_mid_way(tmp_path) -> tuple[Path, int]:
    """
    Return a sqlite3 bag of 50 images with one page overwritten, and how many records it reads.

    The page is overwritten so that the bag opens but reading stops after some records (the page is
    found by trying each and reading the copy back with rosbags).
    """
    good = tmp_path / 'good'
    make_bag.write_bag(str(good), cameras=1, fps=50, seconds=1, width=64, height=48,
                       encoding='rgb8', storage='sqlite3')
    database = next(good.glob('*.db3')).name
    pages = (good / database).stat().st_size // 4096
    for page in range(pages // 2, pages):
        torn = tmp_path / f'torn{page}'
        torn.mkdir()
        (torn / 'metadata.yaml').write_bytes((good / 'metadata.yaml').read_bytes())
        data = bytearray((good / database).read_bytes())
        data[page * 4096:(page + 1) * 4096] = b'\xff' * 4096
        (torn / database).write_bytes(bytes(data))
        read = records_before_error(torn)
        if read:
            return torn, read
    pytest.fail('no page of the sqlite3 bag both opens and stops a read part-way')


def test_replay_reports_a_record_that_cannot_be_read_after_what_played(tmp_path):
    bag, readable = bag_torn_mid_way(tmp_path)
    result = replay(bag, '--engine', 'reference', '--json', '--drain-s', '30')
    assert result.returncode == 2
    summary = json.loads(result.stdout)
    assert summary['cameras'][0]['sent'] == readable
    assert f'record {readable + 1} cannot be read' in summary['error']
    assert result.stderr.splitlines()[-1] == f's3dnn-replay: error: {summary["error"]}'


def test_replay_stops_at_a_record_whose_bytes_are_not_an_image_and_lists_other_topics(tmp_path):
    """
    Record 4 of 6 holds bytes that are not a serialized Image.

    The node's middleware would drop it silently. A CompressedImage topic beside the Image topic is
    listed as not replayed.
    """
    bag = tmp_path / 'bag'
    stamps = [START_SEC * 10**9 + k * 50_000_000 for k in range(6)]
    good = [(stamp, image(stamp, 'cam')) for stamp in stamps]
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection('/cam/image_raw', IMAGE, typestore=TYPESTORE)
        for k, (log_ns, msg) in enumerate(good):
            data = TYPESTORE.serialize_cdr(msg, IMAGE)
            writer.write(connection, log_ns, data[:40] if k == 3 else data)
        compressed = writer.add_connection('/cam/image_raw/compressed',
                                           'sensor_msgs/msg/CompressedImage', typestore=TYPESTORE)
        msg = TYPESTORE.types['sensor_msgs/msg/CompressedImage'](
            header=good[0][1].header, format='jpeg', data=np.zeros(8, np.uint8))
        writer.write(compressed, START_SEC * 10**9,
                     TYPESTORE.serialize_cdr(msg, 'sensor_msgs/msg/CompressedImage'))
    result = replay(bag, '--engine', 'reference', '--json', '--drain-s', '30')
    assert result.returncode == 2, result.stderr
    summary = json.loads(result.stdout)
    assert summary['cameras'][0]['sent'] == 3 and 'record 4 cannot be read' in summary['error']
    assert summary['skipped_topics'] == [
        '/cam/image_raw/compressed (sensor_msgs/msg/CompressedImage; '
        "the same camera's raw images are replayed)"]
    table = replay(bag, '--engine', 'reference', '--drain-s', '30')
    assert table.returncode == 2
    assert ('not replayed: /cam/image_raw/compressed (sensor_msgs/msg/CompressedImage; '
            "the same camera's raw images are replayed)" in table.stdout)


def test_replay_stops_at_a_record_rosbags_reads_and_the_middleware_refuses(tmp_path):
    """
    Record 3 of 5 has a stray bit in its CDR encapsulation options.

    Rosbags deserializes it, Fast CDR (the node's subscription) does not and would drop it without
    a word. The replay checks records with the middleware's deserializer, so it stops there and
    says so.
    """
    bag = tmp_path / 'bag'
    stamps = [START_SEC * 10**9 + k * 50_000_000 for k in range(5)]
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection('/cam/image_raw', IMAGE, typestore=TYPESTORE)
        for k, stamp in enumerate(stamps):
            data = bytearray(TYPESTORE.serialize_cdr(image(stamp, 'cam'), IMAGE))
            if k == 2:
                data[3] = 0xbe
                TYPESTORE.deserialize_cdr(bytes(data), IMAGE)  # rosbags reads it
            writer.write(connection, stamp, bytes(data))
    result = replay(bag, '--engine', 'reference', '--json', '--drain-s', '30')
    assert result.returncode == 2, result.stderr
    summary = json.loads(result.stdout)
    assert summary['cameras'][0]['sent'] == summary['cameras'][0]['received'] == 2
    assert 'record 3 cannot be read' in summary['error']


def test_replay_plays_compressed_topics_as_compressed_cameras(tmp_path):
    """
    Replay /front/image_raw/compressed (jpeg) beside /rear/image_raw (raw) and an odd topic.

    The bag has /front/image_raw/compressed (jpeg) beside /rear/image_raw (raw), and a
    CompressedImage on a name image_transport would not give: front becomes a compressed camera,
    its frames are decoded and completed with their recorded stamps, the odd topic is listed as not
    replayed.
    """
    cv2 = pytest.importorskip('cv2',
                              reason='compressed images need OpenCV (make test installs it)')
    bag = tmp_path / 'bag'
    t0 = START_SEC * 10**9
    types = TYPESTORE.types
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        front = writer.add_connection('/front/image_raw/compressed', COMPRESSED,
                                      typestore=TYPESTORE)
        odd = writer.add_connection('/front/jpeg', COMPRESSED, typestore=TYPESTORE)
        rear = writer.add_connection('/rear/image_raw', IMAGE, typestore=TYPESTORE)
        for k in range(4):
            stamp = t0 + k * 50_000_000
            raw = image(stamp, 'front')
            ok, jpeg = cv2.imencode('.jpg',
                                    np.asarray(raw.data).reshape(raw.height, raw.width, 3))
            msg = types[COMPRESSED](header=raw.header, format='jpeg', data=jpeg.reshape(-1))
            writer.write(front, stamp, TYPESTORE.serialize_cdr(msg, COMPRESSED))
            writer.write(odd, stamp, TYPESTORE.serialize_cdr(msg, COMPRESSED))
            writer.write(rear, stamp, TYPESTORE.serialize_cdr(image(stamp, 'rear'), IMAGE))
    result = replay(bag, '--engine', 'reference', '--json', '--drain-s', '60', '--deadline-ms',
                    '60000', '--queue-depth', '10')
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    rows = {row['camera']: row for row in summary['cameras']}
    assert (rows['front']['topic'] == '/front/image_raw/compressed'
            and rows['rear']['topic'] == '/rear/image_raw')
    for row in rows.values():
        assert (row['sent'] == 4 and row['completed'] + row['dropped'] == row['received'] <= 4
                and row['rejected'] == 0)
    assert rows['front']['completed'] > 0
    assert summary['skipped_topics'] == ['/front/jpeg (sensor_msgs/msg/CompressedImage, '
                                         'not on a <topic>/compressed name)']


def test_make_bag_under_a_regular_file_is_one_line_and_leaves_nothing(tmp_path, capsys):
    regular = tmp_path / 'notes.txt'
    regular.write_text('not a directory\n')
    assert make_bag.main([str(regular / 'bag'), '--seconds', '0.1', '--width', '16',
                          '--height', '16']) == 2
    assert capsys.readouterr().err == (f"s3dnn-make-bag: error: cannot write '{regular / 'bag'}': "
                                       'Not a directory\n')
    assert regular.read_text() == 'not a directory\n'
