"""
Discrete-event simulation of cameras, the dispatcher, its host thread and a GPU.

It runs on a virtual clock.

The GPU model: each stream runs its launches in order (a segment's layers as kernels one after
another); the kernels at the heads of all streams run together. With demands d_i = min(tbRatio_i,
1), kernels whose demands sum to S <= 1 all progress at solo speed (their cost-table duration);
when S > 1 they share the GPU proportionally and each progresses at 1/S of solo speed. When the
cost table says how much of a first-layer launch is its image copies (``CostTable.copy_ns``),
they run before its kernel on its stream but on the copy engine: they take none of the SMs, and
the copy engine runs the copies at stream heads one at a time, in the order they were issued (on
an H200 the copies of four launches side by side end one after another:
``bench/side_by_side.py``). A table without them keeps the copies inside the first kernel.

The host model: the dispatcher runs on one host thread, which does one thing at a time and is
charged :class:`~s3dnn_ros.engine.costs.HostCosts`: ``frame_us`` for every frame it takes in,
``completion_us`` for every launch it retires, ``decision_us`` for every dispatch round it decides,
and ``launch_us`` (plus ``upload_us`` per image of a first-layer launch) for every layer of a
launch it issues (a segment of d layers costs d); a launch reaches the GPU when its issue is paid
for. Frames arriving while the host is busy wait for it (their latency counts from their
arrival); a launch that completes while the host is busy is noticed when it is free. So a
scheduler that needs more host time per frame than the frame interval falls behind, as it would
live. The dispatcher's clock is the host's.

Several schedulers may share one GPU (the node's ``workers_per_gpu``): each has its own host
thread, dispatcher and cameras, and their kernels run on the one GPU model as if from one program
(the model knows no time-slicing between processes). Each then keeps its GPU load under 1/K of the
policy's target (``gpu_share``), as live workers do.

Cameras release frames at ``fps`` with a seeded random phase and a seeded uniform jitter; arrivals
stop after ``seconds`` and the simulation drains, so every released frame ends completed or
dropped. The same inputs and seed give the same result.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import heapq
import math
import time
from typing import Callable, Sequence

import numpy as np

from .dispatcher import Dispatcher, summarize
from .job import Frame, Launch, Pipeline
from .placement import place_workers
from .policies import DEFAULT_MAX_BATCH, make_policy
from ..engine.costs import CostTable, HostCosts, NOMINAL_HOST

DEFAULT_JITTER_MS = 0.5
#: the seeds of the GPUs of :func:`simulate_gpus` are this far apart
GPU_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class Camera:
    name: str
    fps: float
    deadline_ms: float
    queue_depth: int = 1


class _Kernel:
    """
    One kernel layer of a launch, or its image copies (a segment is kernels one after another).

    ``copy``: the copies, run on the copy engine.
    """

    __slots__ = ('launch', 'issue_ns', 'work', 'demand', 'owner', 'last', 'copy', 'order')

    def __init__(self, launch: Launch, issue_ns: int, owner: 'SimulatedGpu', cost_ns: int,
                 tb_ratio: float, last: bool = True, copy: bool = False):
        self.launch = launch
        self.issue_ns = issue_ns
        self.work = float(cost_ns)
        self.demand = 0.0 if copy else min(tb_ratio, 1.0)
        self.owner = owner  # the scheduler's backend that issued it
        self.last = last    # the launch is done when this kernel is
        self.copy = copy
        self.order = 0      # copies: when it was submitted, among all (the copy engine's order)


class GpuModel:
    """
    The GPU on a virtual clock: streams of kernels, run as the module docstring says.

    Streams are keyed by (scheduler, stream id), so schedulers sharing the GPU keep theirs apart.
    """

    def __init__(self):
        self.now = 0
        self._streams: dict[tuple[int, int], deque[_Kernel]] = {}  # only streams with kernels
        self._busy = 0
        self._submitted = 0

    def submit(self, key: tuple[int, int], kernel: _Kernel) -> None:
        self._submitted += 1
        kernel.order = self._submitted
        self._streams.setdefault(key, deque()).append(kernel)

    def busy_ns(self) -> int:
        return self._busy

    def _running(self) -> list[_Kernel]:
        now = self.now
        return [queue[0] for queue in self._streams.values() if queue[0].issue_ns <= now]

    @staticmethod
    def _rates(running: list[_Kernel]) -> tuple[float, _Kernel | None]:
        """Return the running kernels' speed (of solo speed) and the copy the copy engine runs."""
        total, copy = 0.0, None
        for kernel in running:
            if not kernel.copy:
                total += kernel.demand
            elif copy is None or kernel.order < copy.order:
                copy = kernel
        return 1.0 if total <= 1.0 else 1.0 / total, copy

    def next_event_ns(self) -> int | None:
        """When the next launch completes or becomes eligible to run (None: nothing on the GPU)."""
        now = self.now
        times = [queue[0].issue_ns for queue in self._streams.values() if queue[0].issue_ns > now]
        running = self._running()
        if running:
            rate, copy = self._rates(running)
            work = min((kernel.work for kernel in running if not kernel.copy), default=math.inf)
            first = min(work / rate, copy.work if copy is not None else math.inf)
            times.append(now + max(1, math.ceil(first)))
        return min(times) if times else None

    def advance(self, t: int) -> list[Launch]:
        """
        Run the GPU up to ``t`` (no later than :meth:`next_event_ns`).

        Returns launches finished at ``t``.
        """
        running = self._running()
        elapsed = t - self.now
        if running and elapsed > 0:
            rate, copy = self._rates(running)
            for kernel in running:
                if not kernel.copy:
                    kernel.work -= elapsed * rate
            if copy is not None:
                copy.work -= elapsed
            self._busy += elapsed
        self.now = t
        finished = []
        for stream, queue in list(self._streams.items()):
            if queue[0].issue_ns <= t and queue[0].work <= 0.5:
                kernel = queue.popleft()
                kernel.work = 0.0
                if kernel.last:
                    finished.append(kernel.launch)
                if not queue:
                    del self._streams[stream]
        return finished

    def advance_to(self, t: int) -> list[Launch]:
        """
        Run the GPU up to ``t`` however many events lie before it.

        Returns every launch finished.
        """
        finished = []
        while (event := self.next_event_ns()) is not None and event <= t:
            finished += self.advance(event)
        if t > self.now:
            finished += self.advance(t)
        return finished


