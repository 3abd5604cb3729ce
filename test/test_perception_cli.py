"""
s3dnn-perception: the node and simulated cameras in one process.

Then a per-camera summary table.
"""
import signal
import subprocess
import sys
import time

import process_helpers
from process_helpers import repo_env, REPO_ROOT
import pytest

pytest.importorskip('rclpy', reason='needs the ROS 2 rclpy wheels (make test installs them)')


def run(*args):
    env = repo_env()
    return process_helpers.run([sys.executable, '-m', 's3dnn_ros.tools.perception', *args],
                               timeout=120, cwd=REPO_ROOT, env=env)


def test_runs_simulated_cameras_and_prints_the_summary():
    result = run('--cameras', '2', '--seconds', '4', '--engine', 'reference', '--width', '64',
                 '--height', '48', '--fps', '10', '--deadline-ms', '2000')
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == '2 cameras, policy s3dnn, engine reference on cpu, 4 s'
    assert lines[1].split() == ['camera', 'received', 'completed', 'missed', 'dropped', 'rejected',
                                'p50', 'ms', 'p99', 'ms']
    rows = {line.split()[0]: [float(x) for x in line.split()[1:]] for line in lines[3:]}
    assert set(rows) == {'cam0', 'cam1'}
    for received, completed, missed, dropped, rejected, p50, p99 in rows.values():
        assert received >= 20 and completed > 0 and rejected == 0 and 0 < p50 <= p99
        assert completed + dropped <= received
    assert 'Traceback' not in result.stderr


def test_bad_override_is_one_error_line():
    result = run('--policy', 'lottery')
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith('s3dnn-perception: error: argument --policy')


def test_sigint_ends_the_run_early_with_the_summary():
    env = repo_env()
    started = time.monotonic()
    returncode, output = process_helpers.interrupt_after(
        [sys.executable, '-m', 's3dnn_ros.tools.perception', '--cameras', '1', '--seconds', '600',
         '--engine', 'reference', '--width', '64', '--height', '48'], 'policy s3dnn',
        [signal.SIGINT], cwd=REPO_ROOT, env=env)
    assert returncode == 0, output
    assert time.monotonic() - started < 120
    assert '1 cameras, policy s3dnn, engine reference on cpu, stopped after ' in output
    assert 'cam0' in output.split('stopped after ')[1]  # the table follows the title
    assert 'Traceback' not in output


@pytest.mark.parametrize('argv, detail', [
    (['--width', '4'], 'argument --width: 4 is not allowed; allowed: an integer >= 8 and <= 8192'),
    (['--height', '10000'],
     'argument --height: 10000 is not allowed; allowed: an integer >= 8 and <= 8192'),
    (['--fps', '2000'],
     'argument --fps: 2000 is not allowed; allowed: a finite number >= 0.01 and <= 1000'),
    (['--deadline-ms', '1e-7'],
     'argument --deadline-ms: 1e-7 is not allowed; allowed: a finite number >= 0.001'),
])
def test_out_of_range_arguments_exit_2_with_one_line_before_anything_starts(capsys, argv, detail):
    from s3dnn_ros.tools import perception
    with pytest.raises(SystemExit) as exit_info:
        perception.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith(f's3dnn-perception: error: {detail}')


def test_replay_rate_out_of_range_names_the_argument(capsys):
    from s3dnn_ros.tools import replay
    with pytest.raises(SystemExit) as exit_info:
        replay.main(['some.bag', '--rate', '1e-300'])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ('s3dnn-replay: error: argument --rate: '
                                       '1e-300 is not allowed; allowed: '
                                       'a finite number >= 0.001 and <= 1000\n')


def test_stop_signals_arriving_all_through_shutdown_still_exit_0():
    """
    Ctrl-C held down: SIGINT every 10 ms from the first until the process has exited.

    The cleanup runs once, and a signal landing while Python finalizes is ignored rather than
    killing the process.
    """
    env = repo_env(PYTHONUNBUFFERED='1')
    for _ in range(3):
        with process_helpers.popen(
                [sys.executable, '-m', 's3dnn_ros.tools.perception', '--cameras', '1', '--seconds',
                 '600', '--engine', 'reference', '--width', '64', '--height', '48'],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT,
                env=env) as process:
            for line in process.stdout:
                if 'policy s3dnn' in line:
                    break
            deadline = time.monotonic() + 60
            while process.poll() is None and time.monotonic() < deadline:
                process.send_signal(signal.SIGINT)
                time.sleep(0.01)
            output = process.stdout.read()
            assert process.wait(timeout=5) == 0, output
        assert 'stopped after' in output and 'Traceback' not in output
