"""
The timed engine: a stand-in for a GPU that takes a cost table's time and computes nothing.

A launch of layers ``first`` .. ``last`` for B frames ends ``sum(cost_ns(layer, B))`` after it
starts, and starts when it is issued or when the launch before it ends, whichever is later: one
launch at a time, in issue order, whatever its stream (a GPU that never runs two kernels side by
side, so a policy that counts on concurrent kernels gets less from it than from a real GPU).
Every result is zeros (score 0 for class 0). Its host calls do little: what a benchmark or a node
measures with it is the host side, the scheduler and everything around it, on a machine without
a GPU, at a GPU's pace (``s3dnn-bench --sections capacity --engine timed --cost-table FILE``;
the node's ``engine: timed``).

Kernel launches are counted as the CUDA engine counts them: one per layer, or several where a
launch has more frames than the table's largest batch for that layer (``CostTable.kernel_batch``).
"""
from __future__ import annotations

import time
from typing import Hashable, Sequence

import numpy as np

from .base import check_image, Completion, Engine
from .costs import CostTable


class TimedCompletion(Completion):
    """A launch that is done once the host clock passes its end."""

    __slots__ = ('start_ns', 'end_ns')

    def __init__(self, start_ns: int, end_ns: int):
        self.start_ns, self.end_ns = start_ns, end_ns

    def done(self) -> bool:
        return time.monotonic_ns() >= self.end_ns

    def wait(self) -> None:
        time.sleep(max(0.0, (self.end_ns - time.monotonic_ns()) / 1e9))

    def interval(self) -> tuple[int, int]:
        """Return (start_ns, end_ns) on ``time.monotonic_ns``'s clock."""
        return self.start_ns, self.end_ns


class TimedEngine(Engine):
    """Launches take ``costs``' time, one after another; results are zeros."""

    name = 'timed'
    #: stream ids are taken as the CUDA engine's pool takes them; the timing ignores them
    streams = 16

    def __init__(self, costs: CostTable):
        super().__init__(costs.network)
        self.costs = costs
        self._free_ns = 0  # when the last launch issued ends
        self._staged: dict[Hashable, bool] = {}  # open pipeline -> an image is staged
        # pipeline -> (image, encoding) last checked: a ring slot's view comes again and again, and
        # is checked once, as the CUDA engine checks a pinned view once
        self._checked: dict[Hashable, tuple[np.ndarray, str]] = {}
        self._result = np.zeros((2, self.layers[-1].k), np.float32)
        self._kernel_batch = [costs.kernel_batch(i) for i in range(len(self.layers))]

    @property
    def device_name(self) -> str:
        return f'timed ({self.costs.gpu})'

    def cost_table(self) -> CostTable:
        return self.costs

    def open_pipeline(self, pid: Hashable) -> None:
        if pid in self._staged:
            raise ValueError(f'pipeline {pid!r} is already open')
        self._staged[pid] = False

    def close_pipeline(self, pid: Hashable) -> None:
        self._staged.pop(pid, None)
        self._checked.pop(pid, None)

    def set_input(self, pid: Hashable, image: np.ndarray, encoding: str) -> None:
        """Stage ``image`` (checked as the other engines check it; its pixels are not read)."""
        if pid not in self._staged:
            raise ValueError(f'pipeline {pid!r} is not open')
        last = self._checked.get(pid)
        if last is None or last[0] is not image or last[1] != encoding:
            check_image(image, encoding)
            self._checked[pid] = (image, encoding)
        self._staged[pid] = True

    def launch(self, layer_index: int, pids: Sequence[Hashable], stream: int) -> TimedCompletion:
        return self.launch_layers(layer_index, 1, pids, stream)

    def launch_layers(self, first: int, count: int, pids: Sequence[Hashable],
                      stream: int) -> TimedCompletion:
        self.check_launch(first, pids, count)
        for pid in pids:
            staged = self._staged.get(pid)
            if staged is None:
                raise ValueError(f'pipeline {pid!r} is not open')
            if first == 0 and not staged:
                raise ValueError(f'launch of layer 0: pipeline {pid!r} has no staged input')
        frames = len(pids)
        duration = 0
        for index in range(first, first + count):
            duration += self.costs.cost_ns(index, frames)
            self.kernel_launches += -(-frames // self._kernel_batch[index])
        start = max(time.monotonic_ns(), self._free_ns)
        self._free_ns = start + duration
        return TimedCompletion(start, self._free_ns)

    def close(self) -> None:
        """Let go of the images last checked (views of frame slots their owner will unmap)."""
        self._staged.clear()
        self._checked.clear()

    def result(self, pid: Hashable) -> np.ndarray:
        if pid not in self._staged:
            raise ValueError(f'pipeline {pid!r} is not open')
        return self._result
