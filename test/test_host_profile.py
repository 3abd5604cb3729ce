"""bench/host_profile.py on a GPU: every part of a round's host time, profiled rounds only."""
import json
import sys

from gpu_helpers import require_cuda_device
from process_helpers import repo_env, REPO_ROOT, run
import pytest

pytestmark = pytest.mark.gpu
require_cuda_device()


def test_host_profile_reports_each_part_of_the_dispatch_path_per_round_size(tmp_path):
    result = run([sys.executable, 'bench/host_profile.py', '--frames', '4,20', '--rounds', '2',
                  '--staging-threads', '2', '--out', str(tmp_path)],
                 timeout=300, cwd=REPO_ROOT, env=repo_env())
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = tmp_path.glob('host_profile-staging2-*.json')
    report = json.loads(path.read_text())
    assert report['staging_threads'] == 2
    assert [entry['frames'] for entry in report['rounds']] == [4, 20]
    for entry in report['rounds']:
        parts = entry['host_ms']
        assert 0 < entry['gpu_busy_ms'] < entry['wall_ms']
        # nested parts: the kernel launches are inside the engine's launch, inside the backend's
        backend = parts['backend launch (staging + kernel launches)']
        engine = parts['  engine launch (events, copies, kernels)']
        kernels = parts['    kernel launches (arguments, cuLaunchKernel)']
        assert 0 < kernels <= engine <= backend < entry['wall_ms']
        assert parts['policy dequeue'] > 0 and parts['policy enqueue'] > 0
