"""
The s3dnn-sim command line.

JSON and table output, per-camera settings, cost tables and argument errors.
"""
import json
import sys

from process_helpers import repo_env, REPO_ROOT, run
import pytest
from s3dnn_ros.engine.costs import estimate
from s3dnn_ros.model import alexnet
from s3dnn_ros.scheduler.policies import POLICIES
from s3dnn_ros.tools import sim

TINY = ['--cameras', '2', '--seconds', '0.2']

COUNT_KEYS = ['released', 'completed', 'missed', 'dropped']
FLOAT_KEYS = ['miss_ratio', 'p50_ms', 'p99_ms', 'throughput_fps', 'gpu_busy', 'mean_batch']
RESULT_KEYS = set(COUNT_KEYS + FLOAT_KEYS + ['per_camera', 'gpus', 'workers_per_gpu', 'per_gpu'])
CAMERA_FLOAT_KEYS = ['fps', 'deadline_ms', 'miss_ratio', 'p50_ms', 'p95_ms', 'p99_ms', 'max_ms']
CAMERA_KEYS = set(['name'] + COUNT_KEYS + CAMERA_FLOAT_KEYS)

#: an overloaded T4 in firm mode, so that frames are missed and dropped
OVERLOAD = ['--cameras', '4', '--fps', '120', '--deadline-ms', '4', '--seconds', '0.5', '--gpu',
            't4', '--firm']


def run_subprocess(*args):
    env = repo_env()
    return run([sys.executable, '-m', 's3dnn_ros.tools.sim', *args], timeout=60, cwd=REPO_ROOT,
               env=env)


def run_json(capsys, *args):
    """Run the CLI in-process with --json; return the parsed stdout."""
    assert sim.main([*args, '--json']) == 0
    captured = capsys.readouterr()
    assert captured.err == ''
    return json.loads(captured.out)


def assert_usage_error(capsys, argv, argument):
    """
    Check that the CLI exits 2 with one stderr line naming ``argument``.

    Returns what follows the argument name.
    """
    with pytest.raises(SystemExit) as exit_info:
        sim.main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ''
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    prefix = f's3dnn-sim: error: argument {argument}: '
    assert lines[0].startswith(prefix), lines[0]
    return lines[0][len(prefix):]


@pytest.fixture(scope='module')
def t4_table_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('costs') / 't4.json'
    estimate(alexnet(), 't4').save(path)
    return path


