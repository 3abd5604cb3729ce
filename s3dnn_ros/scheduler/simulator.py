"""
Discrete-event simulation of cameras, the dispatcher, its host thread and a GPU.

It runs on a virtual clock.

The GPU model: each stream runs its launches in order; the launches at the heads of all streams run
together. With demands d_i = min(tbRatio_i, 1), kernels whose demands sum to S <= 1 all progress at
solo speed (their cost-table duration); when S > 1 they share the GPU proportionally and each
progresses at 1/S of solo speed.

The host model: the dispatcher runs on one host thread, which does one thing at a time and is
charged :class:`~s3dnn_ros.engine.costs.HostCosts`: ``frame_us`` for every frame it takes in,
``completion_us`` for every launch it retires, ``decision_us`` for every dispatch round it decides,
and ``launch_us`` (plus ``upload_us`` per image of a first-layer launch) for every launch it
issues; a launch reaches the GPU when its issue is paid for. Frames arriving while the host is busy
wait for it (their latency counts from their arrival); a launch that completes while the host is
busy is noticed when it is free. So a scheduler that needs more host time per frame than the frame
interval falls behind, as it would live. The dispatcher's clock is the host's.

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
from typing import Callable

import numpy as np

from .dispatcher import Dispatcher, summarize
from .job import Frame, Launch, Pipeline
from .placement import place
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
    __slots__ = ('launch', 'issue_ns', 'work', 'demand')

    def __init__(self, launch: Launch, issue_ns: int):
        self.launch = launch
        self.issue_ns = issue_ns
        self.work = float(launch.cost_ns)
        self.demand = min(launch.tb_ratio, 1.0)


class SimulatedGpu:
    """
    Dispatcher backend: the GPU model on a virtual clock and the host clock.

    The host clock pays for launches (see the module docstring). ``now_ns`` is the host's clock;
    ``charge`` advances it.
    """

    #: every stream id is a stream of its own
    streams = None

    def __init__(self, host: HostCosts = NOMINAL_HOST):
        self.launch_ns = round(host.launch_us * 1000)
        self.upload_ns = round(host.upload_us * 1000)
        self.decision_ns = round(host.decision_us * 1000)
        self.now = 0          # the GPU model's time
        self.host_clock = 0   # when the host thread is next free
        self._streams: dict[int, deque[_Kernel]] = {}  # only streams with kernels queued
        self._busy = 0
        self._last_group = None

    def now_ns(self) -> int:
        return self.host_clock

    def charge(self, ns: int) -> None:
        self.host_clock += ns

    def open_pipeline(self, pipeline: Pipeline) -> None:
        pass

    def launch(self, launch: Launch) -> None:
        # the first launch of a round pays for its decision
        if launch.group is not self._last_group:
            self._last_group = launch.group
            self.host_clock += self.decision_ns
        self.host_clock += (self.launch_ns
                            + (self.upload_ns * launch.batch if launch.layer == 0 else 0))
        kernel = _Kernel(launch, max(self.host_clock, self.now))
        launch.handle = kernel
        self._streams.setdefault(launch.stream, deque()).append(kernel)

    def done(self, launch: Launch) -> bool:
        return launch.handle.work <= 0

    def result(self, frame: Frame) -> None:
        return None

    def busy_ns(self) -> int:
        return self._busy

    def _running(self) -> list[_Kernel]:
        now = self.now
        return [queue[0] for queue in self._streams.values() if queue[0].issue_ns <= now]

    @staticmethod
    def _rate(running: list[_Kernel]) -> float:
        total = sum(kernel.demand for kernel in running)
        return 1.0 if total <= 1.0 else 1.0 / total

    def next_event_ns(self) -> int | None:
        """When the next launch completes or becomes eligible to run (None: nothing on the GPU)."""
        now = self.now
        times = [queue[0].issue_ns for queue in self._streams.values() if queue[0].issue_ns > now]
        running = self._running()
        if running:
            rate = self._rate(running)
            times.append(now + max(1, math.ceil(min(kernel.work for kernel in running) / rate)))
        return min(times) if times else None

    def advance(self, t: int) -> list[Launch]:
        """
        Run the GPU up to ``t`` (no later than :meth:`next_event_ns`).

        Returns launches finished at ``t``.
        """
        running = self._running()
        elapsed = t - self.now
        if running and elapsed > 0:
            rate = self._rate(running)
            for kernel in running:
                kernel.work -= elapsed * rate
            self._busy += elapsed
        self.now = t
        finished = []
        for stream, queue in list(self._streams.items()):
            if queue[0].issue_ns <= t and queue[0].work <= 0.5:
                kernel = queue.popleft()
                kernel.work = 0.0
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


#: loop turns between two looks at the wall clock for ``progress``
PROGRESS_TURNS = 4096


def simulate(cameras: list[Camera], policy: str, costs: CostTable, seconds: float,
             firm: bool = False, seed: int = 0, host: HostCosts | None = None,
             jitter_ms: float = DEFAULT_JITTER_MS,
             max_batch: int = DEFAULT_MAX_BATCH, progress: Callable[[float], None] | None = None,
             progress_every_s: float = 10.0) -> dict:
    """
    Run one policy over the cameras' frames; returns the summary the ``s3dnn-sim`` CLI prints.

    ``host``: the host costs to charge, by default the cost table's measured ones, else
    NOMINAL_HOST. ``progress``, if given, is called with the simulated seconds so far about every
    ``progress_every_s`` of wall time.
    """
    result, _, _ = _simulate(cameras, policy, costs, seconds, firm, seed, host, jitter_ms,
                             max_batch, progress, progress_every_s)
    return result


def simulate_gpus(cameras: list[Camera], policy: str, costs: CostTable, seconds: float,
                  gpus: int, seed: int = 0, progress: Callable[[int, float], None] | None = None,
                  **options) -> dict:
    """
    Run one policy on ``gpus`` GPUs, each with its own scheduler and host thread.

    The cameras are placed as the node places them (:func:`.placement.place`, by frame rate); each
    GPU's cameras are simulated with seed ``seed + gpu * GPU_SEED_STRIDE`` (one GPU: ``seed``, the
    same run as :func:`simulate`). Returns :func:`simulate`'s summary over
    every camera (latency percentiles over all completed frames, ``gpu_busy`` the mean over the
    GPUs, ``mean_batch`` over all launches) plus ``gpus`` and ``per_gpu`` (each GPU's summary and
    cameras). ``progress(gpu, simulated seconds)`` as :func:`simulate`'s.
    """
    placement = place([camera.fps for camera in cameras], list(range(gpus)))
    results, pipelines, launches, frames = [], [], 0, 0
    for gpu in range(gpus):
        mine = [camera for camera, device in zip(cameras, placement) if device == gpu]
        if not mine:
            continue
        report = (lambda done_s, g=gpu: progress(g, done_s)) if progress else None
        result, dispatcher, _ = _simulate(mine, policy, costs, seconds,
                                          seed=seed + gpu * GPU_SEED_STRIDE,
                                          progress=report, **options)
        results.append({'gpu': gpu, 'cameras': [camera.name for camera in mine], **result})
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
        'gpus': gpus,
        'per_gpu': [{key: value for key, value in result.items() if key != 'per_camera'}
                    for result in results],
    }


def _simulate(cameras: list[Camera], policy: str, costs: CostTable, seconds: float,
              firm: bool = False, seed: int = 0, host: HostCosts | None = None,
              jitter_ms: float = DEFAULT_JITTER_MS, max_batch: int = DEFAULT_MAX_BATCH,
              progress: Callable[[float], None] | None = None,
              progress_every_s: float = 10.0) -> tuple[dict, Dispatcher, 'SimulatedGpu']:
    """Return :func:`simulate`'s summary, the dispatcher and the simulated GPU."""
    host = host or costs.host or NOMINAL_HOST
    gpu = SimulatedGpu(host)
    scheduler = make_policy(policy, costs, firm=firm, max_batch=max_batch)
    scheduler.host = host
    dispatcher = Dispatcher(scheduler, gpu)
    frame_ns, completion_ns = round(host.frame_us * 1000), round(host.completion_us * 1000)
    rng = np.random.default_rng(seed)
    end_ns = round(seconds * 1e9)
    arrivals: list[tuple[int, int, int]] = []
    schedules = []
    for index, camera in enumerate(cameras):
        dispatcher.add_pipeline(camera.name, round(camera.deadline_ms * 1e6), camera.queue_depth)
        period = 1e9 / camera.fps
        jitter = min(jitter_ms * 1e6, period / 4)
        schedules.append((rng.uniform(0, period), period, jitter,
                          np.random.default_rng([seed, index])))
    for index, schedule in enumerate(schedules):
        _push_arrival(arrivals, index, 0, schedule, end_ns)

    turns = 0
    report_at = time.monotonic() + progress_every_s
    while True:
        t = gpu.host_clock
        turns += 1
        if progress is not None and turns % PROGRESS_TURNS == 0 and time.monotonic() >= report_at:
            progress(min(t, end_ns) / 1e9)
            report_at = time.monotonic() + progress_every_s
        finished = gpu.advance_to(t)
        due = []
        while arrivals and arrivals[0][0] <= t:
            due.append(heapq.heappop(arrivals))
        for launch in finished:
            gpu.charge(completion_ns)
            dispatcher.complete(launch)
        for arrival_ns, index, k in due:
            gpu.charge(frame_ns)
            dispatcher.arrive(dispatcher.pipelines[index], arrival_ns)
            _push_arrival(arrivals, index, k + 1, schedules[index], end_ns)
        launches = dispatcher.launches
        dispatcher.pump()
        if finished or due or dispatcher.launches != launches:
            continue
        # idle: the host waits for the next completion, arrival or the end of a hold
        hold = scheduler.hold_until_ns if len(scheduler) else None
        candidates = [x for x in (gpu.next_event_ns(), arrivals[0][0] if arrivals else None, hold)
                      if x is not None and x > t]
        if not candidates:
            break
        gpu.host_clock = min(candidates)

    elapsed = max(gpu.now, gpu.host_clock, end_ns)
    total = summarize(dispatcher.pipelines)
    return {
        'released': total['released'], 'completed': total['completed'], 'missed': total['missed'],
        'dropped': total['dropped'], 'miss_ratio': total['miss_ratio'],
        'p50_ms': total['p50_ms'], 'p99_ms': total['p99_ms'],
        'throughput_fps': round(total['completed'] / seconds, 3),
        'gpu_busy': round(gpu.busy_ns() / elapsed, 6) if elapsed else 0.0,
        'mean_batch': round(dispatcher.mean_batch, 4),
        'per_camera': [{'name': camera.name, 'fps': camera.fps, 'deadline_ms': camera.deadline_ms,
                        **pipeline.stats.summary()}
                       for camera, pipeline in zip(cameras, dispatcher.pipelines)],
    }, dispatcher, gpu


def _push_arrival(arrivals: list, index: int, k: int, schedule: tuple, end_ns: int) -> None:
    phase, period, jitter, rng = schedule
    t = round(phase + k * period + rng.uniform(-jitter, jitter))
    if t < end_ns:
        heapq.heappush(arrivals, (max(t, 0), index, k))
