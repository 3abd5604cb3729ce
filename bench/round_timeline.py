"""
Where the wall time of an S3DNN round goes: host before the first kernel, GPU, host after it.

    python3 bench/round_timeline.py [--frames 16,32,64] [--streams 4] [--repeats 10] [--out DIR]

The round of ``s3dnn-bench``'s Table 1 (N frames of 640x480 rgb8 in page-locked memory submitted
at once to a dispatcher with the s3dnn policy over the CUDA engine, on an engine of ``--streams``
streams), with every launch call, every launch's GPU interval (its events, on the host's clock)
and every upload started ahead of the launches at intake recorded. Per N, medians over the
rounds, in ms from the first submission: the end of the arrivals, the first launch call, the start
of the GPU's first work (an upload or a kernel), the last kernel's end, the last result on the
host; the GPU's busy time (union of the uploads' and launches' intervals), its idle time between
its first start and its last end (per round) and the number of launch calls. Then one round's
uploads and launches in order.

Beside it, where N splits into Table 1's four runs, the same marks of Table 1's streams baseline
(the four runs of N / 4 frames, each run's layers issued at once on its own stream, the round
ending at the host's wait for the last launch): both rounds do the same GPU work, so what one
spends beyond the other is host time at its edges, before the GPU's first work and after its last
kernel (``host_edges_ms``). Writes DIR/round_timeline-<card>.json (DIR: --out, else $OUT, else
bench/out).
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
from s3dnn_ros.engine.cuda import CudaEngine  # noqa: E402
from s3dnn_ros.model.alexnet import alexnet  # noqa: E402
from s3dnn_ros.model.weights import init_weights  # noqa: E402
from s3dnn_ros.scheduler.dispatcher import EngineBackend  # noqa: E402
from s3dnn_ros.tools.bench import Bench, file_name, RUNS  # noqa: E402
from s3dnn_ros.tools.cli import positive_int, positive_ints  # noqa: E402

MARKS = ('arrived', 'first_call', 'gpu_start', 'gpu_end', 'done')


class _UploadRecorder:
    """The engine, keeping each upload it starts ahead of a launch: (completion, images, when)."""

    def __init__(self, engine, uploads: list[tuple]):
        self._engine = engine
        self._uploads = uploads

    def __getattr__(self, name: str):
        return getattr(self._engine, name)

    def upload(self, pids):
        upload = self._engine.upload(pids)
        if upload is not None:
            self._uploads.append((upload, len(pids), time.monotonic_ns()))
        return upload


class RecordingBackend:
    """
    The engine backend, keeping each launch call's host span and each launch's GPU interval.

    And each upload started at intake, with its images and when it was started. It wraps an
    :class:`EngineBackend` rather than subclassing it: the scheduler's classes may be compiled
    (mypyc), and a compiled class takes no interpreted subclass.
    """

    def __init__(self, engine):
        self.calls: list[dict] = []
        self.copies_ahead: list[tuple] = []
        self._backend = EngineBackend(_UploadRecorder(engine, self.copies_ahead))
        self.streams = self._backend.streams

    def __getattr__(self, name: str):
        return getattr(self._backend, name)

    def launch(self, launch) -> None:
        begin = time.monotonic_ns()
        self._backend.launch(launch)
        self.calls.append({'launch': launch, 'call': (begin, time.monotonic_ns())})


def one_round(bench: Bench, engine, images, frames: int) -> tuple[dict, dict]:
    backend = RecordingBackend(engine)
    times = {}
    _, busy_ms = bench.s3dnn_round(engine, images, frames, backend, times)
    begin = times['begin']
    launches, spans = [], []
    for call in backend.calls:
        launch = call['launch']
        start, stop = launch.handle.interval()
        spans.append((start, stop))
        launches.append({'layer': launch.layer, 'depth': launch.depth, 'batch': launch.batch,
                         'stream': launch.stream,
                         'call_ms': [round((t - begin) / 1e6, 3) for t in call['call']],
                         'gpu_ms': [round((start - begin) / 1e6, 3),
                                    round((stop - begin) / 1e6, 3)]})
    uploads = []
    for upload, count, called in backend.copies_ahead:
        start, stop = upload.interval()
        spans.append((start, stop))
        uploads.append({'frames': count, 'issued_ms': round((called - begin) / 1e6, 3),
                        'gpu_ms': [round((start - begin) / 1e6, 3),
                                   round((stop - begin) / 1e6, 3)]})
    starts, ends = zip(*(entry['gpu_ms'] for entry in launches + uploads))
    marks = {'arrived': (times['arrived'] - begin) / 1e6,
             'first_call': launches[0]['call_ms'][0], 'gpu_start': min(starts),
             'gpu_end': max(ends), 'done': (times['end'] - begin) / 1e6,
             'gpu_busy': busy_ms, 'launch_calls': len(launches)}
    # within the round (medians of the start, end and busy time come from different rounds)
    first, last = min(start for start, _ in spans), max(stop for _, stop in spans)
    marks['gpu_idle'] = (last - first) / 1e6 - busy_ms
    return marks, {'uploads': uploads, 'launches': launches}


def streams_round(bench: Bench, engine, images, runs: list[list], streams: int) -> dict:
    """
    Return the marks of one round of Table 1's streams baseline, in ms from its start.

    ``runs``: the pipelines of each run (open, their staging allocated).
    """
    busy, marks = [], {}
    bench.table1_runs(engine, images, runs, streams, wait_each=False, busy=busy, marks=marks)
    begin = marks['begin']
    return {'gpu_start': (marks['gpu_start'] - begin) / 1e6,
            'gpu_end': (marks['gpu_end'] - begin) / 1e6, 'done': (marks['end'] - begin) / 1e6,
            'gpu_busy': busy[0]}


def host_edges(marks: dict) -> float:
    """Host time at a round's edges: before the GPU's first work plus after its last kernel."""
    return marks['gpu_start'] + marks['done'] - marks['gpu_end']


def baseline_row(bench: Bench, engine, images, frames: int, streams: int,
                 repeats: int) -> dict | None:
    """Medians of the streams baseline's marks over ``repeats`` rounds (None: N / 4 is no run)."""
    if frames % RUNS:
        return None
    runs = [[(f'base{r}', i) for i in range(frames // RUNS)] for r in range(RUNS)]
    for pids in runs:
        for pid in pids:
            engine.open_pipeline(pid)
    try:
        streams_round(bench, engine, images, runs, streams)  # warm-up: staging allocated
        rounds = [streams_round(bench, engine, images, runs, streams) for _ in range(repeats)]
    finally:
        for pids in runs:
            for pid in pids:
                engine.close_pipeline(pid)
    row = {f'{key}_ms': round(statistics.median(marks[key] for marks in rounds), 3)
           for key in ('gpu_start', 'gpu_end', 'done', 'gpu_busy')}
    row['host_edges_ms'] = round(statistics.median(host_edges(marks) for marks in rounds), 3)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=positive_ints, default=[16, 32, 64])
    parser.add_argument('--streams', type=positive_int, default=4)
    parser.add_argument('--repeats', type=positive_int, default=10)
    parser.add_argument('--out', type=Path)
    args = parser.parse_args()
    network = alexnet()
    weights = init_weights(network, seed=0)
    engine = CudaEngine(network, weights, streams=args.streams)
    bench = Bench(engine, network, weights, args.repeats)
    images = bench.inputs(engine, 'pinned')
    rows = []
    try:
        for frames in args.frames:
            one_round(bench, engine, images, frames)  # warm-up
            rounds = [one_round(bench, engine, images, frames) for _ in range(args.repeats)]
            row = {'frames': frames, 'streams': args.streams}
            for key in (*MARKS, 'gpu_busy', 'gpu_idle', 'launch_calls'):
                row[f'{key}_ms' if key != 'launch_calls' else key] = round(
                    statistics.median(marks[key] for marks, _ in rounds), 3)
            row['host_edges_ms'] = round(statistics.median(host_edges(marks)
                                                           for marks, _ in rounds), 3)
            row.update(rounds[len(rounds) // 2][1])
            row['streams_baseline'] = baseline_row(bench, engine, images, frames, args.streams,
                                                   args.repeats)
            rows.append(row)
            print(f"{frames} frames: arrivals end {row['arrived_ms']:.3f}, first launch call "
                  f"{row['first_call_ms']:.3f}, GPU {row['gpu_start_ms']:.3f} .. "
                  f"{row['gpu_end_ms']:.3f} (busy {row['gpu_busy_ms']:.3f}), last result "
                  f"{row['done_ms']:.3f} ms; {row['launch_calls']:.0f} launch calls", flush=True)
            base = row['streams_baseline']
            if base is not None:
                print(f'    streams baseline ({RUNS} runs of {frames // RUNS}): GPU '
                      f"{base['gpu_start_ms']:.3f} .. {base['gpu_end_ms']:.3f} (busy "
                      f"{base['gpu_busy_ms']:.3f}), done {base['done_ms']:.3f} ms; host at the "
                      f"edges {base['host_edges_ms']:.3f} ms against s3dnn's "
                      f"{row['host_edges_ms']:.3f}")
            for entry in row['uploads']:
                print(f"    upload of {entry['frames']:2d} images, issued by "
                      f"{entry['issued_ms']}: GPU {entry['gpu_ms']}")
            for entry in row['launches']:
                print(f"    layer {entry['layer']:2d} x{entry['depth']:2d}, {entry['batch']:2d} "
                      f"frames, stream {entry['stream']}: call {entry['call_ms']}, "
                      f"GPU {entry['gpu_ms']}")
    finally:
        bench.release(engine)
        engine.close()
    report = {**record_header('round_timeline', card=engine.device_name), 'rows': rows}
    write_record(report, file_name(report['card'], 'round_timeline'), args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
