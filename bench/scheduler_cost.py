"""
Cost of the scheduler itself: µs per S3DNN DEQUEUE decision (and per ENQUEUE).

Measured for 8, 32 and 64 pipelines.

Every pipeline keeps one ready kernel at a random layer, so Q holds one task per pipeline, as under
full load. Each round times one DEQUEUE, then puts the frames it launched back as ready at a new
random layer (timed separately as ENQUEUE). Goal: <= 20 µs per DEQUEUE at 8 pipelines.

    python bench/scheduler_cost.py [--rounds N] [--json FILE]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import statistics
import sys
import time

from s3dnn_ros.engine.costs import estimate
from s3dnn_ros.model.alexnet import alexnet
from s3dnn_ros.scheduler.job import Pipeline
from s3dnn_ros.scheduler.policies import make_policy

PIPELINES = (8, 32, 64)


def cpu_name() -> str:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as info:
            for line in info:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(pipelines: int, rounds: int, policy_name: str = 's3dnn', seed: int = 0) -> dict:
    rng = random.Random(seed)
    costs = estimate(alexnet(), 'h100')
    policy = make_policy(policy_name, costs)
    layers = policy.num_layers
    now = 0

    def ready(frame):
        frame.next_layer = frame.done_layers = rng.randrange(layers)
        policy.enqueue(frame, now)

    for pid in range(pipelines):
        pipeline = Pipeline(pid, f'cam{pid}', 33_000_000)
        frame = pipeline.new_frame(rng.randrange(33_000_000))
        pipeline.current = frame
        ready(frame)
    dequeue_ns, enqueue_ns, group_sizes = [], [], []
    for _ in range(rounds):
        now += 50_000
        start = time.perf_counter_ns()
        group = policy.dequeue(now, [])
        dequeue_ns.append(time.perf_counter_ns() - start)
        group_sizes.append(len(group.launches))
        frames = {frame for launch in group.launches for frame in launch.frames}
        start = time.perf_counter_ns()
        for frame in frames:
            frame.deadline_ns = now + rng.randrange(5_000_000, 40_000_000)
            ready(frame)
        if frames:
            enqueue_ns.append((time.perf_counter_ns() - start) / len(frames))
    return {'pipelines': pipelines, 'rounds': rounds,
            'dequeue_us_median': statistics.median(dequeue_ns) / 1000,
            'dequeue_us_p99': sorted(dequeue_ns)[int(0.99 * len(dequeue_ns))] / 1000,
            'enqueue_us_median': statistics.median(enqueue_ns) / 1000,
            'mean_launches_per_group': statistics.fmean(group_sizes)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--rounds', type=int, default=20000)
    parser.add_argument('--json', default=os.path.join(os.path.dirname(__file__), 'results',
                                                       'scheduler_cost.json'))
    args = parser.parse_args(argv)
    rows = [measure(n, args.rounds) for n in PIPELINES]
    record = {'benchmark': 'scheduler_cost', 'policy': 's3dnn',
              'date': datetime.date.today().isoformat(), 'machine': cpu_name(),
              'python': platform.python_version(), 'results': rows}
    print(f's3dnn DEQUEUE cost, {record["machine"]}, Python {record["python"]}, {record["date"]}')
    print(f'{"pipelines":>9}  {"DEQUEUE µs p50":>14}  {"p99":>7}  {"ENQUEUE µs p50":>14}  '
          f'{"launches/group":>14}')
    for row in rows:
        print(f'{row["pipelines"]:>9}  {row["dequeue_us_median"]:>14.2f}  '
              f'{row["dequeue_us_p99"]:>7.2f}  {row["enqueue_us_median"]:>14.2f}  '
              f'{row["mean_launches_per_group"]:>14.2f}')
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, 'w', encoding='utf-8') as file:
        json.dump(record, file, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
