"""
s3dnn-evaluate on real bags with the real node and the reference engine.

The bags are photographs matplotlib ships, through s3dnn-make-bag. The report's files exist and
agree with each other (every sent frame is a CSV row, the summary's totals are the CSV's, the
plotted values are the summary's), the scaled cameras get every record, and bad bags are reported.
Also s3dnn-make-bag --images/--video.
"""
from collections import Counter
import csv
import json
from pathlib import Path
import shutil
import sys

import numpy as np
from process_helpers import repo_env, run
import pytest

pytest.importorskip('rclpy', reason='needs the ROS 2 rclpy wheels (make test installs them)')
pytest.importorskip('rosbags', reason='needs rosbags (make test installs it)')
cv2 = pytest.importorskip('cv2', reason='needs OpenCV (make test installs it)')
matplotlib = pytest.importorskip('matplotlib', reason='needs matplotlib (make test installs it)')

from rosbags.rosbag2 import StoragePlugin  # noqa: E402
from s3dnn_ros.tools.evaluate import (camera_names, OUTCOMES, Progress,  # noqa: E402
                                      scaled_topics, ScaledRecords)
from s3dnn_ros.tools.replay import Bag  # noqa: E402
from test_bag_tools import COMPRESSED, IMAGE, image, read_images, START_SEC, write  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = Path(matplotlib.get_data_path()) / 'sample_data'
PHOTOS = ['grace_hopper.jpg', 'Minduka_Present_Blue_Pack.png']
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
PLOTS = ['miss_ratio.png', 'latency_cdf.png', 'camera_p99.png', 'latency_timeline.png',
         'gpu_busy.png']


def tool(module, *args, timeout=240):
    env = repo_env()
    return run([sys.executable, '-m', f's3dnn_ros.tools.{module}', *map(str, args)],
               timeout=timeout, cwd=REPO_ROOT, env=env)


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / 'photos'
    folder.mkdir()
    for name in PHOTOS:
        shutil.copy(SAMPLE_DATA / name, folder / name)
    return folder


def make_photo_bag(path, photos, *extra):
    result = tool('make_bag', path, '--images', photos, *extra)
    assert result.returncode == 0, result.stderr
    return result


def read_csv(path) -> list[dict]:
    with open(path, newline='') as stream:
        return list(csv.DictReader(stream))


# -------------------------------------------------------------------------------------- the report
def test_report_files_agree_with_each_other(tmp_path, photos):
    """
    Two policies at two rates over a photo camera scaled to 2.

    Every frame sent is one CSV row, the summary's per-camera and total counts are the CSV's, the
    plotted series are the summary's values.
    """
    bag = tmp_path / 'bag'
    make_photo_bag(bag, photos, '--fps', 4, '--seconds', 1.5)
    report = tmp_path / 'report'
    result = tool('evaluate', bag, '--policies', 's3dnn,sequential', '--rates', '1,2',
                  '--cameras-scale', 2, '--engine', 'reference', '--deadline-ms', 60000,
                  '--queue-depth', 50, '--report', report)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ['frames.csv', 'summary.json', 'plots.json', 'report.md', *PLOTS]:
        assert (report / name).is_file(), name
    for name in PLOTS:
        assert (report / name).read_bytes()[:8] == PNG_MAGIC, name
    summary = json.loads((report / 'summary.json').read_text())
    rows = read_csv(report / 'frames.csv')
    recorded = 6  # 1.5 s at 4 FPS
    assert (summary['cameras_scale'] == 2 and summary['recorded_cameras'] == 1
            and summary['cameras'] == 2)
    assert [(run['policy'], run['rate']) for run in summary['runs']] == [
        ('s3dnn', 1.0), ('s3dnn', 2.0), ('sequential', 1.0), ('sequential', 2.0)]
    for run_summary in summary['runs']:
        mine = [row for row in rows if row['policy'] == run_summary['policy']
                and float(row['rate']) == run_summary['rate']]
        assert run_summary['error'] is None
        # every record to both copies
        assert run_summary['total']['sent'] == len(mine) == 2 * recorded
        assert {row['camera'] for row in mine} == {'cam0', 's1_cam0'}
        for camera_row in [*run_summary['cameras'], run_summary['total']]:
            subset = [row for row in mine if camera_row.get('camera') in (None, row['camera'])]
            outcomes = Counter(row['outcome'] for row in subset)
            assert set(outcomes) <= set(OUTCOMES)
            assert camera_row['completed'] == outcomes['done']
            for key in ('dropped', 'rejected', 'lost', 'unresolved'):
                assert camera_row[key] == outcomes[key], (key, camera_row)
            assert camera_row['missed'] == sum(int(row['missed']) for row in subset)
            assert camera_row['received'] == len(subset) - outcomes['lost']
            failed = camera_row['missed'] + len(subset) - outcomes['done']
            assert camera_row['miss_ratio'] == pytest.approx(failed / len(subset))
            latencies = [float(row['latency_ms']) for row in subset if row['outcome'] == 'done']
            if latencies:
                assert camera_row['p99_ms'] == pytest.approx(np.percentile(latencies, 99),
                                                             abs=1e-3)
        stamps = Counter((row['camera'], int(row['stamp_ns'])) for row in mine)
        assert sorted(stamps) == sorted((camera, START_SEC * 10**9 + k * 250_000_000)
                                        for camera in ('cam0', 's1_cam0') for k in range(recorded))
        assert set(stamps.values()) == {1}
        assert run_summary['total']['completed'] > 0  # a generous deadline and deep queues
    plots = json.loads((report / 'plots.json').read_text())
    for run_summary in summary['runs']:
        policy, rate = run_summary['policy'], run_summary['rate']
        assert [rate, run_summary['total']['miss_ratio']] in plots['miss_ratio'][policy]
        assert [rate, run_summary['gpu_busy']] in plots['gpu_busy'][policy]
        done = sorted(float(row['latency_ms']) for row in rows if row['policy'] == policy
                      and float(row['rate']) == rate and row['outcome'] == 'done')
        assert plots['latency_cdf_ms'][f'{policy} x{rate:g}'] == pytest.approx(done, abs=1e-3)
        if rate == 2.0:
            assert plots['camera_p99_ms'][policy] == {row['camera']: row['p99_ms']
                                                      for row in run_summary['cameras']}
    text = (report / 'report.md').read_text()
    assert str(bag) in text and 'engine: reference' in text and 's3dnn-evaluate' in text
    for name in PLOTS:
        assert f']({name})' in text
    assert result.stdout.rstrip().endswith(f'report: {report / "report.md"}')


