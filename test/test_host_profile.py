"""bench/host_profile.py on a GPU: every part of a round's host time, profiled rounds only."""
import json
import shutil
import sys

from gpu_helpers import require_cuda_device
from process_helpers import interpreted_copy, repo_env, REPO_ROOT, run
import pytest

pytestmark = pytest.mark.gpu
require_cuda_device()


def _profile(folder, tmp_path) -> tuple[dict, str]:
    """Run ``folder``'s bench/host_profile.py; return its record and its printed table."""
    result = run([sys.executable, 'bench/host_profile.py', '--frames', '4,20', '--rounds', '2',
                  '--staging-threads', '2', '--out', str(tmp_path)],
                 timeout=300, cwd=folder, env=repo_env())
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = tmp_path.glob('host_profile-staging2-*.json')
    return json.loads(path.read_text()), result.stdout


def _check_parts(report: dict, printed: str) -> None:
    assert report['staging_threads'] == 2
    assert [entry['frames'] for entry in report['rounds']] == [4, 20]
    interpreted = report['scheduler'] == 'interpreted'
    for entry in report['rounds']:
        parts = entry['host_ms']
        assert 0 < entry['gpu_busy_ms'] < entry['wall_ms']
        # nested parts: the kernel launches are inside the engine's launch, inside the backend's
        engine = parts['  engine launch (events, copies, kernels)']
        kernels = parts['    kernel launches (arguments, cuLaunchKernel or a graph)']
        assert 0 < kernels <= engine < entry['wall_ms']
        scheduler = [parts['backend launch (staging + kernel launches)'],
                     parts['completion polling'], parts['policy dequeue'],
                     parts['policy enqueue']]
        if interpreted:
            assert engine <= scheduler[0] < entry['wall_ms']
            assert parts['policy dequeue'] > 0 and parts['policy enqueue'] > 0
        else:  # compiled modules run as C: cProfile cannot time them, and the record says so
            assert scheduler == [None] * 4, scheduler
    assert ('cProfile does not see' in printed) == (not interpreted)


def test_host_profile_reports_each_part_of_the_dispatch_path_per_round_size(tmp_path):
    """This build's package: every part, or (compiled) the engine's parts and None for the rest."""
    from s3dnn_ros import native
    report, printed = _profile(REPO_ROOT, tmp_path)
    assert report['scheduler'] == native.build()
    _check_parts(report, printed)


def test_host_profile_times_every_part_on_an_interpreted_package(tmp_path):
    """The script and an interpreted copy of the package: the scheduler's parts are timed too."""
    copy = interpreted_copy(tmp_path / 'tree')
    shutil.copytree(REPO_ROOT / 'kernels', copy / 'kernels')
    (copy / 'bench').mkdir()
    for script in ('host_profile.py', 'records.py'):
        shutil.copy(REPO_ROOT / 'bench' / script, copy / 'bench' / script)
    report, printed = _profile(copy, tmp_path)
    assert report['scheduler'] == 'interpreted'
    _check_parts(report, printed)
