"""
s3dnn-sim: compare scheduling policies on the discrete-event GPU simulator.

Example: ``s3dnn-sim --cameras 24 --fps 30 --deadline-ms 50 --seconds 5 --gpu t4``; with
``--sweep-cameras 8,16,24,32 --plot sweep.png`` every policy runs at each camera count and the miss
ratio and p99 latency are plotted against the count.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from typing import Callable

from .cli import (bounded_float, bounded_int, choices_list, deadline_list, fps_list,
                  non_negative_float, non_negative_int, Parser, per_camera, positive_int,
                  positive_ints, text_table)
from ..engine.costs import CostTable, CostTableError, estimate, GPUS, NOMINAL_HOST
from ..model.alexnet import alexnet
from ..scheduler.policies import DEFAULT_MAX_BATCH, POLICIES
from ..scheduler.simulator import Camera, DEFAULT_JITTER_MS, simulate_gpus

PLOT_FORMATS = ('.png', '.pdf', '.svg')

COLUMNS = [('released', 'released', '{:d}'), ('completed', 'completed', '{:d}'),
           ('missed', 'missed', '{:d}'), ('dropped', 'dropped', '{:d}'),
           ('miss_ratio', 'miss %', '{:.2%}'), ('p50_ms', 'p50 ms', '{:.2f}'),
           ('p99_ms', 'p99 ms', '{:.2f}'), ('throughput_fps', 'frames/s', '{:.1f}'),
           ('gpu_busy', 'GPU busy', '{:.1%}'), ('mean_batch', 'mean batch', '{:.2f}')]


def build_parser() -> Parser:
    parser = Parser(prog='s3dnn-sim',
                    description='Simulate cameras feeding AlexNet through each scheduling policy '
                                'on a modelled GPU and compare deadline misses, '
                                'latency and throughput.')
    parser.add_argument('--cameras', type=positive_int, default=8,
                        help='number of cameras (default 8)')
    parser.add_argument('--fps', type=fps_list, default=[30.0],
                        help='frames per second, one value or one per camera (default 30)')
    parser.add_argument('--deadline-ms', type=deadline_list, default=[33.0],
                        help='relative deadline in ms, one value or one per camera (default 33)')
    parser.add_argument('--seconds', type=bounded_float(0.001, 3600.0), default=5.0,
                        help='simulated seconds of arrivals, up to 3600 (default 5)')
    parser.add_argument('--policy', type=choices_list(list(POLICIES)), default=list(POLICIES),
                        help=f'comma list of policies (default all: {",".join(POLICIES)})')
    parser.add_argument('--gpus', type=bounded_int(1, 64), default=1,
                        help='GPUs, each with its own scheduler; cameras placed on them by frame '
                             'rate as the node places them (default 1)')
    parser.add_argument('--workers-per-gpu', type=bounded_int(1, 8), default=1,
                        help='schedulers (host threads) sharing each GPU, its cameras split over '
                             'them as the node splits them (default 1)')
    parser.add_argument('--gpu', choices=list(GPUS), default='h100',
                        help='nominal GPU of the estimated cost table')
    parser.add_argument('--cost-table', metavar='FILE',
                        help='measured cost table JSON (overrides --gpu)')
    parser.add_argument('--firm', action='store_true',
                        help='drop frames that can no longer meet their deadline')
    parser.add_argument('--queue-depth', type=positive_int, default=1,
                        help='frames waiting per camera (default 1)')
    parser.add_argument('--max-batch', type=positive_int, default=DEFAULT_MAX_BATCH,
                        help=f'largest fused batch (default {DEFAULT_MAX_BATCH})')
    parser.add_argument('--launch-overhead-us', type=bounded_float(0.0, 1_000_000.0),
                        help='host time per kernel launch (default: '
                             "the cost table's measured host costs, "
                             f'else {NOMINAL_HOST.launch_us:g} µs per launch and nothing else)')
    parser.add_argument('--jitter-ms', type=non_negative_float, default=DEFAULT_JITTER_MS,
                        help='camera jitter, uniform +-')
    parser.add_argument('--host-stall-ms', type=non_negative_float, default=0.0,
                        help='each scheduler host thread stops once for this long (default 0: '
                             'never), as in a collector pause')
    parser.add_argument('--host-stall-at-s', type=non_negative_float, default=1.0,
                        help='when the host stall begins, simulated seconds (default 1)')
    parser.add_argument('--seed', type=non_negative_int, default=0,
                        help='random seed of phases and jitter (default 0)')
    parser.add_argument('--sweep-cameras', type=positive_ints, metavar='N,N,...',
                        help='run every policy at each of these '
                             'camera counts (replaces --cameras)')
    parser.add_argument('--plot', metavar='FILE',
                        help='with --sweep-cameras: draw miss ratio and p99 latency '
                             f'against the camera count into FILE ({", ".join(PLOT_FORMATS)})')
    parser.add_argument('--progress-s', type=non_negative_float, default=10.0,
                        help='print how far each simulation got to stderr every this many seconds '
                             'of wall time (default 10; 0: never)')
    parser.add_argument('--json', action='store_true',
                        help='print one JSON object instead of tables')
    return parser


def format_table(results: dict, title: str) -> str:
    header = ['policy'] + [label for _, label, _ in COLUMNS]
    rows = [[policy] + [fmt.format(result[key]) for key, _, fmt in COLUMNS]
            for policy, result in results.items()]
    return text_table(title, header, rows)


def format_sweep(counts: list[int], sweep: dict, title: str) -> str:
    header = ['cameras'] + [f'{policy} {label}' for policy in sweep
                            for label in ('miss %', 'p99 ms')]
    rows = [[str(count)] + [cell for results in sweep.values()
                            for cell in (f'{results[i]["miss_ratio"]:.2%}',
                                         f'{results[i]["p99_ms"]:.2f}')]
            for i, count in enumerate(counts)]
    return text_table(title, header, rows)


def plot_sweep(counts: list[int], sweep: dict, deadline_ms: float, title: str, path: str) -> None:
    """Miss ratio and p99 latency against the number of cameras, one line per policy."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, (misses, latency) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for policy, results in sweep.items():
        misses.plot(counts, [100 * result['miss_ratio'] for result in results], marker='o',
                    label=policy)
        latency.plot(counts, [result['p99_ms'] for result in results], marker='o', label=policy)
    latency.axhline(deadline_ms, linestyle='--', color='grey', label='deadline')
    misses.set(xlabel='cameras', ylabel='missed + dropped frames (%)', ylim=(-2, 102))
    latency.set(xlabel='cameras', ylabel='p99 latency of completed frames (ms)')
    misses.legend()
    latency.legend()
    figure.suptitle(title)
    try:
        figure.savefig(path, dpi=110)
    finally:
        plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    try:
        return simulate_cli(argv)
    except KeyboardInterrupt:  # nothing to clean up; no result to print
        print('s3dnn-sim: stopped by Ctrl-C before the simulation ended; no result',
              file=sys.stderr)
        return 130


