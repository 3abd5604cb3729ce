"""The perception node in its own process, as ``ros2 launch`` runs it, fed by one camera_sim process per
camera: the latency a deployed node achieves when it does not share its interpreter with the cameras.

    python3 bench/multiprocess_node.py [--cameras 8] [--fps 30] [--deadline-ms 50] [--seconds 15]
                                       [--policy s3dnn,streams,sequential] [--engine auto] [--out DIR]

For each policy: start the node (parameters written to a temporary params file) and the cameras as
separate Python processes on a private ROS domain, wait until every camera has a detection, then collect
every detection for --seconds in this process. Reports per camera the detections, how many missed their
deadline, and the node's own latency (``latency_ms``: from its callback receiving the image to publishing
the detection) p50/p99/max, plus the node's totals for the whole run from its last /diagnostics
(received, dropped; they include the start-up). Prints a table and
writes DIR/multiprocess_node-<card>.json (DIR: --out, else $OUT, else bench/out).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from s3dnn_ros.ros.config import NODE_NAME, default_topic, detections_topic  # noqa: E402
from s3dnn_ros.scheduler.policies import POLICIES  # noqa: E402
from s3dnn_ros.tools.cli import choices_list, positive_float, positive_int, text_table  # noqa: E402

#: longest wait for the node to start (engine set-up and calibration) and every camera's first detection
START_TIMEOUT_S = 120.0


def params_file(folder: Path, names: list[str], args, policy: str) -> Path:
    lines = [f'{NODE_NAME}:', '  ros__parameters:', f'    cameras: [{", ".join(names)}]']
    for name in names:
        lines += [f'    {name}:', f'      topic: {default_topic(name)}', f'      deadline_ms: {args.deadline_ms}',
                  f'      fps_hint: {args.fps}']
    lines += [f'    policy: {policy}', f'    engine: {args.engine}']
    path = folder / f'{policy}.yaml'
    path.write_text('\n'.join(lines) + '\n')
    return path


def run_policy(policy: str, args, folder: Path) -> dict:
    names = [f'cam{i}' for i in range(args.cameras)]
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.SystemRandom().randint(1, 101)),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]))
    os.environ['ROS_DOMAIN_ID'] = env['ROS_DOMAIN_ID']  # this process listens on the same domain
    node = subprocess.Popen([sys.executable, '-m', 's3dnn_ros.ros.perception_node', '--ros-args', '--params-file',
                             str(params_file(folder, names, args, policy))], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    cameras = [subprocess.Popen([sys.executable, '-m', 's3dnn_ros.ros.camera_sim', '--ros-args',
                                 '-p', f'topic:={default_topic(name)}', '-p', f'fps:={float(args.fps)}',
                                 '-p', f'width:={args.width}', '-p', f'height:={args.height}',
                                 '-p', f'frame_id:={name}'], env=env, cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for name in names]
    context = Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    listener = rclpy.create_node('multiprocess_listener', context=context)
    executor.add_node(listener)
    detections = {name: [] for name in names}
    diagnostics = {}
    collecting = True

    def on_detection(name, msg):
        if collecting:
            detections[name].append(json.loads(msg.data))
    for name in names:
        listener.create_subscription(String, detections_topic(name), lambda msg, n=name: on_detection(n, msg), 1000)

    def on_diagnostics(array):
        for status in array.status:
            diagnostics[status.name] = {kv.key: kv.value for kv in status.values}
    listener.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    try:
        end = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < end and not all(detections.values()):
            if node.poll() is not None:
                raise RuntimeError(f'the node exited during start-up: {node.stderr.read()[-2000:]}')
            executor.spin_once(timeout_sec=0.05)
        if not all(detections.values()):
            raise RuntimeError(f'no detection from {[n for n, d in detections.items() if not d]} after '
                               f'{START_TIMEOUT_S:g} s')
        for collected in detections.values():
            collected.clear()
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        collecting = False
        end = time.monotonic() + 1.5  # one more diagnostics period
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
    finally:
        for process in [*cameras, node]:
            process.send_signal(signal.SIGINT)
        for process in [*cameras, node]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        executor.shutdown()
        listener.destroy_node()
        rclpy.try_shutdown(context=context)
    rows = []
    for name in names:
        latencies = np.array([d['latency_ms'] for d in detections[name]])
        totals = diagnostics.get(f's3dnn: {name}', {})
        rows.append({'camera': name, 'detections': len(latencies),
                     'missed': int(sum(d['missed'] for d in detections[name])),
                     'node_received': int(totals.get('received', 0)), 'node_dropped': int(totals.get('dropped', 0)),
                     'p50_ms': float(np.percentile(latencies, 50)) if len(latencies) else None,
                     'p99_ms': float(np.percentile(latencies, 99)) if len(latencies) else None,
                     'max_ms': float(latencies.max()) if len(latencies) else None})
    scheduler = diagnostics.get('s3dnn: scheduler', {})
    return {'policy': policy, 'engine': scheduler.get('engine'), 'device': scheduler.get('device'),
            'mean_batch': scheduler.get('mean batch'), 'cameras': rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--cameras', type=positive_int, default=8)
    parser.add_argument('--fps', type=positive_float, default=30.0)
    parser.add_argument('--deadline-ms', type=positive_float, default=50.0)
    parser.add_argument('--seconds', type=positive_float, default=15.0)
    parser.add_argument('--width', type=positive_int, default=640)
    parser.add_argument('--height', type=positive_int, default=480)
    parser.add_argument('--policy', type=choices_list(list(POLICIES)), default=['s3dnn', 'streams', 'sequential'])
    parser.add_argument('--engine', choices=['auto', 'cuda', 'reference'], default='auto')
    parser.add_argument('--out', type=Path)
    args = parser.parse_args()
    report = {'benchmark': 'multiprocess_node', 'date': datetime.date.today().isoformat(),
              'command': 'python3 bench/multiprocess_node.py ' + ' '.join(sys.argv[1:]), 'runs': []}
    with tempfile.TemporaryDirectory() as folder:
        for policy in args.policy:
            report['runs'].append(run_policy(policy, args, Path(folder)))
    report['card'] = report['runs'][0]['device']
    header = ['policy', 'camera', 'detections', 'missed', 'p50 ms', 'p99 ms', 'max ms', 'node received',
              'node dropped']
    rows = [[run['policy'], row['camera'], str(row['detections']), str(row['missed'])]
            + [f'{row[key]:.1f}' if row[key] is not None else '-' for key in ('p50_ms', 'p99_ms', 'max_ms')]
            + [str(row['node_received']), str(row['node_dropped'])]
            for run in report['runs'] for row in run['cameras']]
    print(text_table(f'{args.cameras} cameras (one process each) at {args.fps:g} FPS into the node (own process), '
                     f'deadline {args.deadline_ms:g} ms, {args.seconds:g} s, engine on {report["card"]}, '
                     f'{report["date"]}', header, rows))
    out = args.out or Path(os.environ.get('OUT') or REPO / 'bench' / 'out')
    out.mkdir(parents=True, exist_ok=True)
    card = ''.join(c if c.isalnum() else '-' for c in str(report['card'])).strip('-').lower()
    path = out / f'multiprocess_node-{card}.json'
    path.write_text(json.dumps(report, indent=1))
    print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
