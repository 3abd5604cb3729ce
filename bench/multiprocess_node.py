"""
The capacity a deployed perception node reaches through ROS, swept over camera counts.

The node runs in its own process, as ``ros2 launch`` runs it, fed by one camera_sim process per
camera.

    python3 bench/multiprocess_node.py [--cameras 16,32,64] [--fps 30] [--deadline-ms 50]
                                       [--seconds 8] [--width 320] [--height 240] [--qos reliable]
                                       [--warmup-s 3] [--policy s3dnn,streams]
                                       [--engine auto|cuda|reference|timed]
                                       [--gpus K] [--workers-per-gpu K] [--cost-table FILE]
                                       [--out DIR]

First an unreported warm-up point (``--warmup-s``): on the H200 the first 640x480 point after
start-up lost a third of its frames in transport whichever policy ran it, and the same point run
second lost none. Then for each policy and camera count: start the node (parameters in a temporary
params file; its scheduler worker is a third process) and the cameras as separate Python processes
on a private ROS domain, wait until every camera has a detection, then collect every detection for
--seconds in this process, and the node's /diagnostics at both ends of that span.

Per point it reports the keys of the capacity benchmark (``s3dnn-bench --sections capacity``):
``released`` (frames the node received in the span), ``completed`` (detections), ``missed``
(detections whose ``latency_ms``, from the node's callback to the publication, exceeds the
deadline), ``dropped`` (the node's drops in the span), ``lost`` (frames the cameras should have
sent in the span, cameras x fps x seconds, that the node never received), ``miss_ratio`` = (missed
+ dropped + lost) / expected, latency p50/p99, the GPU busy fraction and the scheduler's host busy
time per frame (from the diagnostics; summed over the workers, the GPU busy share over the GPUs),
the mean fused batch, ``e2e_p99_ms``: from the camera's stamp to this process receiving the
detection, and ``node_cpu_busy``: the CPU time of the node's process (its executor and receiver
threads, not its workers) over the span, in cores - near 1 the node's Python, not the scheduler,
is the limit. Prints a table and writes DIR/multiprocess_node-<card>.json (DIR: --out, else $OUT,
else bench/out).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import random
import signal
import subprocess
import sys
import tempfile
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from records import record_header, write_record  # noqa: E402
from s3dnn_ros.engine.base import ENGINE_KINDS  # noqa: E402
from s3dnn_ros.ros.config import default_topic, detections_topic, NODE_NAME  # noqa: E402
from s3dnn_ros.scheduler.policies import POLICIES  # noqa: E402
from s3dnn_ros.tools.bench import file_name  # noqa: E402
from s3dnn_ros.tools.cli import (choices_list, positive_float, positive_int,  # noqa: E402
                                 positive_ints, text_table)
from std_msgs.msg import String  # noqa: E402

#: longest wait for the node to start (engine set-up and calibration) and every camera's first
#: detection
START_TIMEOUT_S = 180.0
#: how long the diagnostics at the end of the span may take to arrive
DIAGNOSTICS_WAIT_S = 3.0


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU time of process ``pid`` so far (Linux /proc)."""
    with open(f'/proc/{pid}/stat', encoding='ascii') as file:
        # the fields after the command name, which is in parentheses and may hold spaces
        fields = file.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def params_file(folder: Path, names: list[str], args, policy: str) -> Path:
    lines = [f'{NODE_NAME}:', '  ros__parameters:', f'    cameras: [{", ".join(names)}]']
    for name in names:
        lines += [f'    {name}:', f'      topic: {default_topic(name)}',
                  f'      deadline_ms: {args.deadline_ms}', f'      fps_hint: {args.fps}']
    lines += [f'    policy: {policy}', f'    engine: {args.engine}', f'    gpus: {args.gpus}',
              f'    workers_per_gpu: {args.workers_per_gpu}',
              '    diagnostics_period_s: 0.5', '    qos:', f'      reliability: {args.qos}',
              '      depth: 5']
    if args.cost_table:
        lines.append(f'    cost_table: {args.cost_table}')
    path = folder / f'{policy}-{len(names)}.yaml'
    path.write_text('\n'.join(lines) + '\n')
    return path


class Listener:
    """This process's node: every detection (with its arrival time) and the latest diagnostics."""

    def __init__(self, context: Context, names: list[str]):
        self.node = rclpy.create_node('multiprocess_listener', context=context)
        self.detections = {name: [] for name in names}
        self.diagnostics: dict[str, dict[str, str]] = {}
        self.diagnostics_at = 0.0
        # scheduler status name -> its values received while collecting
        self.windows: dict[str, list[dict[str, str]]] = {}
        self.collecting = True
        for name in names:
            self.node.create_subscription(String, detections_topic(name),
                                          lambda msg, n=name: self._detection(n, msg), 1000)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._diagnostics, 10)

    def _detection(self, name: str, msg) -> None:
        if self.collecting:
            self.detections[name].append((time.time_ns(), json.loads(msg.data)))

    def _diagnostics(self, array) -> None:
        for status in array.status:
            values = {kv.key: kv.value for kv in status.values}
            self.diagnostics[status.name] = values
            # one 's3dnn: scheduler' status, or one per worker ('s3dnn: scheduler gpu<N>...')
            if status.name.startswith('s3dnn: scheduler') and self.collecting:
                self.windows.setdefault(status.name, []).append(values)
        self.diagnostics_at = time.monotonic()


