"""
s3dnn-bench --json: one JSON object with every section.

On the CPU with the reference engine.
"""
import json
import sys

from process_helpers import repo_env, REPO_ROOT, run
import pytest
from s3dnn_ros.model import alexnet
from s3dnn_ros.tools import bench


def test_json_report_holds_every_section(capsys, tmp_path):
    argv = ['--engine', 'reference', '--batches', '1', '--table1-batches', '2', '--repeats', '1',
            '--json', '--out', str(tmp_path)]
    assert bench.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report['engine'] == 'reference' and report['card'] == 'cpu' and report['date']
    assert json.loads((tmp_path / 'bench-cpu.json').read_text()) == report
    layer_names = [layer.name for layer in alexnet().kernel_layers]
    rows = report['layers']['rows']
    assert [row['layer'] for row in rows] == layer_names + ['network', 'upload+network']
    for row in rows:
        assert row['batch'] == 1 and row['ours_us'] > 0 and row['floor_us'] > 0
        assert row['bound'] in ('compute', 'memory') and row['torch_us'] is None
    assert sorted((row['inputs'], row['batch'], row['streams'])
                  for row in report['table1']['rows']) == \
        [('pageable', 2, 1), ('pageable', 2, 4), ('pinned', 2, 1), ('pinned', 2, 4)]
    for row in report['table1']['rows']:
        assert row['sequential_ms'] > 0 and row['streams_ms'] > 0 and row['s3dnn_ms'] > 0
        assert row['s3dnn_vs_streams'] == \
            pytest.approx(row['s3dnn_ms'] / row['streams_ms'], abs=1e-3)
        # the reference engine's calls are its kernels (busy time); its launches have no interval
        assert 0 < row['s3dnn_gpu_busy_ms'] <= row['s3dnn_ms']
        assert 'streams_gpu_busy_ms' not in row
    four = report['four_cameras']
    assert [r['inputs'] for r in four['rounds']] == ['pinned', 'pageable']
    for r in four['rounds']:
        assert r['s3dnn_round_ms'] >= r['gpu_busy_ms'] > 0
        assert 0 <= r['idle_fraction'] <= r['idle_fraction_max'] < 1
        assert r['rounds'] == 1 and 0 <= r['rounds_idle_over_20pct'] <= 1
        # the count is taken before rounding: a share above 0.2 rounds to 0.2 or more
        if r['rounds_idle_over_20pct']:
            assert r['idle_fraction_max'] >= 0.2
        else:
            assert r['idle_fraction_max'] <= 0.2
    assert 'no GPU baseline' in four['torch']


def test_table1_measures_take_turns_in_a_rotating_order():
    """Each measure warms up once, then they alternate, each turn starting with the next one."""
    from types import SimpleNamespace
    calls = []

    def measure(name, values):
        samples = iter(values)
        return lambda: calls.append(name) or next(samples)

    medians = bench.Bench._alternate(SimpleNamespace(repeats=12), {
        'a': measure('a', [9.0, 1.0, 2.0, 30.0]), 'b': measure('b', [9.0, 5.0, 4.0, 3.0]),
        'c': measure('c', [0.1, 7.0, 7.5, 6.0])})
    assert calls == ['a', 'b', 'c', 'a', 'b', 'c', 'b', 'c', 'a', 'c', 'a', 'b']
    assert medians == {'a': 2.0, 'b': 4.0, 'c': 7.0}


