"""
Where the host time of one S3DNN round goes on a GPU.

N camera frames submitted at once, run to their results by the dispatcher with the CUDA engine,
profiled with cProfile over the timed part only (the pipelines' first-frame allocations happen
before it, as in s3dnn-bench).

    python3 bench/host_profile.py [--frames 4,16,64] [--rounds 10] [--staging-threads T]
                                  [--out DIR]

Prints, per round size, the wall time of a round and the host time spent in each part of the
dispatch path (cumulative, so nested parts overlap: staging and kernel launches are inside the
backend's launch). The GPU's own busy time comes from the engine's events. Writes
DIR/host_profile-<card>.json (DIR: --out, else $OUT, else bench/out).

cProfile sees Python functions only: where the scheduler's modules are compiled (mypyc,
``s3dnn_ros/native.py``) their parts (the backend's launch, polling, the policy) are reported as
None, and the table says so; the engine's parts are profiled either way. For every part, run it
on an interpreted build (``S3DNN_COMPILE=0 make build``).
"""
from __future__ import annotations

import argparse
import cProfile
import os
from pathlib import Path
import pstats
import statistics
import sys

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from records import record_header, write_record  # noqa: E402
from s3dnn_ros import native  # noqa: E402
from s3dnn_ros.engine.cuda import CudaEngine, engine as cuda_engine  # noqa: E402
from s3dnn_ros.model.alexnet import alexnet  # noqa: E402
from s3dnn_ros.model.weights import init_weights  # noqa: E402
from s3dnn_ros.tools.bench import Bench, file_name  # noqa: E402
from s3dnn_ros.tools.cli import positive_int, positive_ints, text_table  # noqa: E402

#: (label, ((module file suffix, function name), ...)) of the parts reported, outermost first;
#: a part is the sum of its functions (a segment's kernels go out as one CUDA graph launch, the
#: others one by one)
PARTS = [
    ('backend launch (staging + kernel launches)', (('scheduler/dispatcher.py', 'launch'),)),
    ('  image staging into pinned memory', (('engine/cuda/engine.py', 'set_inputs'),)),
    ('  engine launch (events, copies, kernels)', (('engine/cuda/engine.py', '_issue'),)),
    ('    kernel launches (arguments, cuLaunchKernel or a graph)',
     (('engine/cuda/engine.py', '_enqueue'), ('engine/cuda/graphs.py', 'launch'))),
    ('completion polling', (('scheduler/dispatcher.py', 'poll'),)),
    ('policy dequeue', (('scheduler/policies.py', 'dequeue'),)),
    ('policy enqueue', (('scheduler/policies.py', 'enqueue_all'),)),
]
#: the modules whose functions make the parts, as :data:`s3dnn_ros.native.COMPILED` names them
PART_MODULES = {'scheduler/dispatcher.py': 's3dnn_ros.scheduler.dispatcher',
                'scheduler/policies.py': 's3dnn_ros.scheduler.policies'}


def profile_round(bench: Bench, images, frames: int) -> tuple[float, float, pstats.Stats]:
    """(wall ms, GPU busy ms, profile) of one round of ``frames`` frames from as many cameras."""
    profiler = cProfile.Profile()
    wall_ms, busy_ms = bench.s3dnn_round(bench.engine, images, frames, timed=profiler)
    return wall_ms, busy_ms, pstats.Stats(profiler)


def part_ms(stats: pstats.Stats, functions: tuple[tuple[str, str], ...]) -> float:
    """Cumulative ms in the functions (name, defined in a file ending with suffix) of a part."""
    return sum(entry[3] for (path, _, function), entry in stats.stats.items()
               for suffix, name in functions
               if function == name and path.replace(os.sep, '/').endswith(suffix)) * 1e3


def compiled_parts() -> set[str]:
    """Return the labels of the parts made of compiled modules' functions (unseen by cProfile)."""
    compiled = {name for name in native.COMPILED if native.extension_path(name)}
    return {label for label, functions in PARTS
            if any(PART_MODULES.get(suffix) in compiled for suffix, _ in functions)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n\n')[0])
    parser.add_argument('--frames', type=positive_ints, default=[4, 16, 64])
    parser.add_argument('--rounds', type=positive_int, default=10)
    parser.add_argument('--max-inflight', type=positive_int, default=2)
    parser.add_argument('--staging-threads', type=positive_int,
                        default=cuda_engine.STAGING_THREADS,
                        help="threads copying a fused launch's images (default "
                             f'{cuda_engine.STAGING_THREADS})')
    parser.add_argument('--out', type=Path)
    args = parser.parse_args()
    cuda_engine.STAGING_THREADS = args.staging_threads
    network = alexnet()
    weights = init_weights(network, seed=0)
    engine = CudaEngine(network, weights, streams=4)
    bench = Bench(engine, network, weights, args.rounds, args.max_inflight)
    images = bench.images[:4]
    unseen = compiled_parts()
    report = {**record_header('host_profile', card=engine.device_name),
              'max_inflight': args.max_inflight, 'staging_threads': args.staging_threads,
              'scheduler': native.build(), 'rounds': []}
    try:
        for frames in args.frames:
            profile_round(bench, images, frames)  # warm-up
            walls, busies, merged = [], [], None
            for _ in range(args.rounds):
                wall, busy, stats = profile_round(bench, images, frames)
                walls.append(wall)
                busies.append(busy)
                merged = stats if merged is None else merged.add(stats)
            parts = {label: (None if label in unseen
                             else round(part_ms(merged, functions) / args.rounds, 3))
                     for label, functions in PARTS}
            report['rounds'].append({'frames': frames,
                                     'wall_ms': round(statistics.median(walls), 3),
                                     'gpu_busy_ms': round(statistics.median(busies), 3),
                                     'host_ms': parts})
    finally:
        engine.close()
    header = ['part (ms per round)'] + [f'{r["frames"]} frames' for r in report['rounds']]
    rows = [['wall (median)'] + [f'{r["wall_ms"]:.2f}' for r in report['rounds']],
            ['GPU busy (median)'] + [f'{r["gpu_busy_ms"]:.2f}' for r in report['rounds']]]
    rows += [[label] + [('compiled' if r['host_ms'][label] is None
                         else f'{r["host_ms"][label]:.2f}') for r in report['rounds']]
             for label, _ in PARTS]
    print(text_table(f'host time of one S3DNN round on {report["card"]}, {report["date"]}, '
                     f'{args.staging_threads} staging thread(s) (mean of {args.rounds} profiled '
                     'rounds; wall and busy: median, profiler on)', header, rows))
    if unseen:
        print(f'scheduler {report["scheduler"]}: the parts marked compiled run as C, which '
              'cProfile does not see; an interpreted build (S3DNN_COMPILE=0 make build) shows '
              'them')
    write_record(report, file_name(report['card'], f'host_profile-staging{args.staging_threads}'),
                 args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
