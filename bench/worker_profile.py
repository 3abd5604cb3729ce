"""
The scheduler worker's loop alone: host time per frame of one :class:`WorkerCore`.

Under open-loop cameras, in this process, with no socket and no feeder process beside it.

    python3 bench/worker_profile.py [--cameras 192] [--seconds 3] [--max-batch 32]
                                    [--policy s3dnn] [--engine cuda|timed] [--cost-table FILE]
                                    [--read-every-us 0] [--call-times] [--profile]
                                    [--out DIR]

Every camera's frame k is due at phase + k / fps (random phase, seeded); the loop hands the frames
due to the core together (from slots of the cameras' shared-memory rings, as the worker process
does after one read of its frame pipe; the schedule's own bookkeeping is not metered), steps the
core, and pickles its outputs as the worker process would send them. One second of
warm-up, then ``--seconds`` measured (frames still in flight at the end are not waited for).
Compare its host µs per frame with the capacity benchmark's at the same count: the difference is
what the worker process pays for its messages and for running beside the frame producers. It also
reports what opening a camera's ring (attaching it and page-locking its slots) cost the loop, and
the DEQUEUEs a frame with the host time of those that launched nothing (``hold_us_per_frame``, not
in the host µs per frame).
``--read-every-us T`` hands the frames over at most every T µs (a worker reading its frame pipe
that often; default 0, every turn of the loop, as the worker process reads it): the frames a read
brings (``frames_per_read``) against what each costs the host.

``--call-times`` adds where the means come from: each metered kind's time per call (a read's
intake, a round's decision, a poll that retired launches, an output hand-over) and each engine
launch call's, as percentiles with the share of the kind's time spent in its slowest 1% of calls;
the garbage collector's pauses in the measured span; and, with the CUDA engine, its segment graphs
made, launched and refused by the start and by the end of that span (a graph made in the span is a
capture and instantiation inside a launch call).

As in the worker process, what start-up made is frozen out of the garbage collector's scans
(``gc.freeze``) before the cameras start.

``--engine timed`` runs the timed engine (:mod:`s3dnn_ros.engine.timed`) instead of the GPU: a
launch completes after the cost table's GPU time, one launch at a time, so the scheduler's own
host cost can be measured on a machine without one. ``--profile`` adds a cProfile of the measured
span (it slows the loop: the costs it prints are then inflated). Writes
DIR/worker_profile-<card>.json (DIR: --out, else $OUT, else bench/out).
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import heapq
import io
import itertools
from pathlib import Path
import pickle
import pstats
import sys
import time

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from records import record_header, write_record  # noqa: E402
from s3dnn_ros.engine.costs import CostTable  # noqa: E402
from s3dnn_ros.engine.timed import TimedEngine  # noqa: E402
from s3dnn_ros.model.alexnet import alexnet  # noqa: E402
from s3dnn_ros.scheduler.policies import DEFAULT_MAX_BATCH, POLICIES  # noqa: E402
from s3dnn_ros.tools.bench import file_name  # noqa: E402
from s3dnn_ros.tools.cli import (choices_list, non_negative_float, positive_float,  # noqa: E402
                                 positive_int)
from s3dnn_ros.worker.core import build_worker  # noqa: E402
from s3dnn_ros.worker.frame_pipe import ENCODING_NAMES, FRAME  # noqa: E402
from s3dnn_ros.worker.slots import frame_bytes, Ring, slot_bytes_for  # noqa: E402
from s3dnn_ros.worker.spec import CameraSpec, WorkerSpec  # noqa: E402

SLOTS = 3
RGB8 = ENCODING_NAMES.index('rgb8')
WARMUP_S = 1.0


class _LaunchTimed:
    """A backend whose launch calls go through ``launched``; everything else is ``backend``'s."""

    def __init__(self, backend, launched):
        self._backend, self.launch = backend, launched

    def __getattr__(self, name: str):
        return getattr(self._backend, name)


