"""bench/segment_graphs.py on a GPU: each way of launching a segment timed, the same results."""
import json
import sys

from gpu_helpers import require_cuda_device
from process_helpers import repo_env, REPO_ROOT, run
import pytest

pytestmark = pytest.mark.gpu
require_cuda_device()


def test_segment_graphs_reports_each_way_with_the_same_results(tmp_path):
    command = [sys.executable, 'bench/segment_graphs.py', '--launches', '24', '--frames', '4',
               '--out', str(tmp_path)]
    result = run(command, timeout=300, cwd=REPO_ROOT, env=repo_env())
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = tmp_path.glob('segment_graphs-*.json')
    report = json.loads(path.read_text())
    assert report['graph_calls'] is True
    whole, run_ahead = report['segments']
    assert (whole['first'], run_ahead['first'], run_ahead['layers']) == (0, 1, 6)
    assert whole['same_results'] is True and 'same_results' not in run_ahead
    for row in (whole, run_ahead):
        for way in ('kernels', 'graph', 'graph_rewritten'):
            assert row[f'{way}_host_us'] > 0 and row[f'{way}_gpu_us'] > 0
    counts = report['graph_counts']
    # a graph per segment; the rewritten way rewrites every call after its first
    assert counts['captured'] == 2 and counts['rewrites'] >= 2 * 24
