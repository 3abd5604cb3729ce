"""Scheduling policies: which ready kernels go to the GPU next, fused how, on which streams.

Every policy has the same interface. The dispatcher calls :meth:`Policy.enqueue` when a frame's next
kernel becomes ready (its earlier layers completed) and :meth:`Policy.dequeue` whenever fewer than
``max_inflight`` dispatch rounds are on the GPU; ``dequeue`` returns one :class:`Group` of launches.

Policies:

``s3dnn``
    The S3DNN scheduler (Algorithm 2 of Zhou, Bateni, Liu, RTAS 2018): least slack first, tbRatio
    grouping, look-ahead and data fusion. See :class:`S3dnnPolicy` for the exact rules.
``fifo`` / ``edf``
    Ablations of ``s3dnn``: the same tbRatio grouping, ordered by release time / absolute deadline,
    without fusion or look-ahead.
``sequential``
    One stream, one frame at a time: a frame's kernels are issued back to back and the next frame
    waits until it completes (no concurrency).
``streams``
    One stream per pipeline, every frame's kernels issued in order the moment the frame starts, no
    scheduler logic: the GPU's hardware queues interleave the streams ("CUDA streaming").

With ``firm=True`` a frame whose deadline can no longer be met (now + remaining batch-1 cost >
deadline) is dropped when the policy would dispatch it, before it costs GPU time.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from bisect import insort
from itertools import count
from typing import Sequence

from ..engine.costs import CostTable
from .job import Frame, Group, KernelTask, Launch

DEFAULT_MAX_BATCH = 16


class Policy(ABC):
    """Holds the ready queue Q, kept sorted by ``(key, seq)``."""

    name = 'policy'
    #: dispatch rounds on the GPU at once (None: unlimited); 2 lets the next round be decided and
    #: queued on the GPU while the current one runs, so the GPU does not wait for the host.
    max_inflight: int | None = 2
    #: whether ``max_inflight`` may be changed (the whole-frame baselines define theirs)
    inflight_configurable = True

    def __init__(self, costs: CostTable, firm: bool = False, max_batch: int = DEFAULT_MAX_BATCH,
                 max_inflight: int | None = None):
        if max_batch < 1:
            raise ValueError(f'max_batch={max_batch}: must be >= 1')
        self.costs = costs
        self.firm = firm
        self.max_batch = max_batch
        if max_inflight is not None and self.inflight_configurable:
            if max_inflight < 1:
                raise ValueError(f'max_inflight={max_inflight}: must be >= 1')
            self.max_inflight = max_inflight
        self.num_layers = len(costs.network.kernel_layers)
        self._queue: list[tuple[int, int, KernelTask]] = []
        self._seq = count()

    @abstractmethod
    def key(self, frame: Frame, layer: int) -> int:
        """Ordering key of a ready task (smaller first)."""

    def enqueue(self, frame: Frame, now_ns: int) -> KernelTask:
        """ENQUEUE: ``frame``'s next layer is ready; insert it in order."""
        layer = frame.next_layer
        task = KernelTask(frame, layer, self.costs.cost_ns(layer), self.costs.tb_ratio(layer),
                          self.costs.remaining_ns[layer], self.key(frame, layer), next(self._seq))
        insort(self._queue, (task.key, task.seq, task))
        return task

    @abstractmethod
    def dequeue(self, now_ns: int, inflight: Sequence[Launch]) -> Group:
        """DEQUEUE: the next group to launch (possibly empty), plus frames dropped as lost."""

    def __len__(self) -> int:
        return len(self._queue)

    def queued(self) -> list[KernelTask]:
        """Ready tasks in dispatch order."""
        return [entry[2] for entry in self._queue]

    def lost(self, frame: Frame, layer: int, now_ns: int) -> bool:
        """Firm mode: the frame cannot finish by its deadline even if it ran alone from now on."""
        return self.firm and now_ns + self.costs.remaining_ns[layer] > frame.deadline_ns

    def _pop_first(self, now_ns: int, group: Group) -> KernelTask | None:
        """Remove and return the first task that is not lost; lost ones go to ``group.dropped``."""
        while self._queue:
            task = self._queue.pop(0)[2]
            if not self.lost(task.frame, task.layer, now_ns):
                return task
            group.dropped.append(task.frame)
        return None

    def _launch(self, layer: int, frames: list[Frame], stream: int, chained: bool = False) -> Launch:
        batch = len(frames)
        return Launch(layer, frames, stream, self.costs.cost_ns(layer, batch), self.costs.tb_ratio(layer, batch),
                      chained)


