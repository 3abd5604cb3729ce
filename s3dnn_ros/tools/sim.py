"""s3dnn-sim: compare scheduling policies on the discrete-event GPU simulator.

Example: ``s3dnn-sim --cameras 24 --fps 30 --deadline-ms 50 --seconds 5 --gpu t4``
"""
from __future__ import annotations

import json
import sys

from ..engine.costs import GPUS, CostTableError, CostTable, estimate
from ..model.alexnet import alexnet
from ..scheduler.policies import POLICIES
from ..scheduler.simulator import DEFAULT_JITTER_MS, DEFAULT_LAUNCH_OVERHEAD_US, Camera, simulate
from .cli import (Parser, choices_list, non_negative_float, non_negative_int, per_camera, positive_float,
                  positive_floats, positive_int, text_table)

COLUMNS = [('released', 'released', '{:d}'), ('completed', 'completed', '{:d}'), ('missed', 'missed', '{:d}'),
           ('dropped', 'dropped', '{:d}'), ('miss_ratio', 'miss %', '{:.2%}'), ('p50_ms', 'p50 ms', '{:.2f}'),
           ('p99_ms', 'p99 ms', '{:.2f}'), ('throughput_fps', 'frames/s', '{:.1f}'),
           ('gpu_busy', 'GPU busy', '{:.1%}'), ('mean_batch', 'mean batch', '{:.2f}')]


def build_parser() -> Parser:
    parser = Parser(prog='s3dnn-sim', description='Simulate cameras feeding AlexNet through each scheduling '
                    'policy on a modelled GPU and compare deadline misses, latency and throughput.')
    parser.add_argument('--cameras', type=positive_int, default=8, help='number of cameras (default 8)')
    parser.add_argument('--fps', type=positive_floats, default=[30.0],
                        help='frames per second, one value or one per camera (default 30)')
    parser.add_argument('--deadline-ms', type=positive_floats, default=[33.0],
                        help='relative deadline in ms, one value or one per camera (default 33)')
    parser.add_argument('--seconds', type=positive_float, default=5.0, help='simulated seconds of arrivals')
    parser.add_argument('--policy', type=choices_list(list(POLICIES)), default=list(POLICIES),
                        help=f'comma list of policies (default all: {",".join(POLICIES)})')
    parser.add_argument('--gpu', choices=list(GPUS), default='h100', help='nominal GPU of the estimated cost table')
    parser.add_argument('--cost-table', metavar='FILE', help='measured cost table JSON (overrides --gpu)')
    parser.add_argument('--firm', action='store_true', help='drop frames that can no longer meet their deadline')
    parser.add_argument('--queue-depth', type=positive_int, default=1, help='frames waiting per camera (default 1)')
    parser.add_argument('--max-batch', type=positive_int, default=16, help='largest fused batch (default 16)')
    parser.add_argument('--launch-overhead-us', type=positive_float, default=DEFAULT_LAUNCH_OVERHEAD_US,
                        help=f'host time per kernel launch (default {DEFAULT_LAUNCH_OVERHEAD_US})')
    parser.add_argument('--jitter-ms', type=non_negative_float, default=DEFAULT_JITTER_MS,
                        help='camera jitter, uniform +-')
    parser.add_argument('--seed', type=non_negative_int, default=0, help='random seed of phases and jitter (default 0)')
    parser.add_argument('--json', action='store_true', help='print one JSON object instead of tables')
    return parser


def format_table(results: dict, title: str) -> str:
    header = ['policy'] + [label for _, label, _ in COLUMNS]
    rows = [[policy] + [fmt.format(result[key]) for key, _, fmt in COLUMNS] for policy, result in results.items()]
    return text_table(title, header, rows)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    fps = per_camera(parser, '--fps', args.fps, args.cameras)
    deadlines = per_camera(parser, '--deadline-ms', args.deadline_ms, args.cameras)
    network = alexnet()
    try:
        costs = CostTable.load(args.cost_table, network) if args.cost_table else estimate(network, args.gpu)
    except CostTableError as error:
        parser.error(f'argument --cost-table: {error}')
    cameras = [Camera(f'cam{i}', fps[i], deadlines[i], args.queue_depth) for i in range(args.cameras)]
    results = {policy: simulate(cameras, policy, costs, args.seconds, firm=args.firm, seed=args.seed,
                                launch_overhead_us=args.launch_overhead_us, jitter_ms=args.jitter_ms,
                                max_batch=args.max_batch)
               for policy in args.policy}
    if args.json:
        json.dump(results, sys.stdout)
        sys.stdout.write('\n')
    else:
        fps_text = ','.join(f'{f:g}' for f in sorted(set(fps)))
        deadline_text = ','.join(f'{d:g}' for d in sorted(set(deadlines)))
        print(format_table(results, f'{args.cameras} cameras at {fps_text} FPS, deadline {deadline_text} ms, '
                           f'{args.seconds:g} s, {costs.gpu} ({costs.source}){", firm" if args.firm else ""}'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
