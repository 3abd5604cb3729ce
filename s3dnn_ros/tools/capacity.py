"""
The capacity benchmark (``s3dnn-bench --sections capacity``).

How many cameras one GPU serves within their deadlines, per policy, measured on the real scheduler
worker and predicted by the simulator.

For each policy one scheduler worker process per GPU is started (the same
:class:`~s3dnn_ros.worker.client.WorkerClient` the node uses, so frames cross into shared-memory
slots exactly as from ROS callbacks; with ``gpus`` > 1 the cameras are placed on the GPUs as the
node places them, and the simulator models as many GPUs; with ``workers_per_gpu`` > 1 each GPU's
cameras are split over that many workers on it, as the node does, and the simulator models that
many schedulers sharing each GPU), and the camera counts are swept from the smallest up. At each
count N the first N cameras release frames open-loop at exact times: camera i's k-th frame is due
at phase_i + k / fps (phase_i uniform in one period, seeded), whatever the scheduler does.
Several feeder threads release them (each camera belongs to one), submitting one 640x480 image
into the camera's slots; a frame's release time is its due time, so a late feeder counts against
the scheduler, and how late the feeders were, how long a submit took and this process's CPU time
per frame are reported. The image is copied into each slot once (the first time the slot is used),
not at every frame: the node's per-frame copy is the node's cost (measured through ROS by
``bench/multiprocess_node.py``), and on a 16-core H200 host the copies, 921 KB each into a gigabyte
of slots, made the feeders, not the scheduler, the limit from about 256 cameras (feeders seconds
late, 150-300 µs of CPU per frame here). ``copy_every_frame`` restores the copies. Each point
runs ``warmup_s`` unmeasured, then ``seconds`` measured; a frame counts when it was due in the
measured span, and the point waits until every such frame is resolved.

Per point: frames released, completed, missed (completed after release + deadline), dropped (queue,
firm deadline, no free slot), the miss ratio (missed + dropped) / released, latency percentiles of
completed frames, GPU busy (union of kernel intervals over the span), mean fused batch, the
worker's host time per frame and its metered totals (``host_totals``: time and count of each kind
of work, what ``host_costs_from`` turns into host costs), and for s3dnn its first-layer launches
by what let them go and by size (rule 6). The simulator then runs every point with the cost table
the first worker measured (or loaded) and each policy's host costs measured over its own points,
in parallel processes after the GPU work. The *knee* of a policy is the largest count whose miss
ratio, and that of every smaller count, is below 1%. With ``overload`` set, each policy also runs
at overload x its knee, to show whether it keeps its throughput.
"""
from __future__ import annotations

import collections
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
import gc
import heapq
import os
import sys
import threading
import time
from typing import Callable

import numpy as np

from ..engine.costs import CostTable, HostCosts
from ..model.alexnet import alexnet
from ..scheduler.placement import gpu_shares, place_workers
from ..scheduler.policies import DEFAULT_MAX_BATCH
from ..scheduler.simulator import Camera, simulate_gpus
from ..worker.client import WorkerClient
from ..worker.core import DONE, host_costs_from
from ..worker.spec import CameraSpec, WorkerSpec

#: the miss ratio a camera count must stay under to be within a policy's capacity
KNEE_MISS_RATIO = 0.01
#: how long a point waits for its last frames after the measured span, beyond their deadline
DRAIN_S = 5.0
#: pause between points, so that the policy's rate window and estimates forget the previous load
SETTLE_S = 0.5
#: this process's GIL switch interval while feeding (Python's default, 5 ms, would delay frames by
#: as much)
SWITCH_INTERVAL_S = 0.0002


@dataclass(frozen=True)
class CapacitySetting:
    counts: tuple[int, ...]
    policies: tuple[str, ...]
    fps: float = 30.0
    deadline_ms: float = 50.0
    width: int = 640
    height: int = 480
    seconds: float = 4.0
    warmup_s: float = 1.0
    feeders: int = 8
    #: copy the image into its slot at every frame, as the node does, instead of once per slot
    copy_every_frame: bool = False
    queue_depth: int = 1
    firm: bool = False
    max_inflight: int = 2
    max_batch: int = DEFAULT_MAX_BATCH
    engine: str = 'cuda'
    device_id: int = 0
    #: GPUs device_id .. device_id + gpus - 1, one scheduler worker each, the cameras placed as the
    #: node places them
    gpus: int = 1
    #: scheduler workers per GPU (the node's workers_per_gpu)
    workers_per_gpu: int = 1
    overload: float = 0.0
    seed: int = 0

    @property
    def measured(self) -> str:
        """Return the measured rows' source: 'gpu', or 'timed' for the timed stand-in engine."""
        return 'timed' if self.engine == 'timed' else 'gpu'