class S3dnnPolicy(Policy):
    """Least slack first with tbRatio grouping, look-ahead and data fusion.

    Slack of a ready kernel = deadline - now - (batch-1 cost of this and all later layers). As ``now``
    is common to all tasks, ordering by slack equals ordering by ``deadline - remaining``, which only
    changes when a frame advances a layer: re-inserting a frame's task at every arrival and completion
    is therefore exactly "slacks updated at arrivals and completions".

    DEQUEUE, with the decisions the published pseudocode leaves open:

    1. The head h (least slack) starts group G. Lost frames (firm mode) met on the way are dropped.
    2. Data fusion: ready tasks of h's layer from other pipelines join h's launch in LSF order, up to
       ``max_batch`` frames, while each addition saves GPU time (cost(b+1) < cost(b) + cost(1)) and does
       not turn h's non-negative slack negative (h's slack already below 0 does not block fusion).
       Every task that later joins G is fused with its own layer's peers the same way.
    3. Grouping: if tbRatio(h) < 1, further ready tasks with tbRatio < 1 join G in LSF order while
       tbRatio(G) < 1 (so G may end slightly above 1, never with a member that fills the GPU alone).
    4. Look-ahead: if tbRatio(G) is still < 1, the successors of G's launches and of launches still on
       the GPU are examined; the one whose frames have least slack and whose tbRatio fits in
       1 - tbRatio(G) is *reserved*: it is launched now, chained on its predecessor's stream, so the GPU
       starts it the moment the predecessor ends without a round trip through the host. At most one
       successor is reserved per DEQUEUE. With Q empty, G is empty (tbRatio 0) and a DEQUEUE only
       looks ahead: the dispatcher asks for one whenever a dispatch slot is free, so a chain of kernels
       stays one launch ahead of the GPU even when no other work is ready.
    5. G is not kept between calls: each DEQUEUE builds a new group from the current queue; what G
       leaves in the queue is reconsidered, with fresh slacks, at the next call.
    """

    name = 's3dnn'
    fusion = True
    look_ahead = True

    def key(self, frame: Frame, layer: int) -> int:
        return frame.deadline_ns - self.costs.remaining_ns[layer]

    def dequeue(self, now_ns: int, inflight: Sequence[Launch]) -> Group:
        group = Group()
        head = self._pop_first(now_ns, group)
        if head is None:
            if self.look_ahead:
                successor = self._reserve_successor(inflight, 1.0, now_ns)
                if successor is not None:
                    group.launches.append(successor)
            return group
        group.launches.append(self._fused_launch(head, now_ns, group))
        tb = group.tb_ratio
        if head.tb_ratio < 1:
            index = 0
            while tb < 1 and index < len(self._queue):
                task = self._queue[index][2]
                if task.tb_ratio >= 1:
                    index += 1
                    continue
                del self._queue[index]
                if self.lost(task.frame, task.layer, now_ns):
                    group.dropped.append(task.frame)
                    continue
                launch = self._fused_launch(task, now_ns, group)
                group.launches.append(launch)
                tb += launch.tb_ratio
            if tb < 1 and self.look_ahead:
                successor = self._reserve_successor([*group.launches, *inflight], 1 - tb, now_ns)
                if successor is not None:
                    group.launches.append(successor)
        return group

    def _fused_launch(self, task: KernelTask, now_ns: int, group: Group) -> Launch:
        """``task``'s launch, fused with same-layer peers from the queue (rule 2)."""
        frames = [task.frame]
        layer = task.layer
        if self.fusion:
            cost = self.costs.cost_ns
            slack = task.slack(now_ns)
            single = cost(layer, 1)
            index = 0
            while index < len(self._queue) and len(frames) < self.max_batch:
                other = self._queue[index][2]
                if other.layer != layer:
                    index += 1
                    continue
                if self.lost(other.frame, layer, now_ns):
                    del self._queue[index]
                    group.dropped.append(other.frame)
                    continue
                batch = len(frames)
                if cost(layer, batch + 1) - cost(layer, batch) >= single:
                    break
                if slack >= 0 and slack - (cost(layer, batch + 1) - single) < 0:
                    break
                del self._queue[index]
                frames.append(other.frame)
        return self._launch(layer, frames, task.frame.pipeline.stream)

    def _reserve_successor(self, launches: Sequence[Launch], room: float, now_ns: int) -> Launch | None:
        """Rule 4: the least-slack successor that fits in ``room``, chained behind its predecessor."""
        best, best_key = None, None
        for launch in launches:
            layer = launch.layer + 1
            if layer >= self.num_layers:
                continue
            frames = launch.frames
            if any(frame.next_layer > layer for frame in frames):
                continue  # already chained further
            if self.costs.tb_ratio(layer, len(frames)) > room:
                continue
            if any(self.lost(frame, layer, now_ns) for frame in frames):
                continue
            key = min(frame.deadline_ns for frame in frames) - self.costs.remaining_ns[layer]
            if best_key is None or key < best_key:
                best, best_key = launch, key
        if best is None:
            return None
        return self._launch(best.layer + 1, list(best.frames), best.stream, chained=True)