def test_compressed_photos_are_evaluated_like_raw_ones(tmp_path, photos):
    """
    The same photos recorded as JPEG CompressedImages.

    One camera on <topic>/compressed, every frame a row; none rejected (every one decodes), and
    those that reached the node (best-effort transport may lose one) complete or are dropped.
    """
    bag = tmp_path / 'jpeg'
    make_photo_bag(bag, photos, '--fps', 4, '--format', 'compressed')
    report = tmp_path / 'report'
    result = tool('evaluate', bag, '--policies', 's3dnn', '--engine', 'reference',
                  '--deadline-ms', 60000, '--queue-depth', 50, '--report', report, '--json')
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    (run_summary,) = summary['runs']
    assert (run_summary['total']['sent'] == len(PHOTOS)
            and run_summary['cameras'][0]['camera'] == 'cam0')
    total = run_summary['total']
    assert total['rejected'] == total['unresolved'] == 0 and total['completed'] >= 1
    assert total['completed'] + total['dropped'] + total['lost'] == len(PHOTOS)
    assert len(read_csv(report / 'frames.csv')) == len(PHOTOS)


def test_unsupported_topics_and_a_corrupt_record_are_reported(tmp_path):
    """
    A String topic is listed as not replayed (in summary.json and report.md).

    A record that is not an Image stops the run with an error naming the record, and the report
    still says what was sent.
    """
    bag = tmp_path / 'bag'
    t0 = START_SEC * 10**9
    frames = [(t0 + k * 100_000_000, image(t0 + k * 100_000_000, 'cam0')) for k in range(4)]
    write(bag, {'/cam0/image_raw': frames}, extra_topic='/chatter')
    report = tmp_path / 'report'
    result = tool('evaluate', bag, '--policies', 'streams', '--engine', 'reference',
                  '--deadline-ms', 60000, '--queue-depth', 50, '--report', report, '--rates', 4)
    assert result.returncode == 0, result.stderr
    summary = json.loads((report / 'summary.json').read_text())
    assert summary['skipped_topics'] == ['/chatter (std_msgs/msg/String)']
    assert '/chatter (std_msgs/msg/String)' in (report / 'report.md').read_text()
    assert summary['runs'][0]['total']['sent'] == 4

    broken = tmp_path / 'broken'
    from rosbags.rosbag2 import Writer
    from test_bag_tools import TYPESTORE
    with Writer(broken, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection('/cam0/image_raw', IMAGE, typestore=TYPESTORE)
        for k, (log_ns, msg) in enumerate(frames):
            data = TYPESTORE.serialize_cdr(msg, IMAGE)
            writer.write(connection, log_ns, data[:20] if k == 2 else data)
    report = tmp_path / 'broken-report'
    result = tool('evaluate', broken, '--policies', 'streams', '--engine', 'reference',
                  '--deadline-ms', 60000, '--report', report, '--rates', 4)
    assert result.returncode == 2, result.stdout + result.stderr
    assert 'Traceback' not in result.stderr
    assert result.stderr.splitlines()[-1].startswith('s3dnn-evaluate: error: ')
    assert 'record 3' in result.stderr.splitlines()[-1]
    summary = json.loads((report / 'summary.json').read_text())
    assert 'record 3' in summary['runs'][0]['error'] and summary['runs'][0]['total']['sent'] == 2
    assert 'stopped early' in (report / 'report.md').read_text()


def test_record_writes_each_runs_detections_and_diagnostics_into_a_bag(tmp_path, photos):
    """
    Check that --record OUT leaves one bag per run that standard tools read.

    Each bag holds every detection of the run (as many as the summary's completed frames, each with
    a source stamp of a CSV row) and the node's /diagnostics.
    """
    from rosbags.highlevel import AnyReader
    from test_bag_tools import TYPESTORE
    bag = tmp_path / 'bag'
    make_photo_bag(bag, photos, '--fps', 4, '--seconds', 1)
    report, out = tmp_path / 'report', tmp_path / 'recorded'
    result = tool('evaluate', bag, '--policies', 's3dnn,streams', '--engine', 'reference',
                  '--deadline-ms', 60000, '--queue-depth', 50, '--report', report, '--record', out,
                  '--rates', 2)
    assert result.returncode == 0, result.stderr
    summary = json.loads((report / 'summary.json').read_text())
    rows = read_csv(report / 'frames.csv')
    assert sorted(path.name for path in out.iterdir()) == ['s3dnn_x2', 'streams_x2']
    for run_summary in summary['runs']:
        name = f'{run_summary["policy"]}_x2'
        assert run_summary['recording']['bag'] == str(out / name)
        with AnyReader([out / name], default_typestore=TYPESTORE) as reader:
            topics = {c.topic: c.msgtype for c in reader.connections}
            assert topics['/diagnostics'] == 'diagnostic_msgs/msg/DiagnosticArray'
            detections = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()
                          if c.topic == '/s3dnn/cam0/detections']
        assert len(detections) == run_summary['total']['completed'] > 0
        stamps = {int(row['stamp_ns']) for row in rows if row['policy'] == run_summary['policy']}
        for message in detections:
            header = json.loads(message.data)['header']['stamp']
            assert header['sec'] * 10**9 + header['nanosec'] in stamps
    assert 'recorded in: ' in (report / 'report.md').read_text()