def run_point(policy: str, count: int, args, folder: Path) -> dict:
    names = [f'cam{i}' for i in range(count)]
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.SystemRandom().randint(1, 101)),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]))
    os.environ['ROS_DOMAIN_ID'] = env['ROS_DOMAIN_ID']  # this process listens on the same domain
    node = subprocess.Popen([sys.executable, '-m', 's3dnn_ros.ros.perception_node', '--ros-args',
                             '--params-file', str(params_file(folder, names, args, policy))],
                            env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    cameras = [subprocess.Popen([sys.executable, '-m', 's3dnn_ros.ros.camera_sim', '--ros-args',
                                 '-p', f'topic:={default_topic(name)}',
                                 '-p', f'fps:={float(args.fps)}',
                                 '-p', f'width:={args.width}', '-p', f'height:={args.height}',
                                 '-p', f'frame_id:={name}', '-p', f'reliability:={args.qos}'],
                                env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for name in names]
    context = Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    listener = Listener(context, names)
    executor.add_node(listener.node)

    def spin_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)

    def camera_totals() -> dict[str, tuple[int, int]]:
        return {name: (int(listener.diagnostics.get(f's3dnn: {name}', {}).get('received', 0)),
                       int(listener.diagnostics.get(f's3dnn: {name}', {}).get('dropped', 0)))
                for name in names}
    try:
        end = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < end and not all(listener.detections.values()):
            if node.poll() is not None:
                raise RuntimeError('the node exited during start-up: '
                                   f'{node.stderr.read()[-2000:]}')
            executor.spin_once(timeout_sec=0.05)
        if not all(listener.detections.values()):
            raise RuntimeError('no detection from '
                               f'{[n for n, d in listener.detections.items() if not d]} after '
                               f'{START_TIMEOUT_S:g} s')
        spin_for(1.0)  # settle
        mark = time.monotonic()
        while listener.diagnostics_at <= mark:  # the totals at the start of the span
            executor.spin_once(timeout_sec=0.05)
        before = camera_totals()
        for collected in listener.detections.values():
            collected.clear()
        listener.windows.clear()
        started, node_cpu = time.monotonic(), cpu_seconds(node.pid)
        spin_for(args.seconds)
        listener.collecting = False
        span = time.monotonic() - started
        node_cpu = cpu_seconds(node.pid) - node_cpu
        mark = time.monotonic()
        deadline = mark + DIAGNOSTICS_WAIT_S
        while listener.diagnostics_at <= mark and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        after = camera_totals()
        schedulers = [values for name, values in sorted(listener.diagnostics.items())
                      if name.startswith('s3dnn: scheduler')]
        scheduler = schedulers[0] if schedulers else {}
        windows = {name: list(values) for name, values in listener.windows.items()}
    finally:
        for process in [*cameras, node]:
            process.send_signal(signal.SIGINT)
        for process in [*cameras, node]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        executor.shutdown()
        listener.node.destroy_node()
        rclpy.try_shutdown(context=context)
    detections = [d for name in names for d in listener.detections[name]]
    latencies = np.array([d['latency_ms'] for _, d in detections] or [0.0])
    e2e = np.array([(arrived - (d['header']['stamp']['sec'] * 10**9
                                + d['header']['stamp']['nanosec'])) / 1e6
                    for arrived, d in detections] or [0.0])
    received = sum(after[n][0] - before[n][0] for n in names)
    dropped = sum(after[n][1] - before[n][1] for n in names)
    expected = round(count * args.fps * span)
    lost = max(0, expected - received)
    missed = sum(d['missed'] for _, d in detections)
    # each worker's mean over its windows, summed over the workers
    busy = sum(np.mean([float(w.get('gpu busy fraction', 0)) for w in worker])
               for worker in windows.values())
    host = sum(np.mean([float(w.get('scheduler host busy fraction', 0)) for w in worker])
               for worker in windows.values())
    batch = [float(values.get('mean batch', 0)) for values in schedulers] or [0.0]
    frames_per_s = received / span if span else 0.0
    return {'cameras': count, 'policy': policy, 'source': 'ros', 'engine': scheduler.get('engine'),
            'device': scheduler.get('device'), 'expected': expected, 'released': received,
            'completed': len(detections), 'missed': int(missed), 'dropped': dropped, 'lost': lost,
            'miss_ratio': round((missed + dropped + lost) / expected, 6) if expected else 0.0,
            'p50_ms': round(float(np.percentile(latencies, 50)), 3),
            'p99_ms': round(float(np.percentile(latencies, 99)), 3),
            'e2e_p99_ms': round(float(np.percentile(e2e, 99)), 3),
            'gpu_busy': round(min(1.0, float(busy) / args.gpus), 4),
            'mean_batch': round(float(np.mean(batch)), 3),
            'host_us_per_frame': (round(float(host) * 1e6 / frames_per_s, 2)
                                  if frames_per_s else None),
            'node_cpu_busy': round(node_cpu / span, 3) if span else 0.0,
            'per_camera': {name: len(listener.detections[name]) for name in names}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n\n')[0])
    parser.add_argument('--cameras', type=positive_ints, default=[8],
                        help='camera counts to sweep (default 8)')
    parser.add_argument('--fps', type=positive_float, default=30.0)
    parser.add_argument('--deadline-ms', type=positive_float, default=50.0)
    parser.add_argument('--seconds', type=positive_float, default=8.0)
    parser.add_argument('--width', type=positive_int, default=640)
    parser.add_argument('--height', type=positive_int, default=480)
    parser.add_argument('--qos', choices=['reliable', 'best_effort'], default='reliable')
    parser.add_argument('--policy', type=choices_list(list(POLICIES)),
                        default=['s3dnn', 'streams'])
    parser.add_argument('--engine', choices=list(ENGINE_KINDS), default='auto',
                        help="the node's engine (timed: no GPU, the times of --cost-table)")
    parser.add_argument('--gpus', type=positive_int, default=1,
                        help="the node's gpus parameter: GPUs 0..K-1, one scheduler worker each")
    parser.add_argument('--workers-per-gpu', type=positive_int, default=1,
                        help="the node's workers_per_gpu parameter (default 1)")
    parser.add_argument('--cost-table',
                        help='cost table the node loads, or writes after calibrating once')
    parser.add_argument('--warmup-s', type=float, default=3.0,
                        help='seconds of an unreported first point (the first policy at the first '
                             'count) before the sweep; 0: none (default 3)')
    parser.add_argument('--out', type=Path)
    args = parser.parse_args()
    # a SIGTERM (from timeout, say) ends the run through the finally clauses, which stop every
    # process started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('multiprocess_node: stopped by SIGTERM'))
    report = {**record_header('multiprocess_node'),
              'width': args.width, 'height': args.height, 'fps': args.fps,
              'deadline_ms': args.deadline_ms, 'qos': args.qos, 'rows': []}
    with tempfile.TemporaryDirectory() as folder:
        # the first point after start-up ran slow on the H200, whichever policy it was
        if args.warmup_s > 0:
            run_point(args.policy[0], args.cameras[0],
                      argparse.Namespace(**{**vars(args), 'seconds': args.warmup_s}), Path(folder))
        for policy in args.policy:
            for count in args.cameras:
                row = run_point(policy, count, args, Path(folder))
                report['rows'].append(row)
                print(f'  {policy:>10} {count:4d} cameras: miss {row["miss_ratio"]:.2%} (missed '
                      f'{row["missed"]}, dropped {row["dropped"]}, lost {row["lost"]}), '
                      f'p99 {row["p99_ms"]:.1f} ms', flush=True)
    report['card'] = report['rows'][0]['device']
    header = ['policy', 'cameras', 'expected', 'received', 'completed', 'missed', 'dropped',
              'lost', 'miss %', 'p50 ms', 'p99 ms', 'e2e p99 ms', 'GPU busy', 'batch',
              'host µs/frame', 'node CPU']
    rows = [[row['policy'], str(row['cameras']), str(row['expected']), str(row['released']),
             str(row['completed']), str(row['missed']), str(row['dropped']), str(row['lost']),
             f'{row["miss_ratio"]:.2%}',
             f'{row["p50_ms"]:.1f}', f'{row["p99_ms"]:.1f}', f'{row["e2e_p99_ms"]:.1f}',
             f'{row["gpu_busy"]:.0%}', f'{row["mean_batch"]:.2f}',
             '-' if row['host_us_per_frame'] is None else f'{row["host_us_per_frame"]:.0f}',
             f'{row["node_cpu_busy"]:.2f}']
            for row in report['rows']]
    print(text_table(f'camera processes at {args.fps:g} FPS ({args.width}x{args.height}, '
                     f'{args.qos}) into the node (own process), deadline {args.deadline_ms:g} ms, '
                     f'{args.seconds:g} s per point, engine on {report["card"]}, {report["date"]}',
                     header, rows))
    write_record(report, file_name(str(report['card']), 'multiprocess_node'), args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