class _Point:
    """
    What one measured point collects.

    Frames submitted in the measured span (feeder threads) and the worker's outputs (the client's
    receiver thread).
    """

    def __init__(self, cameras: int, measure_ns: int):
        self.cameras = cameras
        self.measure_ns = measure_ns
        self.lock = threading.Lock()
        # (camera, seq) -> release_ns, measured frames only
        self.released: dict[tuple[int, int], int] = {}
        self.refused = 0
        self.outputs: list[tuple] = []
        self.lateness_ns: list[int] = []
        self.submit_ns: list[int] = []

    def submitted(self, camera: int, seq: int | None, due: int, late: int, took: int) -> None:
        if due < self.measure_ns:
            return  # warm-up
        with self.lock:
            self.lateness_ns.append(late)
            self.submit_ns.append(took)
            if seq is None:
                self.refused += 1
            else:
                self.released[(camera, seq)] = due

    def resolved(self) -> bool:
        with self.lock:
            return (sum((output[1], output[2]) in self.released for output in self.outputs) >=
                    len(self.released))


class _Router:
    """
    A client's output callback: hands outputs to the point being measured.

    It names each output's camera by its number in the whole sweep (``cameras[i]`` for the
    worker's camera i).
    """

    def __init__(self, cameras: list[int]):
        self.cameras = cameras
        self.point: _Point | None = None

    def __call__(self, outputs: list[tuple]) -> None:
        point = self.point
        if point is not None:
            cameras = self.cameras
            with point.lock:
                point.outputs.extend((kind, cameras[local], seq, time_ns, payload)
                                     for kind, local, seq, time_ns, payload in outputs)


@dataclass
class _Fleet:
    """The scheduler workers of one policy and where each camera's frames go."""

    clients: list[WorkerClient]
    routers: list[_Router]
    #: camera -> (its worker's client, its index there)
    targets: list[tuple[WorkerClient, int]]

    def measure(self, point: '_Point | None') -> None:
        for router in self.routers:
            router.point = point

    def close(self) -> None:
        for client in self.clients:
            client.close()


def _feed(targets: list[tuple[WorkerClient, int]], cameras: list[int], phases: list[float],
          period_ns: float, start_ns: int, end_ns: int, image: np.ndarray, point: _Point,
          copy_every_frame: bool) -> None:
    """
    Run one feeder thread until ``end_ns``.

    It releases frame k of each camera in ``cameras`` at start + phase + k x period until
    ``end_ns``. It sleeps until a frame is due (never spins: a spinning thread would hold the GIL
    the other feeders need).
    """
    heap = [(start_ns + round(phase), camera, 0, phase) for camera, phase in zip(cameras, phases)]
    heapq.heapify(heap)
    while heap and heap[0][0] < end_ns:
        due, camera, k, phase = heap[0]
        wait = (due - time.monotonic_ns()) / 1e9
        if wait > 0:
            time.sleep(wait)
        heapq.heapreplace(heap,
                          (start_ns + round(phase + (k + 1) * period_ns), camera, k + 1, phase))
        start = time.monotonic_ns()
        client, local = targets[camera]
        seq, _ = client.submit(local, image, 'rgb8', due, unchanged=not copy_every_frame)
        point.submitted(camera, seq, due, start - due, time.monotonic_ns() - start)


