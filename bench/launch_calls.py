"""
Host time of each engine call one launch makes, by the number of frames, on a GPU.

    python3 bench/launch_calls.py [--frames 1,2,4,16,32] [--repeats 300] [--cameras N]
                                  [--blocks one|per-camera] [--inflight K] [--out DIR]

``--cameras`` pipelines are open (default: the largest frame count, times 1 + K), each with its
image in memory page-locked in place (``CudaEngine.pin``): one block for all (``--blocks one``, the
default) or a block per camera, as the scheduler worker's frame rings are (``per-camera``). For
each frame count n, ``--repeats`` times with the GPU idle in between (median host µs of each call,
``time.perf_counter_ns`` around it): staging the n images (``set_inputs``), a launch of layer 0
(with the images' upload), of one later layer, of the whole network as one launch (upload, 14
kernels, the last writing the results in place), checking a finished launch (``done``), reading its
GPU interval, and reading the n results as the worker does (a copy each, then lists). Each with the
kernel's uploads batched into one driver call and with one PyCUDA copy per frame.
``results_right``:
whether the fused launches' results are those of each image run alone (top-k scores within 1e-3,
the same classes).

With ``--inflight K`` (K >= 1) the whole-network launch is also timed on a busy GPU, as the
scheduler worker issues it at its knee: the frames staged and launched with up to K earlier such
launches still running (each on other cameras, the streams taken in turn), so that the driver
queues each copy and kernel behind work in flight (``busy_rows``: median host µs of staging and
of the launch, and the GPU's busy share over the timed span). Writes
DIR/launch_calls-<card>.json (DIR: --out, else $OUT, else bench/out).
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
from s3dnn_ros.model.alexnet import alexnet  # noqa: E402
from s3dnn_ros.model.weights import init_weights  # noqa: E402
from s3dnn_ros.tools.bench import file_name  # noqa: E402
from s3dnn_ros.tools.cli import positive_int, positive_ints, text_table  # noqa: E402

HEIGHT, WIDTH = 480, 640
CALLS = ('set_inputs', 'launch_layer0', 'launch_layer1', 'launch_network', 'done', 'interval',
         'results')


def timed(samples: dict, key: str, call):
    start = time.perf_counter_ns()
    value = call()
    samples[key].append(time.perf_counter_ns() - start)
    return value


def alone(engine: CudaEngine, views: list[np.ndarray]) -> list[np.ndarray]:
    """Return each image's result run through the whole network by itself."""
    results = []
    for pid, view in enumerate(views):
        engine.set_input(pid, view, 'rgb8')
        engine.launch_layers(0, len(engine.layers), [pid], 0).wait()
        results.append(engine.result(pid).copy())
    return results


def measure(engine: CudaEngine, views: list[np.ndarray], frames: int, repeats: int,
            expected: list[np.ndarray]) -> dict:
    pids = list(range(frames))
    items = [(pid, views[pid], 'rgb8') for pid in pids]
    layers = len(engine.layers)
    samples = {key: [] for key in CALLS}
    for _ in range(repeats + 5):
        timed(samples, 'set_inputs', lambda: engine.set_inputs(items))
        first = timed(samples, 'launch_layer0', lambda: engine.launch(0, pids, 0))
        second = timed(samples, 'launch_layer1', lambda: engine.launch(1, pids, 0))
        second.wait()
        timed(samples, 'done', first.done)
        timed(samples, 'interval', first.interval)
        engine.set_inputs(items)
        whole = timed(samples, 'launch_network',
                      lambda: engine.launch_layers(0, layers, pids, 0))
        whole.wait()
        timed(samples, 'results', lambda: [
            (lambda r: (r[0].tolist(), r[1].astype(int).tolist()))(engine.result(pid).copy())
            for pid in pids])
        del first, second, whole
    right = all(np.allclose(engine.result(pid)[0], expected[pid][0], rtol=1e-3, atol=1e-6)
                and np.array_equal(engine.result(pid)[1], expected[pid][1]) for pid in pids)
    return {**{key: round(statistics.median(values[5:]) / 1000, 2)
               for key, values in samples.items()}, 'results_right': right}


