"""
Launches of one layer side by side on the GPU: how much two or four of them overlap.

    python3 bench/side_by_side.py [--batches 1,2,4,8,16,32] [--launches 2,4] [--repeats 20]
                                  [--out DIR]

For each kernel layer and batch size, k launches of the layer over k different groups of frames
(640x480 rgb8, page-locked) start together on k streams (``CudaEngine.time_side_by_side``), and the
same for the groups' image copies to the device. Per row: the median time of one launch alone, of k
side by side (kernels: from the last one's begin to the last end, as the streams that wait for the
first one's start begin a few µs late; copies: from the start to the last end, as a copy's begin
mark on its stream passes only when the copy engine takes it up), the GPU share that time implies
in the simulator's model (k launches of share s take k s times one alone when k s > 1), the tbRatio
(the paper's share), and for the copies the median end of each of the k. Prints and writes
DIR/side_by_side-<card>.json (DIR: --out, else $OUT, else bench/out). What it answers: whether the
copies of launches side by side share the way to the device or take turns (the simulator's copy
engine takes turns), and how far tbRatio is from the share a kernel takes.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import statistics
import sys

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from records import record_header, write_record  # noqa: E402
from s3dnn_ros.engine.cuda import CudaEngine  # noqa: E402
from s3dnn_ros.model.alexnet import alexnet  # noqa: E402
from s3dnn_ros.model.weights import init_weights  # noqa: E402
from s3dnn_ros.tools.bench import Bench, file_name  # noqa: E402
from s3dnn_ros.tools.cli import positive_int, positive_ints  # noqa: E402


def together_us(runs: list[list[tuple[float, float]]], copies: bool) -> float:
    """Median time to the last end: from the last launch's begin, for copies from the start."""
    return statistics.median(max(end for _, end in run)
                             - (0.0 if copies else max(begin for begin, _ in run))
                             for run in runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batches', type=positive_ints, default=[1, 2, 4, 8, 16, 32])
    parser.add_argument('--launches', type=positive_ints, default=[2, 4])
    parser.add_argument('--repeats', type=positive_int, default=20)
    parser.add_argument('--out', type=Path)
    args = parser.parse_args()
    network = alexnet()
    weights = init_weights(network, seed=0)
    engine = CudaEngine(network, weights, streams=max(args.launches))
    if max(args.batches) > engine.max_batch:
        parser.error(f'argument --batches: {max(args.batches)}: at most the kernel batch of '
                     f'the engine, {engine.max_batch}')
    bench = Bench(engine, network, weights, args.repeats)
    size = max(args.batches)
    pids: list = []
    rows = []
    try:
        pids = bench.open_pipelines(size * max(args.launches), 'side', 'pinned')
        for start in range(0, len(pids), size):
            for index in range(len(engine.layers)):
                engine.launch(index, pids[start:start + size], 0).wait()
        for index, name in [(None, 'copies'),
                            *((i, layer.name) for i, layer in enumerate(engine.layers))]:
            for batch in args.batches:
                groups = [pids[j * size:j * size + batch] for j in range(max(args.launches))]
                alone = statistics.median(run[0][1] for run in engine.time_side_by_side(
                    index, groups[:1], 3, args.repeats))
                row = {'layer': name, 'batch': batch, 'alone_us': round(alone, 2),
                       'tb_ratio': (round(engine.tb_ratio(index, batch), 4)
                                    if index is not None else None)}
                for count in args.launches:
                    runs = engine.time_side_by_side(index, groups[:count], 3, args.repeats)
                    together = together_us(runs, index is None)
                    row[f'x{count}_us'] = round(together, 2)
                    row[f'x{count}_share'] = round(together / (count * alone), 3)
                    if index is None:
                        row[f'x{count}_ends_us'] = [
                            round(statistics.median(run[j][1] for run in runs), 2)
                            for j in range(count)]
                rows.append(row)
                print(' '.join(f'{key} {value}' for key, value in row.items()), flush=True)
    finally:
        bench.close_pipelines(pids)
        bench.release(engine)
        engine.close()
    report = {**record_header('side_by_side', card=engine.device_name), 'rows': rows}
    write_record(report, file_name(report['card'], 'side_by_side'), args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