def _row(point: _Point, policy: str, setting: CapacitySetting, before: dict, after: dict) -> dict:
    """Return a measured point's row (``before``, ``after``: statistics summed over the GPUs)."""
    deadline_ns = round(setting.deadline_ms * 1e6)
    latencies, completed, missed, dropped = [], 0, 0, point.refused
    with point.lock:
        outputs = list(point.outputs)
        released = dict(point.released)
        lateness = np.array(point.lateness_ns or [0], dtype=np.int64)
        submit = np.array(point.submit_ns or [0], dtype=np.int64)
    for kind, camera, seq, time_ns, _ in outputs:
        release = released.get((camera, seq))
        if release is None:
            continue  # a warm-up frame
        if kind == DONE:
            completed += 1
            latency = time_ns - release
            latencies.append(latency)
            missed += latency > deadline_ns
        else:
            dropped += 1
    total = len(released) + point.refused
    lat = np.array(latencies or [0], dtype=np.int64) / 1e6
    span_ns = setting.seconds * 1e9
    delta = {key: after['host_totals'][key] - before['host_totals'][key]
             for key in after['host_totals']}
    launches = after['launches'] - before['launches']
    kernels = after['kernel_launches'] - before['kernel_launches']
    host_ns = after['host_work_ns'] - before['host_work_ns']
    # the workers' loop time (summed over them) neither blocked waiting for work nor metered
    unmetered_ns = max(0, after['time_ns'] - before['time_ns'] - delta['blocked_ns'] - host_ns)
    polls = max(1, delta['polls'])
    return {'cameras': point.cameras, 'policy': policy, 'source': setting.measured,
            'released': total,
            'completed': completed, 'missed': missed, 'dropped': dropped,
            'miss_ratio': round((missed + dropped) / total, 6) if total else 0.0,
            'p50_ms': round(float(np.percentile(lat, 50)), 3),
            'p99_ms': round(float(np.percentile(lat, 99)), 3),
            'gpu_busy': round(min(1.0, (after['busy_ns'] - before['busy_ns'])
                                  / (span_ns * setting.gpus)), 4),
            'mean_batch': (round((after['frames_launched'] - before['frames_launched'])
                                 / launches, 3) if launches else 0.0),
            'host_us_per_frame': round(host_ns / 1000 / max(1, total), 2),
            # the worker's host time per kernel the GPU ran (a fused launch of 32 frames is one
            # kernel per layer)
            'host_us_per_kernel': round(host_ns / 1000 / max(1, kernels), 2),
            'kernels_per_frame': round(kernels / max(1, completed), 3),
            # the serving loop's own time (system calls, polls that found nothing, statistics)
            # and its turns
            'unmetered_us_per_frame': round(unmetered_ns / 1000 / max(1, total), 2),
            # of it, the DEQUEUEs that launched nothing (the policy holding first layers back)
            'hold_us_per_frame': round(delta['hold_ns'] / 1000 / max(1, total), 2),
            'dequeues_per_frame': round(delta['dequeues'] / max(1, total), 3),
            'loop_turns_per_frame': round(delta['turns'] / max(1, total), 2),
            'completed_fps': round(completed / setting.seconds, 1),
            'on_time_fps': round((completed - missed) / setting.seconds, 1),
            'unresolved': total - completed - dropped,
            'feeder_late_p99_ms': round(float(np.percentile(lateness, 99)) / 1e6, 3),
            'feeder_late_max_ms': round(float(lateness.max()) / 1e6, 3),
            # a submit: the copy into the slot and the message to the worker
            'feeder_submit_p50_us': round(float(np.percentile(submit, 50)) / 1e3, 1),
            'feeder_submit_p99_us': round(float(np.percentile(submit, 99)) / 1e3, 1),
            # s3dnn rule 6 in the span: first-layer launches by what let them go, and by size
            'first_layer_launches': dict(after['first_layer_launches']
                                         - before['first_layer_launches']),
            'first_layer_batches': {int(size): count for size, count in sorted(
                (after['first_layer_batches'] - before['first_layer_batches']).items(),
                key=lambda item: int(item[0]))},
            # what the worker's polls found on average: busy streams (one completion check
            # each), launches in flight, tasks waiting for a decision
            'poll_streams': round(delta['polled_streams'] / polls, 2),
            'poll_inflight': round(delta['polled_inflight'] / polls, 2),
            'poll_ready': round(delta['polled_ready'] / polls, 2),
            # the workers' resident memory at the end of the span, and what it grew in the span
            'worker_mb': round(after['resident_bytes'] / 1e6, 1),
            'worker_growth_mb': round((after['resident_bytes'] - before['resident_bytes']) / 1e6,
                                      1),
            'host_totals': delta}


