"""
bench/multiprocess_node.py: the node and its cameras as separate processes.

On the CPU with the reference engine, swept over two camera counts; the report holds what the table
shows, with the capacity keys.
"""
import json
import os
import sys

from process_helpers import repo_env, REPO_ROOT, run
import pytest

pytest.importorskip('rclpy', reason='needs the ROS 2 rclpy wheels (make test installs them)')


def test_node_in_its_own_process_is_swept_over_camera_counts(tmp_path):
    """Two camera counts; with workers_per_gpu 2 the two cameras have a worker each."""
    command = [sys.executable, 'bench/multiprocess_node.py', '--cameras', '1,2', '--fps', '4',
               '--seconds', '3', '--width', '64', '--height', '48', '--engine', 'reference',
               '--policy', 's3dnn', '--workers-per-gpu', '2',
               '--deadline-ms', '5000', '--warmup-s', '0', '--out', str(tmp_path)]
    result = run(command, timeout=300, cwd=REPO_ROOT,
                 env=repo_env())
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / 'multiprocess_node-cpu.json').read_text())
    assert report['card'] == 'cpu' and report['qos'] == 'reliable'
    assert [(row['policy'], row['cameras'], row['engine']) for row in report['rows']] == [
        ('s3dnn', 1, 'reference'), ('s3dnn', 2, 'reference')]
    for row in report['rows']:
        for key in ('released', 'completed', 'missed', 'dropped', 'miss_ratio', 'p50_ms', 'p99_ms',
                    'gpu_busy', 'mean_batch', 'host_us_per_frame'):
            assert key in row
        # 4 FPS for about 3 s per camera; a loaded CI host may make the CPU engine fall behind, and
        # then the node drops frames (newest wins) and counts them
        assert 3 * row['cameras'] <= row['expected'] <= 16 * row['cameras']
        assert row['completed'] == sum(row['per_camera'].values()) \
            and min(row['per_camera'].values()) > 0
        assert row['missed'] == 0 and row['released'] >= row['dropped']
        assert row['miss_ratio'] == \
            pytest.approx((row['dropped'] + row['lost']) / row['expected'], abs=1e-6)
        assert 0 < row['p50_ms'] <= row['p99_ms'] and row['host_us_per_frame'] > 0
        assert 0 < row['node_cpu_busy'] < os.cpu_count()
    table = result.stdout.splitlines()
    header = next(i for i, line in enumerate(table)
                  if line.startswith('camera processes at 4 FPS (64x48, reliable)'))
    assert [line.split()[:2] for line in table[header + 3:header + 5]] == [['s3dnn', '1'],
                                                                           ['s3dnn', '2']]
