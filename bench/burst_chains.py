"""
A burst of camera frames on an idle GPU, issued as one fused chain or as several side by side.

    python3 bench/burst_chains.py [--frames 8,16,32,64] [--chains 1,2,4,8] [--repeats 20]
                                  [--cuts 4+12+16,...] [--graphs on,off] [--out DIR]

N frames (640x480 rgb8, in page-locked memory) arrive together; they go through the whole network
as k chains of N/k frames, chain j a single launch of every layer (``launch_layers``) on engine
stream j: the first chain's kernels start once its N/k uploads are done, the next chains' uploads
run beside them. Prints and writes to DIR/burst_chains-<card>.json (DIR: --out, else $OUT, else
bench/out) the median wall ms from the first launch call to the last result on the host, per N
and k: how a scheduler should cut a burst that finds the GPU idle (Table 1 of ``s3dnn-bench`` is
four such bursts' worth of frames at once). ``--cuts`` adds uneven cuts, each the chains' sizes
joined by ``+`` in launch order (``4+12+16+32``: 64 frames, a small chain first), timed the same
way after the even ones. ``--graphs on,off`` times every cut on two engines in this process, one
launching a chain as CUDA graphs (the default) and one kernel by kernel, their bursts alternated:
what the graphs cost or save on the GPU and the host, free of the drift between processes.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import statistics
import sys
import time

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from records import record_header, write_record  # noqa: E402
from s3dnn_ros.engine.cuda import CudaEngine, MAX_FRAMES  # noqa: E402
from s3dnn_ros.model.alexnet import alexnet  # noqa: E402
from s3dnn_ros.model.weights import init_weights  # noqa: E402
from s3dnn_ros.tools.bench import Bench, file_name  # noqa: E402
from s3dnn_ros.tools.cli import choices_list, positive_int, positive_ints  # noqa: E402

#: --graphs: the engines' ``segment_graphs``
GRAPHS = {'on': True, 'off': False}


def burst_ms(engine, chains: list[list], layers: int) -> float:
    """Wall ms of one burst: each chain one launch of every layer on its own stream."""
    begin = time.perf_counter_ns()
    completions = [engine.launch_layers(0, layers, pids, stream)
                   for stream, pids in enumerate(chains)]
    for completion in completions:
        completion.wait()
    return (time.perf_counter_ns() - begin) / 1e6


def cut_list(text: str) -> list[list[int]]:
    """Parse a comma list of cuts, each chain sizes joined by ``+`` (``4+12+16,8+8``)."""
    return [[positive_int(size) for size in cut.split('+')] for cut in text.split(',')]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=positive_ints, default=[8, 16, 32, 64])
    parser.add_argument('--chains', type=positive_ints, default=[1, 2, 4, 8])
    parser.add_argument('--repeats', type=positive_int, default=20)
    parser.add_argument('--cuts', type=cut_list, default=[],
                        help='uneven cuts: chain sizes joined by +, comma between cuts')
    parser.add_argument('--graphs', type=choices_list(list(GRAPHS)), default=['on'],
                        help='engines to time side by side: on (chains as CUDA graphs), off')
    parser.add_argument('--out', type=Path)
    args = parser.parse_args()
    network = alexnet()
    weights = init_weights(network, seed=0)
    cuts = [[frames // count] * count for frames in args.frames for count in args.chains
            if not frames % count and frames // count <= MAX_FRAMES] + args.cuts
    for cut in args.cuts:
        if max(cut) > MAX_FRAMES:
            parser.error(f'--cuts: a chain of {max(cut)} frames in {"+".join(map(str, cut))}; '
                         f'allowed: at most {MAX_FRAMES} frames a chain')
    streams = max(len(cut) for cut in cuts)
    engines = {mode: CudaEngine(network, weights, streams=streams, segment_graphs=GRAPHS[mode])
               for mode in args.graphs}
    benches = {mode: Bench(engine, network, weights, args.repeats)
               for mode, engine in engines.items()}
    layers = len(network.kernel_layers)
    pids: dict = {}
    rows = []
    try:
        for mode, bench in benches.items():
            pids[mode] = bench.open_pipelines(max(sum(cut) for cut in cuts), 'burst', 'pinned')
        for cut in cuts:
            starts = [sum(cut[:j]) for j in range(len(cut) + 1)]
            chains = {mode: [pids[mode][starts[j]:starts[j + 1]] for j in range(len(cut))]
                      for mode in engines}
            samples: dict = {mode: [] for mode in engines}
            for mode, engine in engines.items():
                burst_ms(engine, chains[mode], layers)  # warm-up
            for _ in range(args.repeats):  # the engines' bursts alternated
                for mode, engine in engines.items():
                    samples[mode].append(burst_ms(engine, chains[mode], layers))
            for mode in engines:
                rows.append({'frames': starts[-1], 'chains': len(cut),
                             'chain_frames': cut[0] if len(set(cut)) == 1 else None, 'cut': cut,
                             'graphs': mode,
                             'median_ms': round(statistics.median(samples[mode]), 3),
                             'min_ms': round(min(samples[mode]), 3)})
                print(f'{starts[-1]:3d} frames as {"+".join(map(str, cut)):>14}, graphs '
                      f'{mode:>3}: median {rows[-1]["median_ms"]:.3f} ms, '
                      f'min {rows[-1]["min_ms"]:.3f} ms', flush=True)
    finally:
        for mode, bench in benches.items():
            bench.close_pipelines(pids.get(mode, []))
            bench.release(engines[mode])
            engines[mode].close()
    card = next(iter(engines.values())).device_name
    report = {**record_header('burst_chains', card=card), 'rows': rows}
    write_record(report, file_name(report['card'], 'burst_chains'), args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