def _wait_stats(client: WorkerClient, after_ns: int, timeout_s: float = 5.0) -> dict:
    """Return the first statistics snapshot taken after ``after_ns``."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        stats = client.stats
        if stats is not None and stats['time_ns'] >= after_ns:
            return stats
        time.sleep(0.01)
    raise RuntimeError('the scheduler worker sent no statistics')


def _summed_stats(clients: list[WorkerClient], after_ns: int) -> dict:
    """Return the first statistics snapshots taken after ``after_ns``, summed over the workers."""
    snapshots = [_wait_stats(client, after_ns) for client in clients]
    total = {key: sum(stats[key] for stats in snapshots)
             for key in ('busy_ns', 'launches', 'kernel_launches', 'frames_launched',
                         'host_work_ns', 'time_ns', 'resident_bytes')}
    total['host_totals'] = {key: sum(stats['host_totals'][key] for stats in snapshots)
                            for key in snapshots[0]['host_totals']}
    for key in ('first_layer_launches', 'first_layer_batches'):
        total[key] = collections.Counter()
        for stats in snapshots:
            total[key].update(stats[key])
    return total


def run_point(fleet: _Fleet, count: int, policy: str, setting: CapacitySetting,
              image: np.ndarray, log=print) -> dict:
    """One measured point: the first ``count`` cameras, open-loop, on the fleet's workers."""
    rng = np.random.default_rng([setting.seed, count])
    period_ns = 1e9 / setting.fps
    phases = rng.uniform(0, period_ns, count).tolist()
    start_ns = time.monotonic_ns() + 200_000_000
    measure_ns = start_ns + round(setting.warmup_s * 1e9)
    end_ns = measure_ns + round(setting.seconds * 1e9)
    point = _Point(count, measure_ns)
    fleet.measure(point)
    feeders = max(1, min(setting.feeders, count))
    threads = [threading.Thread(target=_feed, name=f'feeder-{f}', args=(
        fleet.targets, list(range(f, count, feeders)), phases[f::feeders], period_ns, start_ns,
        end_ns, image, point, setting.copy_every_frame))
        for f in range(feeders)]
    gc.collect()
    # a collection over this point's outputs would hold the GIL for milliseconds: feeders late
    gc.disable()
    try:
        for thread in threads:
            thread.start()
        while time.monotonic_ns() < measure_ns:
            time.sleep(0.005)
        before = _summed_stats(fleet.clients, measure_ns)
        cpu_ns = time.process_time_ns()
        for thread in threads:
            thread.join()
        cpu_ns = time.process_time_ns() - cpu_ns
        after = _summed_stats(fleet.clients, end_ns)
        drained = time.monotonic() + setting.deadline_ms / 1000 + DRAIN_S
        while time.monotonic() < drained and not point.resolved():
            time.sleep(0.02)
    finally:
        gc.enable()
    row = _row(point, policy, setting, before, after)
    # this process (feeders, the clients' receivers) is the load generator: its CPU time shows
    # whether it could keep up (a late feeder counts against the scheduler)
    row['generator_cpu_us_per_frame'] = round(cpu_ns / 1000 / max(1, row['released']), 2)
    fleet.measure(None)
    log(f'  {policy:>10} {count:4d} cameras: miss {row["miss_ratio"]:.2%}, '
        f'p99 {row["p99_ms"]:.1f} ms, {row["completed_fps"]:.0f} frames/s, '
        f'GPU busy {row["gpu_busy"]:.0%}, batch {row["mean_batch"]:.1f}, '
        f'host {row["host_us_per_frame"]:.0f} µs/frame '
        f'({row["host_us_per_kernel"]:.0f} per kernel, {row["kernels_per_frame"]:.2f} a frame; '
        f'{row["unmetered_us_per_frame"]:.0f} more in the loop, '
        f'{row["loop_turns_per_frame"]:.1f} turns), '
        f'a poll found {row["poll_streams"]:.1f} busy streams and {row["poll_ready"]:.1f} ready, '
        f'feeders late p99 {row["feeder_late_p99_ms"]:.2f} ms, '
        f'generator {row["generator_cpu_us_per_frame"]:.0f} µs/frame of CPU, '
        f'worker {row["worker_mb"]:.0f} MB ({row["worker_growth_mb"]:+.1f} in the span)')
    time.sleep(SETTLE_S)
    return row


def knee(rows: list[dict]) -> int | None:
    """
    Return the largest camera count whose miss ratio is under 1%.

    That of every smaller count must be under 1% too.
    """
    best = None
    for row in sorted(rows, key=lambda row: row['cameras']):
        if row['miss_ratio'] >= KNEE_MISS_RATIO:
            break
        best = row['cameras']
    return best