class SimulatedGpu:
    """
    Dispatcher backend: one scheduler's host thread, issuing to a GPU model.

    The host clock pays for launches (see the module docstring). ``now_ns`` is the host's clock;
    ``charge`` advances it. ``gpu``: a model shared with other schedulers' backends (``index``
    tells them apart), else a GPU of its own. ``costs``: the table whose image copies
    (``CostTable.copy_ns``) a first-layer launch runs on the copy engine; None: the copies stay
    in the first kernel.
    """

    #: every stream id is a stream of its own
    streams = None

    def __init__(self, host: HostCosts = NOMINAL_HOST, gpu: GpuModel | None = None,
                 index: int = 0, costs: CostTable | None = None):
        self.costs = costs
        self.launch_ns = round(host.launch_us * 1000)
        self.upload_ns = round(host.upload_us * 1000)
        self.decision_ns = round(host.decision_us * 1000)
        self.gpu = gpu or GpuModel()
        self.index = index
        self.host_clock = 0   # when the host thread is next free
        self._last_group = None
        #: its launches the GPU finished, not yet noticed by its host thread
        self.finished: list[Launch] = []

    def now_ns(self) -> int:
        return self.host_clock

    def charge(self, ns: int) -> None:
        self.host_clock += ns

    def open_pipeline(self, pipeline: Pipeline) -> None:
        pass

    def stage(self, frames: list[Frame]) -> None:
        """Nothing: a modelled layer-0 launch includes its uploads, charged to its launch."""

    def launch(self, launch: Launch) -> None:
        # the first launch of a round pays for its decision
        if launch.group is not self._last_group:
            self._last_group = launch.group
            self.host_clock += self.decision_ns
        self.host_clock += (self.launch_ns * launch.depth
                            + (self.upload_ns * launch.batch if launch.layer == 0 else 0))
        issue, key = max(self.host_clock, self.gpu.now), (self.index, launch.stream)
        kernels = launch.kernels or ((launch.cost_ns, launch.tb_ratio),)
        copy_ns = (self.costs.copy_ns(launch.batch)
                   if self.costs is not None and launch.layer == 0 else 0)
        if copy_ns:
            self.gpu.submit(key, _Kernel(launch, issue, self, copy_ns, 0.0, last=False, copy=True))
            (cost, tb), *rest = kernels
            kernels = ((cost - copy_ns, tb), *rest)
        for number, (cost, tb) in enumerate(kernels, 1):
            kernel = _Kernel(launch, issue, self, cost, tb, last=number == len(kernels))
            self.gpu.submit(key, kernel)
        launch.handle = kernel  # the last

    def done(self, launch: Launch) -> bool:
        return launch.handle.work <= 0

    def results(self, frames: Sequence[Frame]) -> list[None]:
        return [None] * len(frames)

    def busy_ns(self) -> int:
        """Busy time of the GPU model (shared: every scheduler's kernels)."""
        return self.gpu.busy_ns()


