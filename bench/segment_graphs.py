"""
Host and GPU time of one segment launch, as kernels one by one or as a CUDA graph.

    python3 bench/segment_graphs.py [--launches 200] [--frames 16] [--out DIR]

Two CUDA engines on one GPU, one launching a segment's kernels one by one
(``segment_graphs=False``), one as a graph. For each segment - the whole network, and layers 1-6
(a run-ahead segment) - ``--launches`` calls of ``launch_layers`` over ``--frames`` frames on one
stream: host µs per call (the call alone; the stream is drained every 8 calls, outside the
timing), GPU µs per segment (its completion's interval, median), and per kernel. The graph engine
is timed twice: the same frames every call (the graph launched as it is) and two sets of frames
taking turns on the stream (every call rewrites the kernels' arguments first). Every way's results
must equal the kernel-by-kernel engine's bit for bit (same kernels, same arguments): printed and
recorded as ``same_results``. Writes DIR/segment_graphs-<card>.json (DIR: --out, else $OUT, else
bench/out).
"""
from __future__ import annotations

import argparse
from pathlib import Path
import statistics
import sys
import time

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from records import record_header, write_record  # noqa: E402
from s3dnn_ros.engine.cuda import CudaEngine  # noqa: E402
from s3dnn_ros.model import alexnet, init_weights  # noqa: E402
from s3dnn_ros.tools.bench import camera_images, file_name  # noqa: E402

#: calls between two drains of the stream (the GPU keeps up; the host is what is timed)
DRAIN_EVERY = 8


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--launches', type=int, default=200)
    parser.add_argument('--frames', type=int, default=16)
    parser.add_argument('--out', type=Path)
    args = parser.parse_args()
    network = alexnet()
    weights = init_weights(network, seed=7)
    direct = CudaEngine(network, weights, segment_graphs=False)
    graphs = CudaEngine(network, weights)
    try:
        report = {**record_header('segment_graphs', card=direct.device_name),
                  'frames': args.frames, 'launches': args.launches,
                  'graph_calls': graphs.graph_counts is not None,
                  'segments': measure(direct, graphs, args.frames, args.launches),
                  'graph_counts': graphs.graph_counts}
    finally:
        graphs.close()
        direct.close()
    for segment in report['segments']:
        print(segment)
    print('graph counts:', report['graph_counts'])
    write_record(report, file_name(report['card'], 'segment_graphs'), args.out)
    return 0


def measure(direct, graphs, frames: int, launches: int) -> list[dict]:
    images = camera_images(2 * frames)
    layers = len(direct.layers)
    sets = {}
    for name, engine in (('direct', direct), ('graphs', graphs)):
        pids = [(name, i) for i in range(2 * frames)]
        for pid in pids:
            engine.open_pipeline(pid)
        engine.set_inputs([(pid, image, 'rgb8') for pid, image in zip(pids, images)])
        sets[name] = (pids[:frames], pids[frames:])
    reference = []
    for pids in sets['direct']:
        direct.launch_layers(0, layers, pids, 0).wait()
        reference += [direct.result(pid).copy() for pid in pids]
    rows = []
    for first, count in ((0, layers), (1, 6)):
        row = {'first': first, 'layers': count}
        same = []
        for way, engine, turns in (('kernels', direct, 1), ('graph', graphs, 1),
                                   ('graph_rewritten', graphs, 2)):
            pid_sets = sets['direct' if engine is direct else 'graphs']
            host, gpu = time_way(engine, pid_sets, first, count, launches, turns)
            row[f'{way}_host_us'] = round(host, 2)
            row[f'{way}_host_us_per_kernel'] = round(host / count, 2)
            row[f'{way}_gpu_us'] = round(gpu, 1)
            if first + count == layers:
                got = [engine.result(pid) for pids in pid_sets[:turns] for pid in pids]
                same += [np.array_equal(a, b) for a, b in zip(got, reference)]
        if same:
            row['same_results'] = all(same)
        rows.append(row)
    return rows


def time_way(engine, sets, first: int, count: int, launches: int, turns: int):
    """Host µs per launch_layers call and median GPU µs per segment."""
    spent, gpu = 0, []
    for call in range(launches + DRAIN_EVERY):
        pids = sets[call % turns]
        begin = time.perf_counter_ns()
        completion = engine.launch_layers(first, count, pids, 0)
        took = time.perf_counter_ns() - begin
        if call >= DRAIN_EVERY:  # the first calls make plans and graphs
            spent += took
        if call % DRAIN_EVERY == DRAIN_EVERY - 1:
            completion.wait()
            if call >= DRAIN_EVERY:
                start, end = completion.interval()
                gpu.append((end - start) / 1000)
    return spent / launches / 1000, statistics.median(gpu)


if __name__ == '__main__':
    sys.exit(main())
