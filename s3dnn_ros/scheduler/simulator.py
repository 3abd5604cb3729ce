"""Discrete-event simulation of cameras, the dispatcher and a GPU, on a virtual clock.

The GPU model: each stream runs its launches in order; the launches at the heads of all streams run
together. With demands d_i = min(tbRatio_i, 1), kernels whose demands sum to S <= 1 all progress at
solo speed (their cost-table duration); when S > 1 they share the GPU proportionally and each
progresses at 1/S of solo speed. The host issues one launch every ``launch_overhead_us`` (the Python
+ driver cost of a launch), so policies that decide per kernel pay for it, as they would live.

Cameras release frames at ``fps`` with a seeded random phase and a seeded uniform jitter; arrivals
stop after ``seconds`` and the simulation drains, so every released frame ends completed or dropped.
The same inputs and seed give the same result.
"""
from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..engine.costs import CostTable
from .dispatcher import Dispatcher, summarize
from .job import Frame, Launch, Pipeline
from .policies import DEFAULT_MAX_BATCH, make_policy

DEFAULT_LAUNCH_OVERHEAD_US = 8.0
DEFAULT_JITTER_MS = 0.5


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
    """Dispatcher backend on a virtual clock (see the module docstring for the model)."""

    def __init__(self, launch_overhead_us: float = DEFAULT_LAUNCH_OVERHEAD_US):
        self.launch_overhead_ns = round(launch_overhead_us * 1000)
        self.now = 0
        self._host_free = 0
        self._streams: dict[int, deque[_Kernel]] = {}
        self._busy = 0
        self.idle_with_work_ns = 0

    def now_ns(self) -> int:
        return self.now

    def open_pipeline(self, pipeline: Pipeline) -> None:
        pass

    def launch(self, launch: Launch) -> None:
        issue = max(self.now, self._host_free) + self.launch_overhead_ns
        self._host_free = issue
        kernel = _Kernel(launch, issue)
        launch.handle = kernel
        self._streams.setdefault(launch.stream, deque()).append(kernel)

    def done(self, launch: Launch) -> bool:
        return launch.handle.work <= 0

    def result(self, frame: Frame) -> None:
        return None

    def busy_ns(self) -> int:
        return self._busy

    def _running(self) -> list[_Kernel]:
        return [queue[0] for queue in self._streams.values() if queue and queue[0].issue_ns <= self.now]

    @staticmethod
    def _rate(running: list[_Kernel]) -> float:
        total = sum(kernel.demand for kernel in running)
        return 1.0 if total <= 1.0 else 1.0 / total

    def next_event_ns(self) -> int | None:
        """When the next launch completes or becomes eligible to run (None: nothing on the GPU)."""
        running = self._running()
        times = [queue[0].issue_ns for queue in self._streams.values() if queue and queue[0].issue_ns > self.now]
        if running:
            rate = self._rate(running)
            times.append(self.now + max(1, math.ceil(min(kernel.work for kernel in running) / rate)))
        return min(times) if times else None

    def advance(self, t: int) -> list[Launch]:
        """Run the GPU up to ``t`` (no later than :meth:`next_event_ns`); returns launches finished at ``t``."""
        running = self._running()
        elapsed = t - self.now
        if running and elapsed > 0:
            rate = self._rate(running)
            for kernel in running:
                kernel.work -= elapsed * rate
            self._busy += elapsed
        self.now = t
        finished = []
        for queue in self._streams.values():
            if queue and queue[0].issue_ns <= t and queue[0].work <= 0.5:
                kernel = queue.popleft()
                kernel.work = 0.0
                finished.append(kernel.launch)
        return finished


def simulate(cameras: list[Camera], policy: str, costs: CostTable, seconds: float, firm: bool = False,
             seed: int = 0, launch_overhead_us: float = DEFAULT_LAUNCH_OVERHEAD_US,
             jitter_ms: float = DEFAULT_JITTER_MS, max_batch: int = DEFAULT_MAX_BATCH) -> dict:
    """Run one policy over the cameras' frames; returns the summary the ``s3dnn-sim`` CLI prints."""
    gpu = SimulatedGpu(launch_overhead_us)
    dispatcher = Dispatcher(make_policy(policy, costs, firm=firm, max_batch=max_batch), gpu)
    rng = np.random.default_rng(seed)
    end_ns = round(seconds * 1e9)
    arrivals: list[tuple[int, int, int]] = []
    schedules = []
    for index, camera in enumerate(cameras):
        dispatcher.add_pipeline(camera.name, round(camera.deadline_ms * 1e6), camera.queue_depth, camera.fps)
        period = 1e9 / camera.fps
        jitter = min(jitter_ms * 1e6, period / 4)
        schedules.append((rng.uniform(0, period), period, jitter, np.random.default_rng([seed, index])))
    for index, schedule in enumerate(schedules):
        _push_arrival(arrivals, index, 0, schedule, end_ns)

    while True:
        next_gpu = gpu.next_event_ns()
        next_arrival = arrivals[0][0] if arrivals else None
        if next_gpu is None and next_arrival is None:
            break
        t = min(x for x in (next_gpu, next_arrival) if x is not None)
        for launch in gpu.advance(t):
            dispatcher.complete(launch)
        while arrivals and arrivals[0][0] == t:
            _, index, k = heapq.heappop(arrivals)
            dispatcher.arrive(dispatcher.pipelines[index], t)
            _push_arrival(arrivals, index, k + 1, schedules[index], end_ns)
        dispatcher.pump()

    elapsed = max(gpu.now, end_ns)
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
    }


def _push_arrival(arrivals: list, index: int, k: int, schedule: tuple, end_ns: int) -> None:
    phase, period, jitter, rng = schedule
    t = round(phase + k * period + rng.uniform(-jitter, jitter))
    if t < end_ns:
        heapq.heappush(arrivals, (max(t, 0), index, k))