class CallTimes:
    """
    The host time of each metered call of a core, and the collector's pauses, while recording.

    The core keeps each metered call's time in :attr:`calls` (``WorkerCore.call_times``), and
    the dispatcher gets a backend that times each launch call of the core's (the methods of a
    compiled dispatcher cannot be replaced).
    """

    def __init__(self, core):
        self.recording = False
        self.calls: dict[str, list[int]] = {}
        self.pauses: list[int] = []
        self._pause_start = 0
        self.graphs_at_start = self.graphs_at_end = None
        self._core = core
        backend = core.backend

        def launched(launch) -> None:
            begin = time.perf_counter_ns()
            backend.launch(launch)
            if self.recording:
                self.calls.setdefault('launch call', []).append(time.perf_counter_ns() - begin)

        core.dispatcher.backend = _LaunchTimed(backend, launched)
        gc.callbacks.append(self._collected)

    def _collected(self, phase: str, info: dict) -> None:
        if phase == 'start':
            self._pause_start = time.perf_counter_ns()
        elif self.recording:
            self.pauses.append(time.perf_counter_ns() - self._pause_start)

    def start(self) -> None:
        self.recording = True
        self._core.call_times = self.calls
        self.graphs_at_start = self._graph_counts()

    def stop(self) -> None:
        self.recording = False
        self._core.call_times = None
        self.graphs_at_end = self._graph_counts()
        gc.callbacks.remove(self._collected)

    def _graph_counts(self) -> dict | None:
        return getattr(self._core.engine, 'graph_counts', None)  # the CUDA engine's property

    def report(self) -> dict:
        kinds = {}
        for kind, times in sorted(self.calls.items()):
            us = np.array(times) / 1000
            p99 = np.percentile(us, 99)
            kinds[kind] = {'calls': len(us), 'mean_us': round(float(us.mean()), 2),
                           **{f'p{q}_us': round(float(np.percentile(us, q)), 2)
                              for q in (50, 90, 99)},
                           'max_us': round(float(us.max()), 2),
                           'slowest_1pct_share': round(float(us[us > p99].sum() / us.sum()), 3)}
        return {'kinds': kinds,
                'gc': {'pauses': len(self.pauses), 'total_ms': round(sum(self.pauses) / 1e6, 3),
                       'max_ms': round(max(self.pauses, default=0) / 1e6, 3)},
                'graphs_at_start': self.graphs_at_start, 'graphs_at_end': self.graphs_at_end}


