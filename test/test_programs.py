"""
The console entry points (s3dnn_ros.programs) stop cleanly on a signal during their imports.

A stop signal that lands while a program is still importing ends it cleanly - a ROS program with
its usual clean stop (0), a tool with one line and the shell's status - never with a traceback or
death by signal. The signal is sent the moment the entry point has installed its handler (SIGTERM
appears among the process's caught signals), while the program's own imports, which take a few
hundred milliseconds, have only begun.
"""
from pathlib import Path
import signal
import subprocess
import sys
import time

import process_helpers
from process_helpers import repo_env, REPO_ROOT
import pytest


def caught_signals(pid: int) -> int:
    """Return the process's mask of signals with a handler (SigCgt in /proc/<pid>/status)."""
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('SigCgt:'):
            return int(line.split()[1], 16)
    raise AssertionError(f'no SigCgt line for process {pid}')


def stop_while_importing(program: str, args: list[str], signum: int,
                         not_loaded: str) -> tuple[int, str]:
    """
    Run entry point ``program`` as its console script does and stop it while it imports.

    Send ``signum`` as soon as it catches SIGTERM, checking that the library file ``not_loaded``
    (one its program module imports) is not mapped yet, so the handler is the entry point's.
    Returns the exit status and everything printed.
    """
    code = f'import sys; from s3dnn_ros.programs import {program}; sys.exit({program}())'
    env = repo_env(PYTHONUNBUFFERED='1', PYTHONFAULTHANDLER='1')
    begin = time.monotonic()
    with process_helpers.popen([sys.executable, '-c', code, *args], cwd=REPO_ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True) as process:
        deadline = begin + 30
        while not caught_signals(process.pid) & 1 << (signal.SIGTERM - 1):
            assert process.poll() is None and time.monotonic() < deadline, \
                'the entry point never caught SIGTERM'
            time.sleep(0.001)
        maps = Path(f'/proc/{process.pid}/maps').read_text()
        process.send_signal(signum)
        output, _ = process.communicate(timeout=60)
    assert not_loaded not in maps, \
        f'{not_loaded} was loaded before the signal: the program had imported it'
    return process.returncode, output


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_perception_node_stopped_while_importing_stops_cleanly(signum):
    status, output = stop_while_importing(
        'perception_node', ['--ros-args', '-p', 'engine:=reference', '-p', 'cameras:=[cam0]'],
        signum, 'rclpy')
    assert status == 0, output
    assert 'Traceback' not in output and 'Fatal Python error' not in output


def test_camera_sim_stopped_while_importing_stops_cleanly():
    status, output = stop_while_importing('camera_sim',
                                          ['--ros-args', '-p', 'width:=64', '-p', 'height:=48'],
                                          signal.SIGTERM, 'rclpy')
    assert status == 0, output
    assert 'Traceback' not in output


@pytest.mark.parametrize('signum, status', [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=['SIGINT', 'SIGTERM'])
def test_a_tool_stopped_while_importing_says_so_in_one_line(signum, status):
    got, output = stop_while_importing('sim', ['--cameras', '4', '--seconds', '1'], signum,
                                       'numpy')
    assert got == status
    assert output == f's3dnn-sim: stopped by {signal.Signals(signum).name} before it started\n'


def test_make_bag_stopped_while_writing_leaves_no_partial_bag(tmp_path):
    pytest.importorskip('rosbags')
    bag = tmp_path / 'bag'
    env = repo_env(PYTHONUNBUFFERED='1')
    code = 'import sys; from s3dnn_ros.programs import make_bag; sys.exit(make_bag())'
    with process_helpers.popen([sys.executable, '-c', code, str(bag), '--cameras', '8',
                                '--seconds', '600'], cwd=REPO_ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) as process:
        deadline = time.monotonic() + 30
        while not any(bag.glob('*.mcap')):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.01)
        time.sleep(0.3)  # frames are being written
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 130 and out == ''
    assert err == f's3dnn-make-bag: stopped by Ctrl-C; the partial bag {str(bag)!r} was removed\n'
    assert not bag.exists()
