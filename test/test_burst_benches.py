"""bench/burst_chains.py, round_timeline.py, side_by_side.py, completion_visibility.py on a GPU."""
import json
import sys

from gpu_helpers import require_cuda_device
from process_helpers import repo_env, REPO_ROOT, run
import pytest
from s3dnn_ros.scheduler.dispatcher import STAGE_MIN_FRAMES

pytestmark = pytest.mark.gpu
require_cuda_device()


def _record(tmp_path, script: str, *args: str) -> dict:
    result = run([sys.executable, f'bench/{script}.py', *args, '--out', str(tmp_path)],
                 timeout=300, cwd=REPO_ROOT, env=repo_env())
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = tmp_path.glob(f'{script}-*.json')
    return json.loads(path.read_text())


def test_burst_chains_times_every_cut_that_divides_the_burst_then_the_uneven_cuts(tmp_path):
    report = _record(tmp_path, 'burst_chains', '--frames', '4,6', '--chains', '1,2,4',
                     '--cuts', '1+3,2+2+3', '--repeats', '3')
    # 6 frames do not split into 4 chains
    assert [(row['frames'], row['chains'], row['chain_frames']) for row in report['rows']] == [
        (4, 1, 4), (4, 2, 2), (4, 4, 1), (6, 1, 6), (6, 2, 3), (4, 2, None), (7, 3, None)]
    assert [row['cut'] for row in report['rows'][-3:]] == [[3, 3], [1, 3], [2, 2, 3]]
    assert all(0 < row['min_ms'] <= row['median_ms'] for row in report['rows'])


def test_burst_chains_graphs_on_off_times_every_cut_on_both_engines(tmp_path):
    report = _record(tmp_path, 'burst_chains', '--frames', '4', '--chains', '1,2',
                     '--graphs', 'on,off', '--repeats', '3')
    assert [(row['frames'], row['chains'], row['graphs']) for row in report['rows']] == [
        (4, 1, 'on'), (4, 1, 'off'), (4, 2, 'on'), (4, 2, 'off')]
    assert all(0 < row['min_ms'] <= row['median_ms'] for row in report['rows'])


def test_completion_visibility_times_each_way_of_seeing_a_launch_end_after_its_delay(tmp_path):
    report = _record(tmp_path, 'completion_visibility', '--trials', '4', '--delay-us', '100')
    assert [row['method'] for row in report['rows']] == [
        'query timing event', 'query event without timing', 'query stream',
        'synchronize timing event']
    for row in report['rows']:
        # the host cannot know the launch ended before the GPU waited its 100 µs
        assert 100 <= row['min_us'] <= row['median_us'] <= row['p90_us']


def test_side_by_side_times_every_layer_and_the_copies_alone_and_together(tmp_path):
    report = _record(tmp_path, 'side_by_side', '--batches', '1,4', '--launches', '2',
                     '--repeats', '3')
    rows = report['rows']
    assert [(row['layer'], row['batch']) for row in rows][:4] == [
        ('copies', 1), ('copies', 4), ('preprocess', 1), ('preprocess', 4)]
    assert len(rows) == 2 * 15  # the copies and 14 kernel layers, at two batch sizes
    for row in rows:
        assert row['alone_us'] > 0 and row['x2_us'] > 0
        assert row['x2_share'] == pytest.approx(row['x2_us'] / (2 * row['alone_us']), abs=2e-3)
        assert (row['tb_ratio'] is None) == (row['layer'] == 'copies')
    for row in rows[:2]:
        first, second = row['x2_ends_us']
        assert 0 < first and 0 < second


def test_round_timeline_orders_arrivals_decision_gpu_and_results(tmp_path):
    report = _record(tmp_path, 'round_timeline', '--frames', '2,20', '--streams', '4',
                     '--repeats', '3')
    rows = {row['frames']: row for row in report['rows']}
    assert set(rows) == {2, 20}
    # GPU times are events mapped onto the host's clock: within tens of µs of it
    slack = 0.05
    for frames, row in rows.items():
        assert 0 < row['arrived_ms'] < row['gpu_end_ms']
        assert 0 < row['first_call_ms'] < row['gpu_end_ms']
        assert -slack <= row['gpu_start_ms'] < row['gpu_end_ms']
        assert row['gpu_end_ms'] <= row['done_ms'] + slack
        # every frame starts on arrival, at an idle GPU or in the burst: its upload goes ahead
        # of its first launch where enough start together
        uploads = row['uploads']
        staged = frames if frames >= STAGE_MIN_FRAMES else 0
        assert sum(entry['frames'] for entry in uploads) == staged
        assert all(-slack <= entry['gpu_ms'][0] <= entry['gpu_ms'][1] <= row['gpu_end_ms']
                   for entry in uploads)
        # busy: the union of the intervals between the first start and the last end, per round
        assert row['gpu_busy_ms'] > 0 and row['gpu_idle_ms'] >= 0
        launches = row['launches']
        assert len(launches) >= 1
        # every frame goes through every layer: the layers launched per frame add up to the net
        covered = sum(entry['depth'] * entry['batch'] for entry in launches)
        assert covered == frames * 14
        assert row['host_edges_ms'] >= -slack
    # Table 1's streams baseline beside the round, where the frames split into its four runs
    assert rows[2]['streams_baseline'] is None
    base = rows[20]['streams_baseline']
    assert -slack <= base['gpu_start_ms'] < base['gpu_end_ms'] <= base['done_ms'] + slack
    assert 0 < base['gpu_busy_ms'] <= base['gpu_end_ms'] - base['gpu_start_ms'] + slack
    assert base['host_edges_ms'] >= -slack
    # 2 frames are launched once both are in; of 20 on an idle GPU (rule 2b) the first 16 are a
    # chain launched before the last 4 are taken in, and those 4 a second chain on another stream
    assert rows[2]['arrived_ms'] <= rows[2]['first_call_ms']
    assert rows[20]['first_call_ms'] < rows[20]['arrived_ms']
    first = [entry for entry in rows[20]['launches'] if entry['layer'] == 0]
    assert [entry['batch'] for entry in first] == [16, 4]
    assert len({entry['stream'] for entry in first}) == 2