@pytest.fixture(scope='module')
def overloaded_results():
    """
    Return results of every policy on the overloaded firm scenario.

    Module-wide: shared by several checks.
    """
    env = repo_env()
    result = run([sys.executable, '-m', 's3dnn_ros.tools.sim', *OVERLOAD, '--json'], timeout=60,
                 cwd=REPO_ROOT, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# ---- JSON output --------------------------------------------------------------------------------

def test_json_subprocess_prints_exactly_one_object_keyed_by_the_requested_policies():
    result = run_subprocess('--cameras', '3', '--seconds', '0.3', '--policy', 's3dnn,edf,streams',
                            '--json')
    assert result.returncode == 0, result.stderr
    assert result.stderr == ''
    assert result.stdout.endswith('}\n')
    assert list(json.loads(result.stdout)) == ['s3dnn', 'edf', 'streams']


def test_json_default_runs_every_policy(capsys):
    assert list(run_json(capsys, *TINY)) == list(POLICIES)


def test_json_result_and_camera_keys_and_types(overloaded_results):
    assert list(overloaded_results) == list(POLICIES)
    for policy, result in overloaded_results.items():
        assert set(result) == RESULT_KEYS, policy
        for key in COUNT_KEYS:
            assert type(result[key]) is int and result[key] >= 0, (policy, key)
        for key in FLOAT_KEYS:
            assert type(result[key]) is float and result[key] >= 0, (policy, key)
        assert len(result['per_camera']) == 4
        for camera in result['per_camera']:
            assert set(camera) == CAMERA_KEYS, policy
            assert type(camera['name']) is str
            for key in COUNT_KEYS:
                assert type(camera[key]) is int and camera[key] >= 0, (policy, key)
            for key in CAMERA_FLOAT_KEYS:
                assert type(camera[key]) is float and camera[key] >= 0, (policy, key)


def test_every_released_frame_is_completed_or_dropped(overloaded_results):
    assert any(result['dropped'] > 0 for result in overloaded_results.values())
    for policy, result in overloaded_results.items():
        assert result['released'] == result['completed'] + result['dropped'], policy
        assert result['missed'] <= result['completed'], policy
        for camera in result['per_camera']:
            assert camera['released'] == camera['completed'] + camera['dropped'], \
                (policy, camera['name'])


def test_totals_are_the_sums_over_cameras(overloaded_results):
    for policy, result in overloaded_results.items():
        for key in COUNT_KEYS:
            assert result[key] == sum(camera[key] for camera in result['per_camera']), \
                (policy, key)


def test_ratios_and_percentiles_are_in_range(overloaded_results):
    for policy, result in overloaded_results.items():
        assert 0 <= result['gpu_busy'] <= 1, policy
        assert 0 <= result['miss_ratio'] <= 1, policy
        assert result['p50_ms'] <= result['p99_ms'], policy
        assert result['mean_batch'] >= 1, policy
        assert result['throughput_fps'] == pytest.approx(result['completed'] / 0.5, abs=1e-3), \
            policy
        expected_miss = (result['missed'] + result['dropped']) \
            / (result['completed'] + result['dropped'])
        assert result['miss_ratio'] == pytest.approx(expected_miss, abs=1e-6), policy


def test_light_load_meets_every_deadline(capsys):
    results = run_json(capsys, '--cameras', '2', '--seconds', '0.3', '--deadline-ms', '50',
                       '--gpu', 'h100')
    for policy, result in results.items():
        assert result['released'] > 0, policy
        assert result['completed'] == result['released'], policy
        assert result['missed'] == result['dropped'] == 0, policy
        assert result['miss_ratio'] == 0.0, policy
        assert 0 < result['gpu_busy'] < 1, policy


def test_same_arguments_give_the_same_results(capsys):
    args = ['--cameras', '3', '--seconds', '0.3', '--policy', 's3dnn,fifo', '--seed', '4']
    assert run_json(capsys, *args) == run_json(capsys, *args)


# ---- per-camera settings ------------------------------------------------------------------------

def test_per_camera_fps_and_deadlines_are_reflected(capsys):
    results = run_json(capsys, '--cameras', '3', '--fps', '30,15,60', '--deadline-ms', '50,40,30',
                       '--seconds', '0.5', '--policy', 's3dnn,sequential')
    for policy, result in results.items():
        cameras = result['per_camera']
        assert [camera['name'] for camera in cameras] == ['cam0', 'cam1', 'cam2'], policy
        assert [camera['fps'] for camera in cameras] == [30.0, 15.0, 60.0], policy
        assert [camera['deadline_ms'] for camera in cameras] == [50.0, 40.0, 30.0], policy
        for camera in cameras:
            assert abs(camera['released'] - camera['fps'] * 0.5) <= 1, (policy, camera)


def test_single_fps_and_deadline_apply_to_every_camera(capsys):
    results = run_json(capsys, '--cameras', '4', '--fps', '20', '--deadline-ms', '45', '--seconds',
                       '0.2', '--policy', 'edf')
    cameras = results['edf']['per_camera']
    assert len(cameras) == 4
    assert {(camera['fps'], camera['deadline_ms']) for camera in cameras} == {(20.0, 45.0)}


# ---- table output -------------------------------------------------------------------------------

def test_table_has_a_title_a_header_and_one_row_per_policy(capsys):
    assert sim.main(['--cameras', '3', '--seconds', '0.2', '--fps', '30,15,30', '--policy',
                     's3dnn,fifo,edf']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == \
        '3 cameras at 15,30 FPS, deadline 33 ms, 0.2 s, H100 SXM (nominal) (estimated)'
    assert lines[1].split() == \
        ['policy', 'released', 'completed', 'missed', 'dropped', 'miss', '%', 'p50', 'ms', 'p99',
         'ms', 'frames/s', 'GPU', 'busy', 'mean', 'batch']
    assert set(lines[2].replace(' ', '')) == {'-'}
    assert [line.split()[0] for line in lines[3:]] == ['s3dnn', 'fifo', 'edf']
    assert len({len(line) for line in lines[1:]}) == 1


def test_table_rows_match_the_json_results(capsys):
    args = ['--cameras', '2', '--seconds', '0.3', '--policy', 'streams']
    result = run_json(capsys, *args)['streams']
    assert sim.main(args) == 0
    row = capsys.readouterr().out.splitlines()[3].split()
    assert row[:5] == ['streams', str(result['released']), str(result['completed']),
                       str(result['missed']), str(result['dropped'])]


def test_table_subprocess_marks_firm_mode():
    result = run_subprocess(*TINY, '--policy', 'sequential', '--firm')
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith(', firm')
    assert len(lines) == 4


# ---- cost tables --------------------------------------------------------------------------------

def test_cost_table_file_gives_the_same_results_as_its_gpu(capsys, t4_table_file):
    args = ['--cameras', '3', '--seconds', '0.3', '--deadline-ms', '20']
    assert run_json(capsys, *args, '--cost-table', str(t4_table_file)) == \
        run_json(capsys, *args, '--gpu', 't4')


def test_cost_table_overrides_gpu(capsys, t4_table_file):
    args = ['--cameras', '2', '--seconds', '0.3', '--policy', 's3dnn']
    from_file = run_json(capsys, *args, '--gpu', 'h100', '--cost-table', str(t4_table_file))
    assert from_file == run_json(capsys, *args, '--gpu', 't4')
    assert from_file != run_json(capsys, *args, '--gpu', 'h100')


# ---- argument errors ----------------------------------------------------------------------------

USAGE_ERRORS = [
    (['--cameras', '0', '--seconds', '0.2'], '--cameras',
     '0 is not allowed; allowed: an integer >= 1'),
    (['--cameras', 'x', '--seconds', '0.2'], '--cameras',
     "'x' is not an integer; allowed: an integer >= 1"),
    (['--fps', '-1', *TINY], '--fps',
     '-1 is not allowed; allowed: a finite number >= 0.01 and <= 1000'),
    (['--fps', '1e-300', *TINY], '--fps',
     '1e-300 is not allowed; allowed: a finite number >= 0.01 and <= 1000'),
    (['--fps', '30,0', *TINY], '--fps',
     '0 is not allowed; allowed: a finite number >= 0.01 and <= 1000'),
    (['--cameras', '3', '--fps', '30,30', '--seconds', '0.2'], '--fps',
     '2 values given; allowed: 1 value or one per camera (3)'),
    (['--deadline-ms', '0', *TINY], '--deadline-ms',
     '0 is not allowed; allowed: a finite number >= 0.001 and <= 3.6e+06'),
    (['--deadline-ms', '1e-9', *TINY], '--deadline-ms',
     '1e-9 is not allowed; allowed: a finite number >= 0.001 and <= 3.6e+06'),
    (['--launch-overhead-us', '1e300', *TINY], '--launch-overhead-us',
     '1e300 is not allowed; allowed: a finite number >= 0 and <= 1e+06'),
    (['--cameras', '2', '--deadline-ms', '10,20,30', '--seconds', '0.2'], '--deadline-ms',
     '3 values given; allowed: 1 value or one per camera (2)'),
    (['--cameras', '2', '--seconds', 'nan'], '--seconds',
     'nan is not allowed; allowed: a finite number >= 0.001 and <= 3600'),
    (['--cameras', '2', '--seconds', 'inf'], '--seconds',
     'inf is not allowed; allowed: a finite number >= 0.001 and <= 3600'),
    (['--cameras', '2', '--seconds', '1e9'], '--seconds',
     '1e9 is not allowed; allowed: a finite number >= 0.001 and <= 3600'),
    (['--policy', 'foo', *TINY], '--policy',
     "'foo' is not known; allowed: s3dnn,streams,sequential,fifo,edf"),
    (['--policy', 's3dnn,s3dnn', *TINY], '--policy',
     "'s3dnn,s3dnn' repeats an item; allowed: s3dnn,streams,sequential,fifo,edf"),
    (['--gpu', 'a100', *TINY], '--gpu', "invalid choice: 'a100' (choose from 'h100', 't4')"),
    (['--jitter-ms', '-1', *TINY], '--jitter-ms',
     '-1 is not allowed; allowed: a finite number >= 0'),
    (['--queue-depth', '0', *TINY], '--queue-depth',
     '0 is not allowed; allowed: an integer >= 1'),
    (['--workers-per-gpu', '9', *TINY], '--workers-per-gpu',
     '9 is not allowed; allowed: an integer >= 1 and <= 8'),
    (['--host-stall-ms', '-1', *TINY], '--host-stall-ms',
     '-1 is not allowed; allowed: a finite number >= 0'),
]


def test_workers_per_gpu_splits_each_gpus_cameras_over_that_many_schedulers(capsys):
    result = run_json(capsys, '--cameras', '5', '--seconds', '0.3', '--policy', 's3dnn',
                      '--gpus', '2', '--workers-per-gpu', '2')['s3dnn']
    assert result['gpus'] == 2 and result['workers_per_gpu'] == 2
    assert [(g['gpu'], g['workers']) for g in result['per_gpu']] == [(0, 2), (1, 2)]
    assert sorted(c for g in result['per_gpu'] for c in g['cameras']) == \
        sorted(f'cam{i}' for i in range(5))
    assert result['released'] == sum(g['released'] for g in result['per_gpu'])


@pytest.mark.parametrize('argv, argument, detail', USAGE_ERRORS,
                         ids=[' '.join(argv) for argv, _, _ in USAGE_ERRORS])
def test_bad_argument_exits_2_with_one_line_naming_it(capsys, argv, argument, detail):
    assert assert_usage_error(capsys, argv, argument) == detail


def test_missing_cost_table_exits_2_naming_the_file(capsys, tmp_path):
    missing = tmp_path / 'missing.json'
    detail = assert_usage_error(capsys, [*TINY, '--cost-table', str(missing)], '--cost-table')
    assert detail == f'cost table {str(missing)!r} does not exist'


@pytest.mark.parametrize('content, detail', [
    ('{"layers": {"conv1": ', 'is not readable JSON'),
    ('{"gpu": "x"}', 'expected an object with a "layers" object'),
    ('{"layers": {"conv1": {"1": {"cost_us": -1, "tb_ratio": 0.5}}}}',
     'layers.conv1.1.cost_us=-1: must be a positive number'),
    ('{"layers": {"conv1": {"1": {"cost_us": 1, "tb_ratio": 0.5}}}}',
     "no entry for layer 'preprocess'"),
], ids=['truncated-json', 'no-layers', 'negative-cost', 'missing-layers'])
def test_malformed_cost_table_exits_2_with_one_line(capsys, tmp_path, content, detail):
    path = tmp_path / 'costs.json'
    path.write_text(content)
    assert detail in assert_usage_error(capsys, [*TINY, '--cost-table', str(path)], '--cost-table')


@pytest.mark.parametrize('args, argument', [
    (['--cameras', '0'], '--cameras'),
    (['--cost-table', 'missing.json'], '--cost-table'),
])
def test_subprocess_usage_error_is_one_line_without_traceback(args, argument):
    result = run_subprocess(*args, '--seconds', '0.2')
    assert result.returncode == 2
    assert result.stdout == ''
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f's3dnn-sim: error: argument {argument}: ')


def test_subprocess_malformed_cost_table_exits_2(tmp_path):
    path = tmp_path / 'costs.json'
    path.write_text('cost table: none')
    result = run_subprocess(*TINY, '--cost-table', str(path))
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith('s3dnn-sim: error: argument --cost-table: ')


def test_cost_table_that_is_not_utf8_is_a_usage_error(capsys, tmp_path):
    path = tmp_path / 'costs.json'
    path.write_bytes(b'\x00\xffnot json')
    assert_usage_error(capsys, [*TINY, '--cost-table', str(path)], '--cost-table')


def test_nan_jitter_is_a_usage_error(capsys):
    assert_usage_error(capsys, ['--jitter-ms', 'nan', *TINY], '--jitter-ms')


def test_negative_seed_is_a_usage_error(capsys):
    assert_usage_error(capsys, ['--seed', '-1', *TINY], '--seed')


# ---- camera-count sweeps and plots --------------------------------------------------------------

SWEEP = ['--fps', '120', '--deadline-ms', '4', '--seconds', '0.3', '--gpu', 't4', '--policy',
         's3dnn,streams']


def test_sweep_gives_the_results_of_single_runs_at_each_count(capsys):
    sweep = run_json(capsys, '--sweep-cameras', '2,5', *SWEEP)
    assert sweep['cameras'] == [2, 5] and list(sweep['policies']) == ['s3dnn', 'streams']
    for i, count in enumerate((2, 5)):
        single = run_json(capsys, '--cameras', str(count), *SWEEP)
        for policy in ('s3dnn', 'streams'):
            assert sweep['policies'][policy][i] == single[policy]


def test_sweep_table_has_a_row_per_count_with_miss_and_p99_per_policy(capsys):
    assert sim.main(['--sweep-cameras', '2,3,4', *SWEEP]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == 'cameras at 120 FPS, deadline 4 ms, 0.3 s, T4 (nominal) (estimated)'
    assert lines[1].split() == ['cameras', 's3dnn', 'miss', '%', 's3dnn', 'p99', 'ms', 'streams',
                                'miss', '%', 'streams', 'p99', 'ms']
    assert [line.split()[0] for line in lines[3:]] == ['2', '3', '4']
    assert all(len(line.split()) == 5 for line in lines[3:])


@pytest.mark.parametrize('suffix, magic', [('png', b'\x89PNG\r\n\x1a\n'), ('svg', b'<?xml')])
def test_sweep_plot_is_written(capsys, tmp_path, suffix, magic):
    pytest.importorskip('matplotlib', reason='plots need matplotlib (make test installs it)')
    path = tmp_path / f'sweep.{suffix}'
    assert sim.main(['--sweep-cameras', '2,4', *SWEEP, '--plot', str(path)]) == 0
    assert path.read_bytes().startswith(magic)
    if suffix == 'png':
        import matplotlib.image
        height, width = matplotlib.image.imread(path).shape[:2]
        assert width > height > 200
    else:
        text = path.read_text()
        assert 's3dnn' in text and 'streams' in text and 'cameras' in text


@pytest.mark.parametrize('argv, argument, detail', [
    (['--plot', 'x.png', *TINY], '--plot',
     'needs --sweep-cameras (it plots results against the camera count)'),
    (['--sweep-cameras', '2', '--plot', 'x.gif', *TINY], '--plot',
     "'x.gif' has an unknown format; allowed: .png, .pdf, .svg"),
    (['--sweep-cameras', '2,3', '--fps', '30,15', '--seconds', '0.2'], '--sweep-cameras',
     'the camera count varies, so --fps and --deadline-ms take one value'),
    (['--sweep-cameras', '2,0', *TINY], '--sweep-cameras',
     '0 is not allowed; allowed: an integer >= 1'),
])
def test_sweep_usage_errors(capsys, argv, argument, detail):
    assert assert_usage_error(capsys, argv, argument) == detail


def test_plot_into_a_missing_folder_is_a_usage_error(capsys, tmp_path):
    pytest.importorskip('matplotlib', reason='plots need matplotlib (make test installs it)')
    path = tmp_path / 'missing' / 'sweep.png'
    detail = assert_usage_error(capsys, ['--sweep-cameras', '2', *SWEEP, '--plot', str(path)],
                                '--plot')
    assert detail.startswith(f'cannot write {str(path)!r}')


def test_ctrl_c_during_a_long_simulation_is_one_line_and_exit_130():
    """
    Nothing to clean up and no result to print.

    One line, the shell's status for SIGINT, no traceback.
    """
    import signal
    import subprocess
    import time
    env = repo_env()
    # SIGINT's default action in the program, as under a terminal, even where this test runs with
    # SIGINT ignored (started in the background by a shell without job control)
    with subprocess.Popen([sys.executable, '-m', 's3dnn_ros.tools.sim', '--cameras', '64',
                           '--seconds', '3600'], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
                          ) as process:
        time.sleep(5)  # well into the simulation, past the imports
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 130 and out == ''
    assert err == 's3dnn-sim: stopped by Ctrl-C before the simulation ended; no result\n'


def test_a_long_simulation_reports_its_progress_on_stderr():
    """
    --progress-s: a line per policy about every that many seconds of wall time.

    The simulated seconds grow; stdout holds only the result.
    """
    import subprocess
    env = repo_env()
    result = subprocess.run([sys.executable, '-m', 's3dnn_ros.tools.sim', '--cameras', '48',
                             '--seconds', '20', '--policy', 'streams', '--progress-s', '0.05',
                             '--json'],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)['streams']['released'] > 0
    lines = result.stderr.splitlines()
    assert len(lines) >= 2, result.stderr
    done = []
    for line in lines:
        prefix, _, rest = line.partition(': ')
        assert prefix == 's3dnn-sim' and rest.startswith('streams, 48 cameras: ') \
            and rest.endswith(' of 20 s simulated')
        done.append(float(rest.split(': ')[1].split(' of ')[0]))
    assert done == sorted(done) and 0 <= done[0] and done[-1] <= 20