class FifoPolicy(S3dnnPolicy):
    """tbRatio grouping in release order; no fusion, no look-ahead."""

    name = 'fifo'
    fusion = False
    look_ahead = False

    def key(self, frame: Frame, layer: int) -> int:
        return frame.release_ns


class EdfPolicy(FifoPolicy):
    """tbRatio grouping in absolute-deadline order; no fusion, no look-ahead."""

    name = 'edf'

    def key(self, frame: Frame, layer: int) -> int:
        return frame.deadline_ns


class WholeFramePolicy(Policy):
    """Baselines that issue all kernels of a frame at once, in release order."""

    inflight_configurable = False

    def key(self, frame: Frame, layer: int) -> int:
        return frame.release_ns

    def stream_of(self, frame: Frame) -> int:
        return frame.pipeline.stream

    def dequeue(self, now_ns: int, inflight: Sequence[Launch]) -> Group:
        group = Group()
        task = self._pop_first(now_ns, group)
        if task is not None:
            stream = self.stream_of(task.frame)
            group.launches = [self._launch(layer, [task.frame], stream, chained=layer > task.layer)
                              for layer in range(task.layer, self.num_layers)]
        return group


class SequentialPolicy(WholeFramePolicy):
    """One stream, one frame at a time."""

    name = 'sequential'
    max_inflight = 1

    def stream_of(self, frame: Frame) -> int:
        return 0


class StreamsPolicy(WholeFramePolicy):
    """One stream per pipeline, every frame issued as soon as it starts."""

    name = 'streams'
    max_inflight = None


POLICIES = {cls.name: cls for cls in (S3dnnPolicy, StreamsPolicy, SequentialPolicy, FifoPolicy, EdfPolicy)}


def make_policy(name: str, costs: CostTable, firm: bool = False, max_batch: int = DEFAULT_MAX_BATCH,
                max_inflight: int | None = None) -> Policy:
    """The policy called ``name``; ValueError naming the allowed ones otherwise."""
    if name not in POLICIES:
        raise ValueError(f'policy {name!r} is not known; allowed: {", ".join(POLICIES)}')
    return POLICIES[name](costs, firm=firm, max_batch=max_batch, max_inflight=max_inflight)
