"""bench/launch_calls.py on a GPU: every call of a launch timed, and the fused results right."""
import json
import sys

from gpu_helpers import require_cuda_device
from process_helpers import repo_env, REPO_ROOT, run
import pytest

pytestmark = pytest.mark.gpu
require_cuda_device()


def test_launch_calls_times_each_call_per_frame_count_with_right_results(tmp_path):
    command = [sys.executable, 'bench/launch_calls.py', '--frames', '1,3', '--repeats', '5',
               '--cameras', '6', '--inflight', '1', '--out', str(tmp_path)]
    result = run(command, timeout=300, cwd=REPO_ROOT, env=repo_env())
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = tmp_path.glob('launch_calls-*.json')
    record = json.loads(path.read_text())
    rows = record['rows']
    assert [row['frames'] for row in rows] == [1, 3, 1, 3]
    assert [row['batched_copies'] for row in rows][2:] == [False, False]
    for row in rows:
        assert row['results_right'] is True
        assert all(row[key] > 0 for key in ('set_inputs', 'launch_layer0', 'launch_layer1',
                                            'launch_network', 'done', 'interval', 'results'))
    # the whole-network launch again with one launch of other cameras running
    busy = record['busy_rows']
    assert [(row['frames'], row['inflight']) for row in busy] == [(1, 1), (3, 1)] * 2
    for row in busy:
        assert row['set_inputs'] > 0 and row['launch_network'] > 0
        assert 0 < row['gpu_busy'] <= 1


def test_launch_calls_refuses_too_few_cameras_for_the_launches_in_flight(tmp_path):
    command = [sys.executable, 'bench/launch_calls.py', '--frames', '4', '--cameras', '6',
               '--inflight', '1', '--out', str(tmp_path)]
    result = run(command, timeout=60, cwd=REPO_ROOT, env=repo_env())
    assert result.returncode == 2
    assert ('argument --cameras: 6: allowed at least 8 (the largest of --frames, 4, times 1 + '
            '--inflight 1)') in result.stderr