def simulate_point(args: tuple) -> dict:
    """
    Return the simulated row of one point, as the measured rows are.

    ``args``: (camera count, policy, CapacitySetting, cost table JSON, host costs JSON or None),
    one tuple so that a process pool can map it.
    """
    count, policy, setting, costs_json, host_json = args
    costs = CostTable.from_json(costs_json, alexnet())
    host = HostCosts(**host_json) if host_json else None
    cameras = [Camera(f'cam{i}', setting.fps, setting.deadline_ms, setting.queue_depth)
               for i in range(count)]
    result = simulate_gpus(cameras, policy, costs, setting.seconds, setting.gpus,
                           workers_per_gpu=setting.workers_per_gpu,
                           seed=setting.seed, firm=setting.firm, host=host,
                           max_batch=setting.max_batch)
    return {'cameras': count, 'policy': policy, 'source': 'sim', 'released': result['released'],
            'completed': result['completed'], 'missed': result['missed'],
            'dropped': result['dropped'], 'miss_ratio': result['miss_ratio'],
            'p50_ms': result['p50_ms'], 'p99_ms': result['p99_ms'], 'gpu_busy': result['gpu_busy'],
            'mean_batch': result['mean_batch'], 'host_us_per_frame': None,
            'completed_fps': round(result['completed'] / setting.seconds, 1),
            'on_time_fps': round((result['completed'] - result['missed']) / setting.seconds, 1)}


def capacity_section(setting: CapacitySetting, cost_table_path: str, log=print,
                     on_row: Callable[[dict], None] | None = None) -> dict:
    """
    Run every policy over every count on the GPU, then the same points simulated.

    See the module docstring. ``on_row`` is given each measured row as soon as it is measured.
    """
    image = np.random.default_rng(setting.seed).integers(0, 256,
                                                         (setting.height, setting.width, 3),
                                                         np.uint8)
    # feeder threads waiting for the GIL would release frames late
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    largest = max(setting.counts)
    if setting.overload:
        largest = max(largest, round(largest * setting.overload))
    rows: list[dict] = []
    host_by_policy: dict[str, dict | None] = {}
    costs_json, device, scheduler = None, None, None
    devices = list(range(setting.device_id, setting.device_id + setting.gpus))
    placement = place_workers([setting.fps] * largest, devices, setting.workers_per_gpu)
    served = {slot: [i for i in range(largest) if placement[i] == slot]
              for slot in sorted(set(placement))}
    shares = gpu_shares(served)
    for policy in setting.policies:
        fleet = _Fleet([], [], [None] * largest)
        try:
            for slot, cameras in served.items():
                spec = WorkerSpec(cameras=tuple(CameraSpec(f'cam{i}',
                                                           round(setting.deadline_ms * 1e6),
                                                           setting.queue_depth) for i in cameras),
                                  policy=policy, engine=setting.engine, device_id=slot.device,
                                  cost_table=cost_table_path, max_inflight=setting.max_inflight,
                                  max_batch=setting.max_batch, firm_deadlines=setting.firm,
                                  stats_period_s=0.05, gpu_share=shares[slot])
                router = _Router(cameras)
                client = WorkerClient(spec, router)
                fleet.clients.append(client)
                fleet.routers.append(router)
                for local, camera in enumerate(cameras):
                    fleet.targets[camera] = (client, local)
                log(f'{policy}: {slot.label(setting.workers_per_gpu)} worker pid {client.pid}, '
                    f'{client.info["why"]}, scheduler modules {client.info["scheduler"]}')
            costs_json = fleet.clients[0].info['cost_table']
            device = fleet.clients[0].info['device']
            scheduler = fleet.clients[0].info['scheduler']
            policy_rows = []
            for count in sorted(setting.counts):
                policy_rows.append(run_point(fleet, count, policy, setting, image, log))
                if on_row:
                    on_row(policy_rows[-1])
            found = knee(policy_rows)
            if setting.overload and found:
                extra = round(found * setting.overload)
                if extra not in setting.counts:
                    policy_rows.append(run_point(fleet, extra, policy, setting, image, log))
                    if on_row:
                        on_row(policy_rows[-1])
        finally:
            fleet.close()
        totals = {}
        for row in policy_rows:
            for key, value in row['host_totals'].items():
                totals[key] = totals.get(key, 0) + value
        host = host_costs_from(totals) if totals else None
        host_by_policy[policy] = host.to_json() if host else None
        rows += policy_rows
    jobs = [(row['cameras'], row['policy'], setting, costs_json, host_by_policy[row['policy']])
            for row in rows]
    with ProcessPoolExecutor(max(1, min(len(jobs), (os.cpu_count() or 2) - 1))) as pool:
        rows += list(pool.map(simulate_point, jobs))
    knees = {policy: {source: knee([r for r in rows
                                    if r['policy'] == policy and r['source'] == source])
                      for source in (setting.measured, 'sim')} for policy in setting.policies}
    return {'device': device, 'scheduler': scheduler, 'measured': setting.measured,
            'gpus': setting.gpus,
            'workers_per_gpu': setting.workers_per_gpu, 'width': setting.width,
            'height': setting.height, 'fps': setting.fps,
            'deadline_ms': setting.deadline_ms,
            'seconds': setting.seconds, 'feeders': setting.feeders,
            'copy_every_frame': setting.copy_every_frame,
            'queue_depth': setting.queue_depth, 'max_batch': setting.max_batch,
            'firm': setting.firm, 'host_costs': host_by_policy, 'knees': knees, 'rows': rows,
            'cost_table': costs_json}


