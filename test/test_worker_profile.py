"""
bench/worker_profile.py with its timed stand-in engine.

A WorkerCore under open-loop cameras in one process, every frame resolved and the host time it
measured reported.
"""
import json
import sys

from process_helpers import repo_env, REPO_ROOT, run


def test_worker_loop_profile_reports_frames_and_host_costs(tmp_path):
    command = [sys.executable, 'bench/worker_profile.py', '--engine', 'timed', '--cameras', '8',
               '--seconds', '1', '--max-batch', '4', '--call-times', '--out', str(tmp_path)]
    result = run(command, timeout=120, cwd=REPO_ROOT,
                 env=repo_env())
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / 'worker_profile-timed-nvidia-h200.json').read_text())
    assert report['engine'] == 'timed' and report['cameras'] == 8 and report['max_batch'] == 4
    assert 8 * 30 - 8 <= report['released'] <= 8 * 30 + 8  # one second of 8 cameras at 30 FPS
    # frames of the measured second finish in it, but for those still in flight at its end
    assert report['released'] - 8 <= report['completed'] <= report['released'] + 8
    assert 1 <= report['mean_batch'] <= 4
    assert 0 <= report['staged_frames'] <= report['released']
    assert report['host_us_per_frame'] > 0 and 0 < report['host_busy'] < 1
    assert set(report['host_costs']) == {'frame_us', 'decision_us', 'launch_us', 'upload_us',
                                         'completion_us', 'launch_layers'}
    assert report['host_costs']['launch_layers'] >= 1
    assert report['ring_open_ms'] > 0
    # every launch was decided by a DEQUEUE; those that launched nothing are metered apart
    assert report['dequeues_per_frame'] > 0 and report['hold_us_per_frame'] >= 0
    # from a frame's due time to its result, over the frames completed in the measured second
    assert 0 < report['p50_ms'] <= report['p99_ms']
    # --call-times: every metered kind of work and the launch calls, call by call
    calls = report['call_times']
    assert {'arrive', 'decide', 'retire', 'output', 'launch call'} <= set(calls['kinds'])
    for kind in calls['kinds'].values():
        assert kind['calls'] > 0
        assert 0 < kind['p50_us'] <= kind['p90_us'] <= kind['p99_us'] <= kind['max_us']
        assert 0 <= kind['slowest_1pct_share'] < 1
    # a metered decision issued at least one launch, each launch one launch call
    assert calls['kinds']['launch call']['calls'] >= calls['kinds']['decide']['calls']
    assert calls['gc']['pauses'] >= 0 and calls['gc']['max_ms'] <= calls['gc']['total_ms'] + 1e-9
    assert calls['graphs_at_start'] is None and calls['graphs_at_end'] is None  # no CUDA engine


def test_worker_loop_profile_hands_frames_over_at_the_read_pace_asked(tmp_path):
    reports = {}
    for every_us in ('0', '20000'):
        out = tmp_path / every_us
        result = run([sys.executable, 'bench/worker_profile.py', '--engine', 'timed',
                      '--cameras', '8', '--seconds', '1', '--read-every-us', every_us,
                      '--out', str(out)], timeout=120, cwd=REPO_ROOT, env=repo_env())
        assert result.returncode == 0, result.stderr[-3000:]
        reports[every_us] = json.loads((out / 'worker_profile-timed-nvidia-h200.json').read_text())
    # 240 frames a second: every turn brings about one; a read every 20 ms about five
    assert 1 <= reports['0']['frames_per_read'] < 1.5
    assert 3.5 <= reports['20000']['frames_per_read'] <= 6.5
    assert reports['20000']['read_every_us'] == 20000
    assert reports['20000']['released'] - 8 <= reports['20000']['completed']