def run(core, cameras: int, fps: float, seconds: float, seed: int,
        profiler: cProfile.Profile | None = None, read_every_ns: int = 0,
        call_times: CallTimes | None = None) -> tuple[dict, list[int], int]:
    """
    Deliver every camera's frames at their due times for WARMUP_S + ``seconds``.

    Those due are handed over together, at most every ``read_every_ns``. The core steps all the
    while. Returns, at the end of the warm-up (where the profiler, if any, starts): the core's
    snapshot and each camera's count of latencies kept; and the reads (handings over) after it.
    """
    period = 1e9 / fps
    # Python floats: round() of a numpy float costs microseconds inside the metered loop
    phases = np.random.default_rng(seed).uniform(0, period, cameras).tolist()
    start = time.monotonic_ns() + 1_000_000
    mark = start + round(WARMUP_S * 1e9)
    end = mark + round(seconds * 1e9)
    due = [(start + round(phase), camera, 0) for camera, phase in enumerate(phases)]
    heapq.heapify(due)
    before, kept, reads, read_ns = None, [], 0, 0
    while (now := time.monotonic_ns()) < end:
        if before is None and now >= mark:
            before, reads = core.snapshot(), 0
            kept = [len(pipeline.stats.latencies_ns) for pipeline in core.pipelines]
            if profiler:
                profiler.enable()
            if call_times:
                call_times.start()
        ready = []  # the cameras' side: not the worker's host time
        while due[0][0] <= now and now - read_ns >= read_every_ns:
            when, camera, k = due[0]
            heapq.heapreplace(due,
                              (start + round(phases[camera] + (k + 1) * period), camera, k + 1))
            ready.append((FRAME, camera, 0, k % SLOTS, RGB8, 480, 640, k, when))
        if ready:
            reads, read_ns = reads + 1, now
            core.take_records(ready, 0, time.perf_counter_ns())
        # what the worker process sends
        core.cycle(lambda outputs: pickle.dumps(('outputs', outputs)))
    if profiler:
        profiler.disable()
    if call_times:
        call_times.stop()
    return before, kept, reads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n\n')[0])
    parser.add_argument('--cameras', type=positive_int, default=192)
    parser.add_argument('--fps', type=positive_float, default=30.0)
    parser.add_argument('--deadline-ms', type=positive_float, default=50.0)
    parser.add_argument('--seconds', type=positive_float, default=3.0)
    parser.add_argument('--max-batch', type=positive_int, default=DEFAULT_MAX_BATCH)
    parser.add_argument('--policy', type=choices_list(list(POLICIES)), default=['s3dnn'])
    parser.add_argument('--engine', choices=['cuda', 'timed'], default='cuda')
    parser.add_argument(
        '--cost-table', type=Path, default=REPO / 'bench' / 'results' / 'costs-nvidia-h200.json',
        help="the timed engine's GPU times (default: the H200 table in bench/results)")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--read-every-us', type=non_negative_float, default=0.0,
                        help='hand the frames due over at most this often (default 0: every turn)')
    parser.add_argument('--call-times', action='store_true',
                        help="each metered call's host time (percentiles), GC pauses, graphs")
    parser.add_argument('--profile', action='store_true',
                        help='cProfile the measured span (slows the loop)')
    parser.add_argument('--out', type=Path)
    args = parser.parse_args()
    (policy,) = args.policy
    cameras = tuple(CameraSpec(f'cam{i}', round(args.deadline_ms * 1e6))
                    for i in range(args.cameras))
    spec = WorkerSpec(cameras, policy=policy, engine='cuda', max_batch=args.max_batch)
    engine = (TimedEngine(CostTable.load(args.cost_table, alexnet())) if args.engine == 'timed'
              else None)
    core = build_worker(spec, engine)
    slot_bytes = slot_bytes_for(frame_bytes(480, 640, 'rgb8'))
    rings, opening_ns = [], 0
    try:
        for camera in range(args.cameras):
            ring = Ring.create(slot_bytes, SLOTS, 0)
            rings.append(ring)
            began = time.perf_counter_ns()
            core.open_ring(camera, ring.name, slot_bytes, SLOTS, 0)
            opening_ns += time.perf_counter_ns() - began
        # as the worker process does once built
        gc.collect()
        gc.freeze()
        profiler = cProfile.Profile() if args.profile else None
        call_times = CallTimes(core) if args.call_times else None
        before, kept, reads = run(core, args.cameras, args.fps, args.seconds, args.seed,
                                  profiler, round(args.read_every_us * 1000), call_times)
        after = core.snapshot()
    finally:
        core.close()
        for ring in rings:
            ring.close()
            ring.unlink()
    totals = {key: sum(c[key] for c in after['cameras']) - sum(c[key] for c in before['cameras'])
              for key in ('released', 'completed', 'missed', 'dropped_queue', 'dropped_deadline',
                          'dropped_error')}
    host_ns = after['host_work_ns'] - before['host_work_ns']
    held = {key: after['host_totals'][key] - before['host_totals'][key]
            for key in ('dequeues', 'hold_ns')}
    # the frames completed after the warm-up: from their due time to their result
    latencies = np.array([
        latency for pipeline, first in zip(core.pipelines, kept)
        for latency in itertools.islice(pipeline.stats.latencies_ns, first, None)] or [0]) / 1e6
    report = {**record_header('worker_profile', card=after['device']),
              'engine': after['engine'], 'scheduler': after['scheduler'], 'policy': policy,
              'cameras': args.cameras,
              'fps': args.fps, 'deadline_ms': args.deadline_ms, 'seconds': args.seconds,
              'max_batch': args.max_batch, 'profiled': args.profile,
              'read_every_us': args.read_every_us, **totals,
              'frames_per_read': round(totals['released'] / max(1, reads), 2),
              'mean_batch': after['mean_batch'],
              'p50_ms': round(float(np.percentile(latencies, 50)), 3),
              'p99_ms': round(float(np.percentile(latencies, 99)), 3),
              'staged_frames': after['staged_frames'] - before['staged_frames'],
              'host_us_per_frame': round(host_ns / max(1, totals['released']) / 1000, 2),
              'host_us_per_kernel': round(
                  host_ns / max(1, after['kernel_launches'] - before['kernel_launches']) / 1000,
                  2),
              'host_busy': round(host_ns / (after['time_ns'] - before['time_ns']), 4),
              # DEQUEUEs asked, and the host time of those that launched nothing (the policy
              # holding first layers back): not in host_us_per_frame
              'dequeues_per_frame': round(
                  held['dequeues'] / max(1, totals['released']), 3),
              'hold_us_per_frame': round(held['hold_ns'] / max(1, totals['released']) / 1000, 2),
              # what attaching and page-locking a camera's ring cost the worker's loop
              'ring_open_ms': round(opening_ns / args.cameras / 1e6, 3),
              'host_costs': after['host_costs']}
    if call_times:
        report['call_times'] = call_times.report()
    print(f'{report["card"]}, {policy}, scheduler {report["scheduler"]}, {args.cameras} cameras, '
          f'batch <= {args.max_batch}: '
          f'released {totals["released"]}, completed {totals["completed"]}, '
          f'missed {totals["missed"]}, p50 {report["p50_ms"]} ms, p99 {report["p99_ms"]} ms, '
          f'mean batch {report["mean_batch"]:.1f}, '
          f'{report["frames_per_read"]} frames a read, '
          f'{report["staged_frames"]} staged on arrival, '
          f'host {report["host_us_per_frame"]} µs/frame, {report["host_us_per_kernel"]} µs per '
          f'kernel launch ({report["host_busy"]:.0%} busy), '
          f'{report["dequeues_per_frame"]} DEQUEUEs a frame, '
          f'{report["hold_us_per_frame"]} µs/frame in those that launched nothing, '
          f'{report["ring_open_ms"]} ms to open a ring, '
          f'host costs {report["host_costs"]}')
    if call_times:
        calls = report['call_times']
        for kind, times in calls['kinds'].items():
            print(f'  {kind}: {times}')
        print(f"  gc {calls['gc']}, graphs {calls['graphs_at_start']} -> {calls['graphs_at_end']}")
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats('tottime').print_stats(30)
        print(text.getvalue())
    write_record(report, file_name(report['card'], 'worker_profile'), args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