def test_bad_section_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(['--sections', 'everything'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("s3dnn-bench: error: argument --sections: 'everything' is not known")


def test_capacity_section_measures_and_simulates_every_point(capsys, tmp_path):
    """
    The capacity sweep on the CPU (reference engine, tiny images, slow cameras).

    One worker per policy, every count measured and simulated, the knees, the JSON record and its
    plot.
    """
    argv = ['--engine', 'reference', '--sections', 'capacity', '--cameras', '1,2', '--policies',
            's3dnn,streams', '--fps', '5', '--deadline-ms', '5000', '--width', '64', '--height',
            '48', '--seconds', '1.5', '--warmup-s', '0.2', '--overload', '0', '--json', '--out',
            str(tmp_path)]
    assert bench.main(argv) == 0
    record = json.loads(capsys.readouterr().out)
    assert json.loads((tmp_path / 'capacity-cpu.json').read_text()) == record
    assert (tmp_path / 'capacity-cpu.png').stat().st_size > 10_000
    assert not (tmp_path / 'capacity-partial.jsonl').exists()  # the record replaced it
    assert (record['card'], record['width'], record['height'], record['fps'],
            record['deadline_ms']) == ('cpu', 64, 48, 5.0, 5000.0)
    assert sorted((row['policy'], row['cameras'], row['source']) for row in record['rows']) == [
        (policy, count, source) for policy in ('s3dnn', 'streams') for count in (1, 2)
        for source in ('gpu', 'sim')]
    for row in record['rows']:
        assert row['released'] == row['completed'] + row['dropped'] > 0
        assert row['miss_ratio'] == pytest.approx((row['missed'] + row['dropped'])
                                                  / row['released'], abs=1e-6)
        assert 0 < row['p50_ms'] <= row['p99_ms'] and row['mean_batch'] >= 1
        if row['source'] == 'gpu':
            # 5 frames/s per camera for 1.5 s, each released at its due time
            assert 7 * row['cameras'] <= row['released'] <= 8 * row['cameras']
            assert row['host_us_per_frame'] > 0 and row['feeder_late_p99_ms'] >= 0
            # the reference engine runs one kernel per layer of a launch: 14 layers a frame
            # at batch 1, fewer per frame the more a launch fuses, a kernel taking at most one
            # frame of each camera (the mean batch, per launch, does not bound it: a fused
            # segment of 13 layers counts as one launch, as a single layer of one frame does)
            layers = len(alexnet().kernel_layers)
            # the kernels are counted between two statistics snapshots, the frames by their due
            # times: the frame each camera has in flight at either edge may fall on either side
            edge = 2 * row['cameras'] * layers / row['completed']
            assert layers / row['cameras'] - edge <= row['kernels_per_frame'] <= layers + edge
            if row['mean_batch'] == 1:
                assert row['kernels_per_frame'] >= layers - edge
            assert row['host_us_per_kernel'] == pytest.approx(
                row['host_us_per_frame'] * row['released'] / row['completed']
                / row['kernels_per_frame'], rel=0.05)
            assert 0 < row['feeder_submit_p50_us'] <= row['feeder_submit_p99_us']
            assert row['generator_cpu_us_per_frame'] > 0
            # the loop blocks at most IDLE_WAIT_S (50 ms) at a time: one camera's frames, 200 ms
            # apart and each far shorter to run, take it round more than twice a frame; its own
            # system calls take some time
            assert row['loop_turns_per_frame'] >= (2 if row['cameras'] == 1 else 1)
            assert row['unmetered_us_per_frame'] > 0
            # every launch was decided by a DEQUEUE; those that launched nothing are unmetered
            assert row['dequeues_per_frame'] > 0
            assert 0 <= row['hold_us_per_frame'] <= row['unmetered_us_per_frame']
            # each poll found at least one busy stream, and at least a launch in flight on each
            assert 1 <= row['poll_streams'] <= row['poll_inflight'] and row['poll_ready'] >= 0
            # the workers' resident memory (Python with numpy: more than 10 MB each)
            assert row['worker_mb'] > 10 and row['worker_mb'] > row['worker_growth_mb']
    assert record['copy_every_frame'] is False
    assert record['knees'] == {'s3dnn': {'gpu': 2, 'sim': 2}, 'streams': {'gpu': 2, 'sim': 2}}
    assert set(record['host_costs']) == {'s3dnn', 'streams'}
    assert record['cost_table']['layers'].keys() == {layer.name
                                                     for layer in alexnet().kernel_layers}
    # each measured point keeps the worker's metered host totals
    assert all(row['host_totals']['arrivals'] > 0 and row['host_totals']['launches'] > 0
               for row in record['rows'] if row['source'] == 'gpu')
    # bench/resimulate.py simulates the record's points again: this version, the same rows
    result = run([sys.executable, 'bench/resimulate.py', str(tmp_path / 'capacity-cpu.json'),
                  '--out', str(tmp_path / 'again')], timeout=120, cwd=REPO_ROOT, env=repo_env())
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads((tmp_path / 'again' / 'resimulate-cpu.json').read_text())
    assert again['knees'] == record['knees'] and again['record_date'] == record['date']
    assert again['rows'] == [row for row in record['rows'] if row['source'] == 'sim']
    # a finer sweep: the extra counts simulated for every policy, in the knee
    result = run([sys.executable, 'bench/resimulate.py', str(tmp_path / 'capacity-cpu.json'),
                  '--cameras', '3', '--out', str(tmp_path / 'finer')], timeout=120,
                 cwd=REPO_ROOT, env=repo_env())
    assert result.returncode == 0, result.stderr[-3000:]
    finer = json.loads((tmp_path / 'finer' / 'resimulate-cpu.json').read_text())
    assert sorted((row['policy'], row['cameras']) for row in finer['rows']) == sorted(
        [(row['policy'], row['cameras']) for row in again['rows']]
        + [('s3dnn', 3), ('streams', 3)])
    extra = {row['policy']: row for row in finer['rows'] if row['cameras'] == 3}
    for policy, row in extra.items():
        expected = 3 if row['miss_ratio'] < 0.01 else record['knees'][policy]['sim']
        assert finer['knees'][policy]['sim'] == expected
    (tmp_path / 'broken.json').write_text('{"rows": []}')
    result = run([sys.executable, 'bench/resimulate.py', str(tmp_path / 'broken.json')],
                 timeout=60, cwd=REPO_ROOT, env=repo_env())
    assert result.returncode == 2
    assert 'argument record' in result.stderr and 'not a capacity record' in result.stderr


def test_a_capacity_run_stopped_early_keeps_the_rows_it_measured(capsys, tmp_path, monkeypatch):
    """The run stops (a time limit) while measuring its second count: the first row is kept."""
    from s3dnn_ros.tools import capacity
    measured = []
    run_point = capacity.run_point

    def stopped_at_the_second(*args, **kwargs):
        if measured:
            raise KeyboardInterrupt
        measured.append(run_point(*args, **kwargs))
        return measured[-1]

    monkeypatch.setattr(capacity, 'run_point', stopped_at_the_second)
    argv = ['--engine', 'reference', '--sections', 'capacity', '--cameras', '1,2', '--policies',
            's3dnn', '--fps', '5', '--deadline-ms', '5000', '--width', '64', '--height', '48',
            '--seconds', '1', '--warmup-s', '0.2', '--overload', '0', '--out', str(tmp_path)]
    with pytest.raises(KeyboardInterrupt):
        bench.main(argv)
    header, *rows = [json.loads(line) for line in
                     (tmp_path / 'capacity-partial.jsonl').read_text().splitlines()]
    assert header['command'].startswith('s3dnn-bench --engine reference --sections capacity')
    assert rows == json.loads(json.dumps(measured))
    assert [(row['cameras'], row['policy']) for row in rows] == [(1, 's3dnn')]
    assert not list(tmp_path.glob('capacity-cpu*'))


def test_capacity_section_on_two_gpus_feeds_each_worker_its_cameras(capsys, tmp_path):
    """
    Check the capacity sweep over two scheduler workers (reference engines as devices 0 and 1).

    Cameras alternate between the GPUs, as the node places them; every frame of every camera is
    counted once (released = 5 frames/s x 1.5 s per camera), and the simulated rows model two GPUs.
    """
    argv = ['--engine', 'reference', '--sections', 'capacity', '--cameras', '3', '--policies',
            'streams', '--fps', '5', '--deadline-ms', '5000', '--width', '64', '--height', '48',
            '--seconds', '1.5', '--warmup-s', '0.2', '--overload', '0', '--gpus', '2', '--json',
            '--copy-every-frame', '--out', str(tmp_path)]
    assert bench.main(argv) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert record['gpus'] == 2 and record['copy_every_frame'] is True
    for device in (0, 1):
        assert f'streams: gpu{device} worker pid' in captured.err
    gpu, sim = (next(row for row in record['rows'] if row['source'] == source)
                for source in ('gpu', 'sim'))
    assert 21 <= gpu['released'] <= 24 and gpu['completed'] + gpu['dropped'] == gpu['released']
    assert gpu['unresolved'] == 0 and 0 < gpu['gpu_busy'] <= 1
    assert sim['released'] == pytest.approx(gpu['released'], abs=3)


def test_capacity_section_with_two_workers_on_one_gpu_splits_the_cameras(capsys, tmp_path):
    """
    Check the capacity sweep with two scheduler workers on device 0 (reference engines).

    Every frame of every camera is counted once and completes (8 may wait per camera on this
    slow engine); the simulated row models two schedulers sharing the GPU.
    """
    argv = ['--engine', 'reference', '--sections', 'capacity', '--cameras', '3', '--policies',
            's3dnn', '--fps', '5', '--deadline-ms', '5000', '--width', '64', '--height', '48',
            '--seconds', '1.5', '--warmup-s', '0.2', '--overload', '0', '--workers-per-gpu', '2',
            '--queue-depth', '8', '--json', '--out', str(tmp_path)]
    assert bench.main(argv) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert (record['gpus'], record['workers_per_gpu']) == (1, 2)
    for worker in (0, 1):
        assert f's3dnn: gpu0 worker{worker} worker pid' in captured.err
    assert [row['source'] for row in record['rows']] == ['gpu', 'sim']
    row, simulated = record['rows']
    assert 21 <= row['released'] <= 24 and row['completed'] == row['released']
    assert row['unresolved'] == 0
    # every first-layer launch of the span counted once by cause and once by size; the frames
    # they carry are the span's, give or take what 3 cameras x (8 + 1) hold at its two ends
    launches = sum(row['first_layer_launches'].values())
    assert launches == sum(row['first_layer_batches'].values()) > 0
    frames = sum(int(size) * n for size, n in row['first_layer_batches'].items())
    assert abs(frames - row['released']) <= 3 * 9
    assert simulated['released'] == pytest.approx(row['released'], abs=3)
    assert record['knees']['s3dnn']['gpu'] == 3


def test_capacity_with_the_timed_engine_measures_the_host_at_the_tables_pace(capsys, tmp_path):
    """
    --engine timed --cost-table: the capacity sweep without a GPU, full-size frames.

    The measured rows are 'timed' rows beside the simulated ones, also in the knees, the plot's
    legend and bench/resimulate.py; the engine needs the table and runs no other section.
    """
    table = str(REPO_ROOT / 'bench' / 'results' / 'costs-nvidia-h200.json')
    argv = ['--engine', 'timed', '--cost-table', table, '--sections', 'capacity', '--cameras',
            '4,16', '--policies', 's3dnn', '--seconds', '1', '--warmup-s', '0.2', '--overload',
            '0', '--json', '--out', str(tmp_path)]
    assert bench.main(argv) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert record['engine'] == 'timed' and record['measured'] == 'timed'
    assert record['card'] == 'timed (NVIDIA H200)' and (record['width'], record['height']) == (
        640, 480)
    assert 'timed engine: no GPU' in captured.err
    assert (tmp_path / 'capacity-timed-nvidia-h200.png').stat().st_size > 10_000
    assert sorted((row['cameras'], row['source']) for row in record['rows']) == [
        (4, 'sim'), (4, 'timed'), (16, 'sim'), (16, 'timed')]
    assert set(record['knees']['s3dnn']) == {'timed', 'sim'}
    for row in record['rows']:
        assert row['released'] >= row['completed'] + row['dropped'] > 0
        if row['source'] == 'timed':
            # 30 frames/s per camera for 1 s, each released at its due time
            assert 29 * row['cameras'] <= row['released'] <= 31 * row['cameras']
            assert row['unresolved'] == 0 and row['host_us_per_frame'] > 0
            assert 0 < row['gpu_busy'] < 1 and row['mean_batch'] >= 1
    result = run([sys.executable, 'bench/resimulate.py',
                  str(tmp_path / 'capacity-timed-nvidia-h200.json'), '--out',
                  str(tmp_path / 'again')], timeout=120, cwd=REPO_ROOT, env=repo_env())
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads((tmp_path / 'again' / 'resimulate-timed-nvidia-h200.json').read_text())
    assert again['knees'] == record['knees']
    assert again['rows'] == [row for row in record['rows'] if row['source'] == 'sim']


@pytest.mark.parametrize('argv, message', [
    (['--engine', 'timed', '--sections', 'capacity'],
     'argument --cost-table: --engine timed takes its launch times from a cost table: give one'),
    (['--engine', 'timed', '--cost-table', 'costs.json', '--sections', 'table1,capacity'],
     'argument --engine: timed computes nothing, so it runs only the capacity section, '
     'not table1'),
    (['--engine', 'timed', '--cost-table', 'no-such-costs.json', '--sections', 'capacity'],
     "argument --cost-table: cost table 'no-such-costs.json' does not exist"),
])
def test_the_timed_engine_without_a_table_or_beyond_capacity_is_a_usage_error(capsys, argv,
                                                                              message):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f's3dnn-bench: error: {message}'