@pytest.mark.parametrize('args, message', [
    (['--rates', '0'], 'argument --rates: 0 is not allowed'),
    (['--rates', '1,1'], 'repeats a rate'),
    (['--policies', 'fastest'], "argument --policies: 'fastest' is not known"),
    (['--cameras-scale', '65'], 'argument --cameras-scale: 65 is not allowed'),
    (['--record', '.'], "argument --record: '.' exists"),
    (['--cameras-scale', '2', '--config', 'params.yaml'],
     'argument --cameras-scale: 2 needs the cameras'),
])
def test_bad_arguments_get_one_line_and_exit_2(tmp_path, args, message):
    result = tool('evaluate', tmp_path / 'bag', '--report', tmp_path / 'report', *args)
    assert (result.returncode == 2 and message in result.stderr
            and len(result.stderr.splitlines()) == 1), result.stderr
    assert not (tmp_path / 'report').exists()


def test_scaled_records_shift_each_copy_by_its_share_of_the_frame_period(tmp_path):
    """
    Copies of a 10 FPS camera scaled by 4 start 0, 25, 50 and 75 ms after the original.

    They are on their own topics, in log-time order, and every handed-out record is remembered with
    its camera and stamp.
    """
    bag_path = tmp_path / 'bag'
    t0 = START_SEC * 10**9
    write(bag_path, {'/front/image_raw': [(t0 + k * 100_000_000,
                                           image(t0 + k * 100_000_000, 'front'))
                                          for k in range(3)]})
    bag = Bag(str(bag_path))
    try:
        topics = scaled_topics(bag, 4)
        assert list(topics) == ['/front/image_raw', '/s1/front/image_raw', '/s2/front/image_raw',
                                '/s3/front/image_raw']
        names = camera_names(topics)
        assert list(names.values()) == ['front', 's1_front', 's2_front', 's3_front']
        records = ScaledRecords(bag, topics, names, 4)
        played = [(topic, log_ns) for topic, log_ns, _ in records]
    finally:
        bag.close()
    assert [log for _, log in played] == sorted(log for _, log in played)
    for j, topic in enumerate(topics):
        assert [log - t0 for t, log in played if t == topic] == [
            k * 100_000_000 + j * 25_000_000 for k in range(3)]
        assert records.handed[topic] == [(names[topic], t0 + k * 100_000_000) for k in range(3)]