def measure_busy(engine: CudaEngine, views: list[np.ndarray], frames: int, repeats: int,
                 inflight: int) -> dict:
    """Stage and launch the network for ``frames`` cameras with ``inflight`` launches running."""
    sets = [list(range(j * frames, (j + 1) * frames)) for j in range(inflight + 1)]
    items = [[(pid, views[pid], 'rgb8') for pid in pids] for pids in sets]
    layers = len(engine.layers)
    samples = {'set_inputs': [], 'launch_network': []}
    running: list = [None] * len(sets)
    intervals = []
    for turn in range(repeats + 5 + inflight):
        index = turn % len(sets)
        if running[index] is not None:
            running[index].wait()  # this set's previous launch: the others are still running
            if turn >= 5 + inflight:
                intervals.append(running[index].interval())
        timed(samples, 'set_inputs', lambda: engine.set_inputs(items[index]))
        running[index] = timed(samples, 'launch_network',
                               lambda: engine.launch_layers(0, layers, sets[index], turn))
    for completion in running:
        completion.wait()
    return {**{key: round(statistics.median(values[5 + inflight:]) / 1000, 2)
               for key, values in samples.items()},
            'gpu_busy': round(busy_share(intervals), 3)}


def busy_share(intervals: list[tuple[int, int]]) -> float:
    """Return the share of the span of ``intervals`` that at least one of them covers."""
    intervals = sorted(intervals)
    covered, reach = 0, intervals[0][0]
    for start, end in intervals:
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    return covered / (reach - intervals[0][0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n\n')[0])
    parser.add_argument('--frames', type=positive_ints, default=[1, 2, 4, 16, 32])
    parser.add_argument('--repeats', type=positive_int, default=300)
    parser.add_argument('--cameras', type=positive_int,
                        help='pipelines open (default: the largest of --frames, times 1 + '
                             '--inflight)')
    parser.add_argument('--blocks', choices=['one', 'per-camera'], default='one',
                        help='the images in one page-locked block or in one block each')
    parser.add_argument('--inflight', type=positive_int,
                        help='also time the whole-network launch with up to this many running')
    parser.add_argument('--out', type=Path)
    args = parser.parse_args()
    network = alexnet()
    weights = init_weights(network, seed=0)
    largest = max(args.frames)
    # the largest launch, and as many running beside it with --inflight, each on its own cameras
    need = largest * ((args.inflight or 0) + 1)
    if args.cameras is not None and args.cameras < need:
        parser.error(f'argument --cameras: {args.cameras}: allowed at least {need} (the largest '
                     f'of --frames, {largest}, times 1 + --inflight {args.inflight or 0})')
    cameras = args.cameras or need
    frame_bytes = HEIGHT * WIDTH * 3
    report, rows, busy_rows = None, [], []
    for batched in (True, False):
        engine = CudaEngine(network, weights, streams=4, batched_copies=batched)
        try:
            pixels = np.random.default_rng(0).integers(0, 256, cameras * frame_bytes, np.uint8)
            if args.blocks == 'one':
                blocks = [engine.pin(pixels)]
            else:
                blocks = [engine.pin(pixels[i * frame_bytes:(i + 1) * frame_bytes].copy())
                          for i in range(cameras)]
            views = [(blocks[0][i * frame_bytes:(i + 1) * frame_bytes] if len(blocks) == 1
                      else blocks[i]).reshape(HEIGHT, WIDTH, 3) for i in range(cameras)]
            for pid in range(cameras):
                engine.open_pipeline(pid)
            expected = alone(engine, views[:largest])
            if report is None:
                report = {**record_header('launch_calls', card=engine.device_name),
                          'repeats': args.repeats, 'cameras': cameras, 'blocks': args.blocks,
                          'inflight': args.inflight, 'rows': rows, 'busy_rows': busy_rows}
            for frames in args.frames:
                row = {'frames': frames, 'batched_copies': engine.batched_copies,
                       **measure(engine, views, frames, args.repeats, expected)}
                rows.append(row)
                if args.inflight:
                    busy_rows.append({'frames': frames, 'batched_copies': engine.batched_copies,
                                      'inflight': args.inflight,
                                      **measure_busy(engine, views, frames, args.repeats,
                                                     args.inflight)})
        finally:
            engine.close()
    print(text_table(f'{report["card"]}: median host µs per call',
                     ['frames', 'batched copies', *CALLS, 'results right'],
                     [[str(row['frames']), str(row['batched_copies']),
                       *(f'{row[key]:.1f}' for key in CALLS), str(row['results_right'])]
                      for row in rows]))
    if busy_rows:
        print(text_table(f'{report["card"]}: median host µs per call, {args.inflight} '
                         'whole-network launch(es) running',
                         ['frames', 'batched copies', 'set_inputs', 'launch_network', 'GPU busy'],
                         [[str(row['frames']), str(row['batched_copies']),
                           f'{row["set_inputs"]:.1f}', f'{row["launch_network"]:.1f}',
                           f'{row["gpu_busy"]:.2f}'] for row in busy_rows]))
    write_record(report, file_name(report['card'], 'launch_calls'), args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
