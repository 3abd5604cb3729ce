"""bench/multiprocess_node.py: the node and its cameras as separate processes, on the CPU with the reference
engine; every camera's detections arrive and the report holds what the table shows."""
import json
import os
import sys
from pathlib import Path

import pytest

from process_helpers import run

pytest.importorskip('rclpy', reason='needs the ROS 2 rclpy wheels (make test installs them)')

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_node_in_its_own_process_reports_each_camera(tmp_path):
    command = [sys.executable, 'bench/multiprocess_node.py', '--cameras', '2', '--fps', '4', '--seconds', '3',
               '--width', '64', '--height', '48', '--engine', 'reference', '--policy', 's3dnn',
               '--deadline-ms', '5000', '--out', str(tmp_path)]
    result = run(command, timeout=240, cwd=REPO_ROOT, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / 'multiprocess_node-cpu.json').read_text())
    assert report['card'] == 'cpu'
    (s3dnn,) = report['runs']
    assert (s3dnn['policy'], s3dnn['engine']) == ('s3dnn', 'reference')
    assert [row['camera'] for row in s3dnn['cameras']] == ['cam0', 'cam1']
    for row in s3dnn['cameras']:
        # 4 FPS for 3 s, give or take timer phase and start-up; a loaded CI host may make the CPU engine
        # fall behind, and then the node drops frames (newest wins) and counts them
        assert 3 <= row['detections'] <= 16
        assert row['missed'] == 0
        assert row['node_received'] >= row['detections'] + row['node_dropped']
        assert 0 < row['p50_ms'] <= row['p99_ms'] <= row['max_ms']
    table = result.stdout.splitlines()
    assert table[0].startswith('2 cameras (one process each) at 4 FPS into the node (own process)')
    assert [line.split()[:2] for line in table[3:5]] == [['s3dnn', 'cam0'], ['s3dnn', 'cam1']]