def simulate_cli(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.plot is not None:
        if not args.sweep_cameras:
            parser.error('argument --plot: needs --sweep-cameras '
                         '(it plots results against the camera count)')
        if not args.plot.lower().endswith(PLOT_FORMATS):
            parser.error(f'argument --plot: {args.plot!r} has an unknown format; allowed: '
                         f'{", ".join(PLOT_FORMATS)}')
        if importlib.util.find_spec('matplotlib') is None:
            parser.error('argument --plot: matplotlib is not installed; install it with: '
                         'pip install matplotlib')
    if args.sweep_cameras and (len(args.fps) > 1 or len(args.deadline_ms) > 1):
        parser.error('argument --sweep-cameras: the camera count varies, '
                     'so --fps and --deadline-ms take one value')
    counts = args.sweep_cameras or [args.cameras]
    fps = per_camera(parser, '--fps', args.fps, max(counts))
    deadlines = per_camera(parser, '--deadline-ms', args.deadline_ms, max(counts))
    network = alexnet()
    try:
        costs = (CostTable.load(args.cost_table, network) if args.cost_table
                 else estimate(network, args.gpu))
    except CostTableError as error:
        parser.error(f'argument --cost-table: {error}')

    host = costs.host or NOMINAL_HOST
    if args.launch_overhead_us is not None:
        host = dataclasses.replace(host, launch_us=args.launch_overhead_us)

    def progress(count: int, policy: str) -> Callable[[int, float], None] | None:
        if not args.progress_s:
            return None
        on = ' on gpu{}' if args.gpus > 1 else ''
        return lambda gpu, done_s: print(f's3dnn-sim: {policy}, {count} cameras{on.format(gpu)}: '
                                         f'{done_s:.1f} of {args.seconds:g} s simulated',
                                         file=sys.stderr, flush=True)

    def run(count: int) -> dict:
        cameras = [Camera(f'cam{i}', fps[i], deadlines[i], args.queue_depth) for i in range(count)]
        return {policy: simulate_gpus(cameras, policy, costs, args.seconds, args.gpus,
                                      workers_per_gpu=args.workers_per_gpu,
                                      seed=args.seed, progress=progress(count, policy),
                                      firm=args.firm, host=host, jitter_ms=args.jitter_ms,
                                      host_stall=((args.host_stall_at_s, args.host_stall_ms)
                                                  if args.host_stall_ms else None),
                                      max_batch=args.max_batch,
                                      progress_every_s=args.progress_s)
                for policy in args.policy}

    fps_text = ','.join(f'{f:g}' for f in sorted(set(fps)))
    deadline_text = ','.join(f'{d:g}' for d in sorted(set(deadlines)))
    gpus = f'{args.gpus} x ' if args.gpus > 1 else ''
    if args.workers_per_gpu > 1:
        gpus += f'{args.workers_per_gpu} workers on each '
    setting = (f'at {fps_text} FPS, deadline {deadline_text} ms, {args.seconds:g} s, '
               f'{gpus}{costs.gpu} ({costs.source}){", firm" if args.firm else ""}')
    if not args.sweep_cameras:
        results = run(args.cameras)
        if args.json:
            print(json.dumps(results))
        else:
            print(format_table(results, f'{args.cameras} cameras {setting}'))
        return 0
    runs = [run(count) for count in counts]
    sweep = {policy: [results[policy] for results in runs] for policy in args.policy}
    if args.plot:
        try:
            plot_sweep(counts, sweep, deadlines[0], f'AlexNet, cameras {setting}', args.plot)
        except OSError as error:
            parser.error(f'argument --plot: cannot write {args.plot!r}: {error.strerror or error}')
    if args.json:
        print(json.dumps({'cameras': counts, 'policies': sweep}))
    else:
        print(format_sweep(counts, sweep, f'cameras {setting}'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
