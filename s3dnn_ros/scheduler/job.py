"""
Pipelines, frames, kernel tasks and launches: the objects the policies and the dispatcher share.

Times are integer nanoseconds on one clock (``time.monotonic_ns`` live, a virtual clock in the
simulator). A pipeline is one camera: frames arrive into its queue, one frame at a time runs
through the network's kernel layers. A frame's ready kernel is a :class:`KernelTask`; what the
policy sends to the GPU is a :class:`Launch` (one kernel layer, or a segment of consecutive layers,
over one or more frames - a fused launch - on a stream).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class Frame:
    """
    One camera frame on its way through the network.

    ``next_layer`` is the next kernel layer not yet launched, ``done_layers`` how many have
    completed; they differ while launches are in flight (several when successors were chained on a
    stream).
    """

    __slots__ = ('pipeline', 'seq', 'release_ns', 'deadline_ns', 'image', 'encoding', 'meta',
                 'next_layer', 'done_layers', 'stream', 'result', 'started_ns', 'finish_ns',
                 'staged')

    def __init__(self, pipeline: 'Pipeline', seq: int, release_ns: int, image: Any = None,
                 encoding: str = 'rgb8', meta: Any = None):
        self.pipeline = pipeline
        self.seq = seq
        self.release_ns = release_ns
        self.deadline_ns = release_ns + pipeline.deadline_ns
        self.image = image
        self.encoding = encoding
        self.meta = meta
        self.next_layer = 0
        self.done_layers = 0
        self.stream = pipeline.stream
        self.result: Any = None
        self.started_ns: int | None = None  # when its first layer was launched
        self.finish_ns: int | None = None
        self.staged = False  # its image went to the engine before its first launch (Backend.stage)

    @property
    def latency_ns(self) -> int | None:
        return None if self.finish_ns is None else self.finish_ns - self.release_ns

    @property
    def missed(self) -> bool:
        return self.finish_ns is not None and self.finish_ns > self.deadline_ns

    def __repr__(self) -> str:
        return f'Frame({self.pipeline.name}#{self.seq}, layer {self.next_layer})'


class PipelineStats:
    """
    Counters and completed-frame latencies of one pipeline.

    A frame is *resolved* when it completed or was dropped; ``miss_ratio`` is the share of resolved
    frames that produced no result by their deadline: (missed + dropped) / (completed + dropped).
    Latency percentiles cover the last ``latency_history`` completed frames (all when None), so a
    long-running node keeps bounded memory.
    """

    def __init__(self, latency_history: int | None = None):
        self.released = 0
        self.completed = 0
        self.missed = 0
        self.dropped_queue = 0
        self.dropped_deadline = 0
        self.dropped_error = 0
        self.latencies_ns: deque[int] = deque(maxlen=latency_history)

    @property
    def dropped(self) -> int:
        return self.dropped_queue + self.dropped_deadline + self.dropped_error

    @property
    def miss_ratio(self) -> float:
        resolved = self.completed + self.dropped
        return (self.missed + self.dropped) / resolved if resolved else 0.0

    def latency_ms(self, percentile: float) -> float:
        """Latency percentile of completed frames in ms (0.0 before the first completion)."""
        if not self.latencies_ns:
            return 0.0
        # list() copies in one step under the GIL, while the dispatcher thread may be appending
        return float(np.percentile(np.array(list(self.latencies_ns), dtype=np.int64),
                                   percentile)) / 1e6

    def summary(self) -> dict:
        return {'released': self.released, 'completed': self.completed, 'missed': self.missed,
                'dropped': self.dropped, 'miss_ratio': round(self.miss_ratio, 6),
                'p50_ms': round(self.latency_ms(50), 4), 'p95_ms': round(self.latency_ms(95), 4),
                'p99_ms': round(self.latency_ms(99), 4),
                'max_ms': round(max(self.latencies_ns, default=0) / 1e6, 4)}


class Pipeline:
    """
    One camera: relative deadline, frame queue, frame running on the GPU, stream and statistics.

    The frame queue holds the ``queue_depth`` newest frames; the stream is the camera's default
    one.
    """

    def __init__(self, pid: int, name: str, deadline_ns: int, queue_depth: int = 1,
                 latency_history: int | None = None):
        if deadline_ns <= 0:
            raise ValueError(f'{name}: deadline must be positive, got {deadline_ns} ns')
        if queue_depth < 1:
            raise ValueError(f'{name}: queue_depth must be >= 1, got {queue_depth}')
        self.id = pid
        self.name = name
        self.deadline_ns = deadline_ns
        self.queue_depth = queue_depth
        self.stream = pid
        self.queue: deque[Frame] = deque()
        self.current: Frame | None = None
        self.stats = PipelineStats(latency_history)
        self._seq = 0

    def new_frame(self, release_ns: int, image: Any = None, encoding: str = 'rgb8',
                  meta: Any = None) -> Frame:
        self._seq += 1
        return Frame(self, self._seq, release_ns, image, encoding, meta)

    def admit(self, frame: Frame) -> Frame | None:
        """
        Queue ``frame``.

        Returns the oldest waiting frame when the queue overflows (newest wins).
        """
        self.stats.released += 1
        self.queue.append(frame)
        if len(self.queue) > self.queue_depth:
            self.stats.dropped_queue += 1
            return self.queue.popleft()
        return None

    def __repr__(self) -> str:
        return f'Pipeline({self.id}, {self.name!r})'


class KernelTask:
    """
    A ready kernel: the next layer of one frame, whose earlier layers have all completed.

    ``cost_ns`` and ``tb_ratio`` are the batch-1 estimates of this layer, ``remaining_ns`` the
    batch-1 cost of this and every later layer. ``key`` is the policy's ordering key (smaller runs
    first); it is fixed while the task waits, which is what keeps the queue sorted without
    re-sorting.
    """

    __slots__ = ('frame', 'layer', 'cost_ns', 'tb_ratio', 'remaining_ns', 'key', 'seq', 'ready_ns',
                 'queued')

    def __init__(self, frame: Frame, layer: int, cost_ns: int, tb_ratio: float, remaining_ns: int,
                 key: int = 0, seq: int = 0, ready_ns: int = 0):
        self.frame = frame
        self.layer = layer
        self.cost_ns = cost_ns
        self.tb_ratio = tb_ratio
        self.remaining_ns = remaining_ns
        self.key = key
        self.seq = seq
        self.ready_ns = ready_ns
        self.queued = True  # while the policy's queue holds it

    def slack(self, now_ns: int) -> int:
        """Return deadline - now - remaining estimated cost: how long this frame can still wait."""
        return self.frame.deadline_ns - now_ns - self.remaining_ns

    def __repr__(self) -> str:
        return f'KernelTask({self.frame!r}, layer {self.layer})'


@dataclass(eq=False)
class Launch:
    """
    Kernel layers ``layer`` .. ``end_layer - 1`` over ``frames`` on ``stream``.

    Usually one layer; a *segment* of several consecutive layers is issued with one decision and
    retired with one completion, its kernels back to back on its stream. ``kernels`` holds each of
    a segment's layers' (cost_ns, tb_ratio) (empty for a launch of one layer); ``cost_ns`` is the
    GPU time of all its layers, ``tb_ratio`` the largest of theirs. ``chained`` launches
    were issued before their frames' previous layer completed; they rely on stream order (same
    stream as that previous layer). ``group`` is the dispatch round they belong to.
    """

    layer: int
    frames: list[Frame]
    stream: int
    cost_ns: int
    tb_ratio: float
    chained: bool = False
    group: 'Group | None' = None
    handle: Any = None
    kernels: tuple[tuple[int, float], ...] = ()

    @property
    def batch(self) -> int:
        return len(self.frames)

    @property
    def depth(self) -> int:
        """Return the number of layers the launch runs."""
        return len(self.kernels) or 1

    @property
    def end_layer(self) -> int:
        """Return the first layer after the launch: its frames' next layer once it is issued."""
        return self.layer + self.depth


@dataclass(eq=False)
class Group:
    """What one DEQUEUE returned: launches meant to share the GPU, and frames dropped as lost."""

    launches: list[Launch] = field(default_factory=list)
    dropped: list[Frame] = field(default_factory=list)
    pending: int = 0
    #: whether it holds one of the dispatcher's ``max_inflight`` slots (not for successors a policy
    #: queues ahead while nothing waits for a decision, rule 4b of the S3DNN policy)
    takes_slot: bool = True

    @property
    def tb_ratio(self) -> float:
        return sum(launch.tb_ratio for launch in self.launches)