#: loop turns between two looks at the wall clock for ``progress``
PROGRESS_TURNS = 4096


def simulate(cameras: list[Camera], policy: str, costs: CostTable, seconds: float,
             firm: bool = False, seed: int = 0, host: HostCosts | None = None,
             jitter_ms: float = DEFAULT_JITTER_MS,
             max_batch: int = DEFAULT_MAX_BATCH, progress: Callable[[float], None] | None = None,
             progress_every_s: float = 10.0,
             host_stall: tuple[float, float] | None = None) -> dict:
    """
    Run one policy over the cameras' frames; returns the summary the ``s3dnn-sim`` CLI prints.

    ``host``: the host costs to charge, by default the cost table's measured ones, else
    NOMINAL_HOST. ``progress``, if given, is called with the simulated seconds so far about every
    ``progress_every_s`` of wall time. ``host_stall`` (at_s, ms): the host thread stops for ms at
    its first turn at or after at_s (a collector pause, a page fault storm), once.
    """
    result, _, _ = _simulate([cameras], policy, costs, seconds, firm, seed, host, jitter_ms,
                             max_batch, progress, progress_every_s, host_stall)
    return result


def simulate_gpus(cameras: list[Camera], policy: str, costs: CostTable, seconds: float,
                  gpus: int, seed: int = 0, progress: Callable[[int, float], None] | None = None,
                  workers_per_gpu: int = 1, **options) -> dict:
    """
    Run one policy on ``gpus`` GPUs, each with ``workers_per_gpu`` schedulers and host threads.

    The cameras are placed as the node places them (:func:`.placement.place_workers`, by frame
    rate); each GPU's cameras are simulated with seed ``seed + gpu * GPU_SEED_STRIDE`` (one GPU,
    one worker: ``seed``, the same run as :func:`simulate`). Returns :func:`simulate`'s summary
    over every camera (latency percentiles over all completed frames, ``gpu_busy`` the mean over
    the GPUs, ``mean_batch`` over all launches) plus ``gpus``, ``workers_per_gpu`` and
    ``per_gpu`` (each GPU's summary, cameras and workers used). ``progress(gpu, simulated
    seconds)`` as :func:`simulate`'s.
    """
    placement = place_workers([camera.fps for camera in cameras], list(range(gpus)),
                              workers_per_gpu)
    results, pipelines, launches, frames = [], [], 0, 0
    for gpu in range(gpus):
        workers = [mine for worker in range(workers_per_gpu)
                   if (mine := [camera for camera, slot in zip(cameras, placement)
                                if slot == (gpu, worker)])]
        if not workers:
            continue
        report = (lambda done_s, g=gpu: progress(g, done_s)) if progress else None
        result, dispatchers, _ = _simulate(workers, policy, costs, seconds,
                                           seed=seed + gpu * GPU_SEED_STRIDE,
                                           progress=report, **options)
        results.append({'gpu': gpu, 'cameras': [camera.name for mine in workers
                                                for camera in mine],
                        'workers': len(workers), **result})
        for dispatcher in dispatchers:
            pipelines += dispatcher.pipelines
            launches += dispatcher.launches
            frames += dispatcher.frames_launched
    total = summarize(pipelines)
    by_name = {row['name']: row for result in results for row in result['per_camera']}
    return {
        'released': total['released'], 'completed': total['completed'], 'missed': total['missed'],
        'dropped': total['dropped'], 'miss_ratio': total['miss_ratio'],
        'p50_ms': total['p50_ms'], 'p99_ms': total['p99_ms'],
        'throughput_fps': round(total['completed'] / seconds, 3),
        'gpu_busy': round(sum(r['gpu_busy'] for r in results) / gpus, 6),
        'mean_batch': round(frames / launches, 4) if launches else 0.0,
        'per_camera': [by_name[camera.name] for camera in cameras],
        'gpus': gpus, 'workers_per_gpu': workers_per_gpu,
        'per_gpu': [{key: value for key, value in result.items() if key != 'per_camera'}
                    for result in results],
    }