def test_progress_line_shows_time_frames_misses_and_eta(capsys):
    class Camera:
        received = 7

    class Node:
        cameras = {'a': Camera()}

    class Player:
        sent = {'/a': 9}

    class Outcome:
        outcome, missed = 'done', True

    meter = Progress(True, 's3dnn x2', 10.0, 40, Node(), [Outcome()])
    meter(Player())
    meter.close()
    line = capsys.readouterr().err
    assert (line.startswith('\rs3dnn x2: played ')
            and 'sent 9/40, received 7, misses 1, ETA' in line)
    quiet = Progress(False, 's3dnn x2', 10.0, 40, Node(), [])
    quiet(Player())
    assert capsys.readouterr().err == ''


# -------------------------------------------------------------------------------- make-bag sources
def test_make_bag_from_pictures_and_a_video(tmp_path, photos):
    """
    A folder's pictures in name order (repeated to fill --seconds) and a video's frames.

    One camera each, raw bgr8 or JPEG on <topic>/compressed, on one fixed-rate timeline.
    """
    video = tmp_path / 'clip.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 10, (64, 48))
    for k in range(5):
        writer.write(np.full((48, 64, 3), 40 * k, np.uint8))
    writer.release()
    result = tool('make_bag', tmp_path / 'raw', '--images', photos, '--video', video, '--fps', 10,
                  '--seconds', 0.4)
    assert result.returncode == 0, result.stderr
    topics = read_images(tmp_path / 'raw')
    assert sorted(topics) == ['/cam0/image_raw', '/cam1/image_raw']
    files = sorted(photos.iterdir())
    pictures = [cv2.imread(str(files[k % 2])) for k in range(4)]
    got = topics['/cam0/image_raw']
    assert [log for log, _ in got] == [START_SEC * 10**9 + k * 100_000_000 for k in range(4)]
    for (_, msg), picture in zip(got, pictures):
        assert msg.encoding == 'bgr8' and (msg.height, msg.width) == picture.shape[:2]
        assert np.array_equal(np.asarray(msg.data).reshape(picture.shape), picture)
    assert [msg.header.frame_id for _, msg in topics['/cam1/image_raw']] == ['cam1'] * 4
    assert [(m.height, m.width) for _, m in topics['/cam1/image_raw']] == [(48, 64)] * 4

    result = tool('make_bag', tmp_path / 'jpeg', '--images', photos, '--fps', 10,
                  '--format', 'compressed')
    assert result.returncode == 0, result.stderr
    from rosbags.highlevel import AnyReader
    from test_bag_tools import TYPESTORE
    with AnyReader([tmp_path / 'jpeg'], default_typestore=TYPESTORE) as reader:
        (connection,) = reader.connections
        assert (connection.topic, connection.msgtype) == ('/cam0/image_raw/compressed', COMPRESSED)
        messages = [reader.deserialize(raw, COMPRESSED) for _, _, raw in reader.messages()]
    assert len(messages) == 2 and all(m.format == 'jpeg' for m in messages)
    for message, name in zip(messages, files):
        decoded = cv2.imdecode(np.asarray(message.data), cv2.IMREAD_COLOR)
        original = cv2.imread(str(name))
        assert decoded.shape == original.shape
        assert np.abs(decoded.astype(int) - original).mean() < 6  # within JPEG's loss


@pytest.mark.parametrize('args, message', [
    (['--images', 'missing-folder'], "argument --images: 'missing-folder' is not a directory"),
    (['--video', 'missing.avi'], "argument --video: 'missing.avi' cannot be read"),
    (['--images', '{photos}', '--cameras', '2'], 'argument --cameras: 2 with --images/--video'),
    (['--images', '{empty}'], 'has no .png/.jpg/.jpeg file'),
])
def test_make_bag_bad_sources_get_one_line_and_leave_no_bag(tmp_path, photos, args, message):
    (tmp_path / 'empty').mkdir()
    args = [arg.format(photos=photos, empty=tmp_path / 'empty') for arg in args]
    result = tool('make_bag', tmp_path / 'bag', *args)
    assert (result.returncode == 2 and message in result.stderr
            and len(result.stderr.splitlines()) == 1), result.stderr
    assert not (tmp_path / 'bag').exists()