def measured_source(section: dict) -> str:
    """
    Return the source of a section's (or record's) measured rows: 'gpu' or 'timed'.

    Records written before the timed engine existed have no ``measured`` key: theirs were 'gpu'.
    """
    return section.get('measured', 'gpu')


def format_capacity(section: dict) -> str:
    from .cli import text_table
    header = ['policy', 'cameras', 'source', 'released', 'completed', 'missed', 'dropped',
              'miss %', 'p50 ms', 'p99 ms', 'GPU busy', 'batch', 'host µs/frame', 'frames/s',
              'on time/s']
    rows = []
    for row in sorted(section['rows'], key=lambda r: (r['policy'], r['cameras'], r['source'])):
        rows.append([row['policy'], str(row['cameras']), row['source'], str(row['released']),
                     str(row['completed']), str(row['missed']), str(row['dropped']),
                     f'{row["miss_ratio"]:.2%}', f'{row["p50_ms"]:.2f}', f'{row["p99_ms"]:.2f}',
                     f'{row["gpu_busy"]:.0%}', f'{row["mean_batch"]:.2f}',
                     '-' if row['host_us_per_frame'] is None
                     else f'{row["host_us_per_frame"]:.0f}',
                     f'{row["completed_fps"]:.0f}', f'{row["on_time_fps"]:.0f}'])
    measured = measured_source(section)
    knees = ', '.join(f'{policy} {k[measured]} (simulated {k["sim"]})'
                      for policy, k in section['knees'].items())
    title = (f'capacity: {section["width"]}x{section["height"]} rgb8 at {section["fps"]:g} FPS, '
             f'deadline {section["deadline_ms"]:g} ms, {section["seconds"]:g} s per point; '
             f'knees (< 1% missed): {knees}')
    return text_table(title, header, rows)


def plot_capacity(section: dict, title: str, path: str) -> None:
    """
    Plot miss ratio and p99 latency against the camera count.

    Measured solid (on the GPU, or with the timed engine), simulator dashed, per policy.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, (misses, latency) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    policies = list(section['knees'])
    measured = measured_source(section)
    names = {'gpu': 'GPU', 'timed': 'timed engine', 'sim': 'simulated'}
    for index, policy in enumerate(policies):
        for source, style in ((measured, '-'), ('sim', '--')):
            rows = sorted((r for r in section['rows']
                           if r['policy'] == policy and r['source'] == source),
                          key=lambda r: r['cameras'])
            counts = [r['cameras'] for r in rows]
            label = f'{policy} ({names[source]})'
            color = colors[index % len(colors)]
            misses.plot(counts, [100 * r['miss_ratio'] for r in rows], style, marker='o',
                        color=color, label=label)
            latency.plot(counts, [r['p99_ms'] for r in rows], style, marker='o', color=color,
                         label=label)
    latency.axhline(section['deadline_ms'], linestyle=':', color='grey', label='deadline')
    misses.axhline(100 * KNEE_MISS_RATIO, linestyle=':', color='grey')
    misses.set(xlabel='cameras', ylabel='missed + dropped frames (%)', ylim=(-2, 102))
    latency.set(xlabel='cameras', ylabel='p99 latency of completed frames (ms)', yscale='log')
    misses.legend(fontsize=8)
    latency.legend(fontsize=8)
    figure.suptitle(title)
    try:
        figure.savefig(path, dpi=110)
    finally:
        plt.close(figure)