@dataclass
class _Host:
    """One scheduler sharing the simulated GPU: its backend (host thread) and its cameras."""

    backend: SimulatedGpu
    dispatcher: Dispatcher
    cameras: list[Camera]
    schedules: list[tuple]
    arrivals: list[tuple[int, int, int]]
    #: (when, how long) the host thread stops once (``host_stall``), None when it does not
    stall: tuple[int, int] | None = None


def _simulate(workers: list[list[Camera]], policy: str, costs: CostTable, seconds: float,
              firm: bool = False, seed: int = 0, host: HostCosts | None = None,
              jitter_ms: float = DEFAULT_JITTER_MS, max_batch: int = DEFAULT_MAX_BATCH,
              progress: Callable[[float], None] | None = None,
              progress_every_s: float = 10.0, host_stall: tuple[float, float] | None = None
              ) -> tuple[dict, list[Dispatcher], GpuModel]:
    """
    Return :func:`simulate`'s summary, the dispatchers and the GPU model.

    ``workers``: the cameras of each scheduler sharing the one GPU. The host threads take turns in
    the order of their clocks (ties: the first worker), so the GPU model only moves forward.
    ``host_stall``: as :func:`simulate`'s, on every host thread.
    """
    host = host or costs.host or NOMINAL_HOST
    model = GpuModel()
    frame_ns, completion_ns = round(host.frame_us * 1000), round(host.completion_us * 1000)
    rng = np.random.default_rng(seed)
    end_ns = round(seconds * 1e9)
    hosts: list[_Host] = []
    index = 0  # of the camera among every worker's, for its jitter's seed
    for number, cameras in enumerate(workers):
        scheduler = make_policy(policy, costs, firm=firm, max_batch=max_batch)
        scheduler.host = host
        scheduler.gpu_share = 1 / len(workers)
        backend = SimulatedGpu(host, model, number, costs)
        dispatcher = Dispatcher(scheduler, backend)
        schedules = []
        for camera in cameras:
            dispatcher.add_pipeline(camera.name, round(camera.deadline_ms * 1e6),
                                    camera.queue_depth)
            period = 1e9 / camera.fps
            jitter = min(jitter_ms * 1e6, period / 4)
            schedules.append((rng.uniform(0, period), period, jitter,
                              np.random.default_rng([seed, index])))
            index += 1
        arrivals: list[tuple[int, int, int]] = []
        for pipeline, schedule in enumerate(schedules):
            _push_arrival(arrivals, pipeline, 0, schedule, end_ns)
        stall = (None if host_stall is None
                 else (round(host_stall[0] * 1e9), round(host_stall[1] * 1e6)))
        hosts.append(_Host(backend, dispatcher, cameras, schedules, arrivals, stall))

    active = list(hosts)
    turns = 0
    report_at = time.monotonic() + progress_every_s
    while active:
        current = min(active, key=lambda h: h.backend.host_clock)
        backend, dispatcher, arrivals = current.backend, current.dispatcher, current.arrivals
        if current.stall is not None and backend.host_clock >= current.stall[0]:
            backend.charge(current.stall[1])
            current.stall = None
            continue
        t = backend.host_clock
        turns += 1
        if progress is not None and turns % PROGRESS_TURNS == 0 and time.monotonic() >= report_at:
            progress(min(t, end_ns) / 1e9)
            report_at = time.monotonic() + progress_every_s
        for launch in model.advance_to(t):
            launch.handle.owner.finished.append(launch)
        finished, backend.finished = backend.finished, []
        due = []
        while arrivals and arrivals[0][0] <= t:
            due.append(heapq.heappop(arrivals))
        for launch in finished:
            backend.charge(completion_ns)
            dispatcher.complete(launch)
        for arrival_ns, pipeline, k in due:
            backend.charge(frame_ns)
            dispatcher.arrive(dispatcher.pipelines[pipeline], arrival_ns)
            if dispatcher.chain_ready():
                dispatcher.pump()
            _push_arrival(arrivals, pipeline, k + 1, current.schedules[pipeline], end_ns)
        launches = dispatcher.launches
        dispatcher.pump()
        if finished or due or dispatcher.launches != launches:
            continue
        # idle: the host waits for the next completion, arrival or the end of a hold
        scheduler = dispatcher.policy
        hold = scheduler.hold_until_ns if len(scheduler) else None
        candidates = [x for x in (model.next_event_ns(), arrivals[0][0] if arrivals else None,
                                  hold)
                      if x is not None and x > t]
        if candidates:
            backend.host_clock = min(candidates)
        else:
            active.remove(current)

    elapsed = max(model.now, *(h.backend.host_clock for h in hosts), end_ns)
    dispatchers = [h.dispatcher for h in hosts]
    total = summarize([pipeline for d in dispatchers for pipeline in d.pipelines])
    launched = sum(d.launches for d in dispatchers)
    return {
        'released': total['released'], 'completed': total['completed'], 'missed': total['missed'],
        'dropped': total['dropped'], 'miss_ratio': total['miss_ratio'],
        'p50_ms': total['p50_ms'], 'p99_ms': total['p99_ms'],
        'throughput_fps': round(total['completed'] / seconds, 3),
        'gpu_busy': round(model.busy_ns() / elapsed, 6) if elapsed else 0.0,
        'mean_batch': round(sum(d.frames_launched for d in dispatchers) / launched, 4)
        if launched else 0.0,
        'per_camera': [{'name': camera.name, 'fps': camera.fps, 'deadline_ms': camera.deadline_ms,
                        **pipeline.stats.summary()}
                       for h in hosts
                       for camera, pipeline in zip(h.cameras, h.dispatcher.pipelines)],
    }, dispatchers, model


def _push_arrival(arrivals: list, index: int, k: int, schedule: tuple, end_ns: int) -> None:
    phase, period, jitter, rng = schedule
    t = round(phase + k * period + rng.uniform(-jitter, jitter))
    if t < end_ns:
        heapq.heappush(arrivals, (max(t, 0), index, k))
