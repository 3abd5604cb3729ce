"""
Scheduling policies: which ready kernels go to the GPU next, fused how, on which streams.

Every policy has the same interface. The dispatcher calls :meth:`Policy.enqueue` when a frame's
next kernel becomes ready (its earlier layers completed) and :meth:`Policy.dequeue` whenever fewer
than ``max_inflight`` dispatch rounds are on the GPU; ``dequeue`` returns one :class:`Group` of
launches.

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
deadline) is dropped when the policy would dispatch it, before it costs GPU time. Its first layer
is held to a stricter test, so that overload sheds frames before they cost anything rather than
half-way through the network: a frame is dropped there when now + the time frames currently take
from their first launch to their result (an estimate of recent frames,
:meth:`Policy.network_time_ns`) exceeds its deadline. A frame dropped half-way counts in that
estimate with the least it would have taken (its time so far + its remaining batch-1 cost):
were only the frames that finished counted, a network where most frames die would look fast, and
the first layers would keep letting in frames that cannot finish.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from bisect import insort
from collections import Counter, deque
from itertools import chain
import math
from typing import cast, ClassVar, Sequence

from .job import Frame, Group, KernelTask, Launch
from ..engine.costs import CostTable, HostCosts, NOMINAL_HOST

#: frames per fused launch: the CUDA engine's kernels take as many (MAX_FRAMES), so a launch is one
#: kernel per layer, one decision, launch and completion on the host (rule 2); 32 keeps the host
#: below the GPU up to 448 cameras on an H200
DEFAULT_MAX_BATCH = 32
#: share of the host's and of the GPU's time the fused batch size aims to leave busy (rule 6)
LOAD_TARGET = 0.5
#: frames that arrived in this last span of time give the arrival rate (rule 6)
RATE_WINDOW_NS = 200_000_000
#: a held frame keeps at least this share of the slack it had when its first layer became ready
#: (rule 6)
HOLD_RESERVE = 0.5
#: why first-layer tasks went into a launch without being held longer (rule 6): b* of them were
#: ready, the hold's b*/r ran out, the held frame's slack reserve ran out, no arrival rate known
RELEASE_CAUSES = ('target', 'timer', 'reserve', 'no rate')
#: the target batch is recomputed at most this often
TARGET_REFRESH_NS = 1_000_000
#: rule 2: a fused launch costing at most this share more than its frames alone costs the GPU
#: nothing
FUSE_TOLERANCE = 0.01
#: rule 2b: frames per launch of a burst that finds the GPU idle, at most. On an H200 (640x480,
#: `bench/burst_chains.py`), 32 frames took 2.46 ms as one chain, 2.15-2.20 as two of 16, 2.12-2.17
#: as four of 8; 64 frames 3.68 as two of 32, 3.56 as four of 16, 4.02 as eight of 8; 48 frames
#: 2.75 as three of 16, 2.89 as four of 12; 16 frames 1.35 as one chain, 1.29 as two of 8
BURST_CHAIN = 16
#: rule 4b: a chain is queued ahead on its stream while less than this much GPU work is queued
#: there, and (rule 4c) a segment that is no burst's chain holds at most this much GPU work: many
#: times the host's round trip from a completion to the next launch (about 80 µs on an H200
#: host), few percent of a 50 ms deadline. On an H200, 1 ms against 250 µs: Table 1 at B = 8
#: 1.06x streams instead of 1.32x; 256 cameras missed 0% and 4.4% in two capacity rounds against
#: 100% and 25%; 4 ms broke 256 cameras (92% missed)
RUN_AHEAD_NS = 1_000_000
#: firm mode: while first layers are shed and no frame reports its network time, the network-time
#: estimate decays by e every this long, so that it cannot keep shedding every frame once the load
#: that made it long has gone. A time, not a share per frame shed: at thousands of frames a second
#: a share per shed (1/64 before) emptied the estimate within milliseconds, the first layers let a
#: flood of frames in, and most died half-way (simulated H200, firm, 1.5x capacity: a tenth of the
#: throughput)
SHED_DECAY_NS = 250_000_000
#: taken first-layer tasks the list of them may hold beyond twice those in Q before it is compacted
FIRST_LAYER_SLACK = 64
#: forgotten arrival times the S3DNN policy's list of them may hold before it is compacted (and at
#: least as many as it still counts)
ARRIVALS_COMPACT = 4096


class Policy(ABC):
    """Holds the ready queue Q, kept sorted by ``(key, seq)``."""

    name: ClassVar[str] = 'policy'
    #: dispatch rounds on the GPU at once (None: unlimited); 2 lets the next round be decided and
    #: queued on the GPU while the current one runs, so the GPU does not wait for the host.
    max_inflight: int | None = 2
    #: whether ``max_inflight`` may be changed (the whole-frame baselines define theirs)
    inflight_configurable: ClassVar[bool] = True
    #: whether every launch goes to one stream (an engine needs no more)
    single_stream: ClassVar[bool] = False
    #: whether :meth:`run_ahead` can return launches (the dispatcher asks only then)
    runs_ahead: ClassVar[bool] = False

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
        #: the host's costs; a live scheduler replaces them with what it measures on its own thread
        self.host: HostCosts = costs.host or NOMINAL_HOST
        #: when a policy holds ready work back (rule 6 of ``s3dnn``): the time it wants to be asked
        #: again
        self.hold_until_ns: int | None = None
        #: cameras (pipelines) feeding the policy, set by the dispatcher (None: not known)
        self.pipelines: int | None = None
        #: streams the backend runs launches on, set by the dispatcher (None: as many as asked)
        self.streams: int | None = None
        #: share of the GPU this scheduler's work may take (rule 6): 1 / K when K schedulers, each
        #: seeing only its own cameras, share one GPU
        self.gpu_share = 1.0
        # Q, one list per layer, each sorted by (key, seq): the head of Q is the least of the
        # lists' heads, and a layer's fusion peers are the first entries of its own list (a DEQUEUE
        # costs the same however many frames wait)
        self._layers: list[list[tuple[int, int, KernelTask]]] = [
            [] for _ in range(self.num_layers)]
        self._ready = 0  # tasks in Q
        self._next_seq = 0  # the next task's seq (ties in key go in ENQUEUE order)
        # a ready task's batch-1 (cost_ns, tb_ratio, remaining_ns), per layer
        self._task_costs = [
            (costs.cost_ns(layer), costs.tb_ratio(layer), costs.remaining_ns[layer])
            for layer in range(self.num_layers)]
        # the batch-1 cost of each layer and every later one (costs.remaining_ns)
        self._remaining: list[int] = list(costs.remaining_ns)
        # layer-0 tasks, oldest first (and some taken ones: _trim_first_layer)
        self._first_layer: deque[KernelTask] = deque()
        # smoothed first launch -> result time (ns) of finished frames and of frames lost half-way
        self._network_mean = 0.0
        self._network_deviation = 0.0
        self._estimated_ns = 0       # when the estimate last changed

    @abstractmethod
    def key(self, frame: Frame, layer: int) -> int:
        """Ordering key of a ready task (smaller first)."""

    def enqueue(self, frame: Frame, now_ns: int) -> KernelTask:
        """ENQUEUE: ``frame``'s next layer is ready; insert it in order."""
        task = self._queue(frame, frame.next_layer, now_ns)
        if task.layer == 0:
            self._trim_first_layer()
        return task

    def enqueue_all(self, frames: Sequence[Frame], layer: int, now_ns: int) -> None:
        """
        ENQUEUE frames whose next layer ``layer`` became ready together.

        A completed fused launch, or frames taken in together (layer 0). The same as enqueueing
        them one by one.
        """
        for frame in frames:
            self._queue(frame, layer, now_ns)
        if layer == 0:
            self._trim_first_layer()

    def _queue(self, frame: Frame, layer: int, now_ns: int) -> KernelTask:
        """Make ``frame``'s task of ``layer`` and insert it in Q (and the first-layer list)."""
        cost, tb, remaining = self._task_costs[layer]
        key, seq = self.key(frame, layer), self._next_seq
        self._next_seq = seq + 1
        task = KernelTask(frame, layer, cost, tb, remaining, key, seq, now_ns)
        queue = self._layers[layer]
        # tasks mostly come in key order: after the last one without a search
        if queue and key < queue[-1][0]:
            insort(queue, (key, seq, task))
        else:
            queue.append((key, seq, task))
        self._ready += 1
        if layer == 0:
            self._first_layer.append(task)
        return task

    def _trim_first_layer(self) -> None:
        """
        Forget first-layer tasks taken from Q, so that the list of them stays bounded.

        Those at its head, and all of them once they outnumber the tasks in Q (a task with a late
        deadline can stay at the head while those behind it are taken). Without this the list was
        only trimmed where S3DNN holds first layers back (rule 6), and a policy that never did
        (the baselines, or S3DNN with b* of them always ready, as under overload) kept every task
        it ever took.
        """
        tasks = self._first_layer
        while tasks and not tasks[0].queued:
            tasks.popleft()
        if len(tasks) > 2 * len(self._layers[0]) + FIRST_LAYER_SLACK:
            self._first_layer = deque([task for task in tasks if task.queued])

    def arrived(self, now_ns: int, count: int = 1) -> None:
        """
        Note that ``count`` frames reached the policy's cameras at ``now_ns``.

        Whether they start now, wait behind their camera's frame in the network or are later
        dropped from their camera's queue: the load offered, for policies that need it.
        """

    def _take(self, layer: int) -> KernelTask:
        """Remove and return the first task of ``layer`` in Q."""
        task = self._layers[layer].pop(0)[2]
        task.queued = False
        self._ready -= 1
        return task

    def _least_layer(self, layers) -> int | None:
        """Of ``layers``, the one whose first task comes first in Q (None when they have none)."""
        best, best_head = None, None
        queues = self._layers
        for layer in layers:
            queue = queues[layer]
            if queue and (best_head is None or queue[0] < best_head):
                best, best_head = layer, queue[0]
        return best

    @property
    def _first_layer_ready(self) -> int:
        """Tasks of layer 0 in Q."""
        return len(self._layers[0])

    def _oldest_first_layer(self) -> KernelTask:
        """Return the first-layer task that became ready first (there must be one)."""
        tasks = self._first_layer
        while not tasks[0].queued:
            tasks.popleft()
        return tasks[0]

    @abstractmethod
    def dequeue(self, now_ns: int, inflight: Sequence[Launch]) -> Group:
        """DEQUEUE: the next group to launch (possibly empty), plus frames dropped as lost."""

    def chain_ready(self, now_ns: int, inflight: Sequence[Launch]) -> bool:
        """
        Whether a DEQUEUE now would launch a chain of a burst whose frames are still coming in.

        A loop taking in many frames at once then dispatches before it takes in the rest (none for
        policies that do not cut bursts).
        """
        return self.chain_needs(now_ns, inflight) == 0

    def chain_needs(self, now_ns: int, inflight: Sequence[Launch]) -> int | None:
        """
        At least how many more first-layer tasks a chain of a burst needs (0: one is ready).

        None while no chain can become ready by taking in frames (nothing launched in between):
        a loop taking in a batch of frames asks :meth:`chain_ready` only once that many have
        started.
        """
        return None

    def continues_burst(self, now_ns: int, inflight: Sequence[Launch]) -> bool:
        """Whether a DEQUEUE now would return a group that needs no dispatch slot."""
        return False

    def would_hold(self, now_ns: int, starting: int) -> bool:
        """
        Whether first layers would be held back now were ``starting`` more of them ready.

        Held to be fused with frames still to come, rather than launched at the next DEQUEUE (none
        for policies that do not hold).
        """
        return False

    def keeps_holding(self, now_ns: int) -> bool:
        """
        Whether the hold in force (``hold_until_ns``) goes on with the first layers now ready.

        True only when a DEQUEUE that answered nothing before those first layers became ready
        would answer nothing again (none for policies that do not hold).
        """
        return False

    def run_ahead(self, now_ns: int, inflight: Sequence[Launch]) -> Group:
        """
        With Q empty: launches to queue behind those in flight.

        They go in a round that takes no dispatch slot (none for policies that do not run ahead).
        """
        return Group(takes_slot=False)

    def __len__(self) -> int:
        return self._ready

    def clear(self) -> None:
        """Forget every ready task (a scheduler shutting down)."""
        for queue in self._layers:
            queue.clear()
        self._ready = 0
        self._first_layer.clear()

    def queued(self) -> list[KernelTask]:
        """Ready tasks in dispatch order."""
        return [entry[2] for entry in sorted(chain.from_iterable(self._layers))]

    def lost(self, frame: Frame, layer: int, now_ns: int) -> bool:
        """
        Firm mode: the frame cannot finish by its deadline even if it ran alone from now on.

        Before its first layer, in the time frames take through the network now.
        """
        if not self.firm:
            return False
        if now_ns + self._remaining[layer] > frame.deadline_ns:
            if frame.started_ns is not None:
                # lost in the network: it would have taken at least this long through it
                self._sample(now_ns - frame.started_ns + self._remaining[layer], now_ns)
            return True
        if layer == 0 and now_ns + self.network_time_ns() > frame.deadline_ns:
            # shed; and trust the estimate less as time passes with no frame to correct it
            decay = math.exp(min(0, self._estimated_ns - now_ns) / SHED_DECAY_NS)
            self._network_mean *= decay
            self._network_deviation *= decay
            self._estimated_ns = now_ns
            return True
        return False

    def finished(self, frame: Frame, now_ns: int) -> None:
        """
        Take the report of a frame whose last layer completed.

        The dispatcher makes it (``frame.started_ns``: its first launch). The frame's time through
        the network updates a smoothed mean and mean deviation (gains 1/8 and 1/4), as does the
        least time of a frame found lost half-way (:meth:`lost`).
        """
        self._sample(now_ns - cast(int, frame.started_ns), now_ns)

    def _sample(self, sample: int, now_ns: int) -> None:
        self._estimated_ns = now_ns
        error = sample - self._network_mean
        self._network_mean += error / 8
        self._network_deviation += (abs(error) - self._network_deviation) / 4

    def network_time_ns(self) -> float:
        """
        Time a frame now takes from its first launch to its result.

        That is the smoothed mean + 2 mean deviations (0 before the first frame finished).
        """
        return self._network_mean + 2 * self._network_deviation

    def _pop_first(self, now_ns: int, group: Group,
                   skip_first_layer: bool = False) -> KernelTask | None:
        """
        Remove and return the first task that is not lost.

        Nor of layer 0 with ``skip_first_layer``; lost ones met on the way go to ``group.dropped``.
        """
        layers = range(1 if skip_first_layer else 0, self.num_layers)
        while (layer := self._least_layer(layers)) is not None:
            task = self._take(layer)
            if not self.lost(task.frame, task.layer, now_ns):
                return task
            group.dropped.append(task.frame)
        return None

    def _launch(self, layer: int, frames: list[Frame], stream: int,
                chained: bool = False) -> Launch:
        batch = len(frames)
        return Launch(layer, frames, stream, self.costs.cost_ns(layer, batch),
                      self.costs.tb_ratio(layer, batch), chained)

    def _segment(self, layer: int, frames: list[Frame], stream: int, depth: int,
                 chained: bool = False) -> Launch:
        """Return the launch of layers ``layer`` .. ``layer + depth - 1`` over ``frames``."""
        if depth == 1:
            return self._launch(layer, frames, stream, chained)
        batch, costs = len(frames), self.costs
        kernels = tuple((costs.cost_ns(i, batch), costs.tb_ratio(i, batch))
                        for i in range(layer, layer + depth))
        return Launch(layer, frames, stream, sum(cost for cost, _ in kernels),
                      max(tb for _, tb in kernels), chained, kernels=kernels)


class S3dnnPolicy(Policy):
    """
    Least slack first with tbRatio grouping, look-ahead and data fusion.

    Slack of a ready kernel = deadline - now - (batch-1 cost of this and all later layers). As
    ``now`` is common to all tasks, ordering by slack equals ordering by ``deadline - remaining``,
    which only changes when a frame advances a layer: re-inserting a frame's task at every arrival
    and completion is therefore exactly "slacks updated at arrivals and completions".

    DEQUEUE, with the decisions the published pseudocode leaves open:

    1. The head h (least slack) starts group G. Lost frames (firm mode) met on the way are dropped.
    2. Data fusion: ready tasks of h's layer from other pipelines join h's launch in LSF order, up
       to ``max_batch`` frames, while the fused launch costs the GPU less than its frames would
       alone (cost(b+1) < (b+1) cost(1)), or no more than that (within FUSE_TOLERANCE) and the
       launch is still smaller than the target batch b* of rule 6 (it then saves launches of host
       time only), and the addition does not turn h's non-negative slack negative (h's slack
       already below 0 does not block fusion). The test is on the whole launch, not on the last
       frame added: a calibrated cost table is noisy, and one entry a few µs high must not cap
       every batch at its size. Beyond the engine's largest kernel batch (the cost table's largest
       measured batch of the layer) a launch is several kernels side by side, costing the GPU what
       separate launches of those kernels cost: past that size a launch saves host time only, so it
       grows only while it is smaller than b* - at low load a burst of frames becomes several
       launches whose first kernels start while the later ones' images are still being uploaded.
       Those launches go in one group: when h's launch stops at the kernel batch, more launches
       of its layer (each headed by the next task in LSF order and fused the same way) join G
       until G holds ``max_batch`` frames of the layer, the frames one launch could have carried,
       so the chains of a burst do not wait for a dispatch slot each.
       Every task that later joins G is fused with its own layer's peers the same way.
    2b. A burst on an idle GPU: when no launch is on the GPU and h is a first-layer task, the n
       first-layer tasks ready (h and those in Q) are cut into k = ceil(n / c) launches, c =
       max(b*, BURST_CHAIN), as even as they can be (the first n mod k one frame larger), all in G
       in LSF order, each on its own stream and each a segment of all its frames' remaining layers
       (rule 4c: nothing is to join a chain cut apart on purpose, and a chain in one launch needs
       no run-ahead rounds, whose host time would delay the burst's next chains); k = 1 is rule 2
       as usual, except for a launch that opens a burst (n = c, below), which is a chain as well.
       One launch of all n would keep every kernel waiting for all n uploads; k chains side by side
       start computing after the first chain's uploads, and the later chains' uploads run beside
       the earlier chains' kernels (cameras triggered by one clock send such bursts). Never below
       b*: the chains cost the host what b* allows. Not on a backend of one stream, where the
       chains would run one after another. A burst being taken in: a cut of at least c tasks on an
       idle GPU opens a burst, which stays open until a DEQUEUE's h is of a later layer; while it
       is open a first-layer h is cut the same way (its chains, even one, are segments on their own
       streams) although the burst's earlier chains are on the GPU, and its G takes no dispatch
       slot (the chains of one burst share the slot of its first G). On a busy GPU with no burst
       open, c or more ready first-layer tasks are cut the same way when b* is ``max_batch`` (the
       load needs every launch full), without opening a burst: their G takes a slot. A full
       launch would otherwise become segments of RUN_AHEAD_NS (rule 4c), each costing the host
       a decision and a completion, where a whole-network chain costs one of each. Below that
       load a launch of rule 2 keeps its frames' later layers open to fusion.
       :meth:`chain_ready` tells a loop taking in many frames at once that c first-layer tasks
       are ready on an idle GPU or in an open burst: it dispatches them before it takes in the
       rest, so the first chain's uploads start after c arrivals rather than after all of them,
       and the next chains follow as their frames come in. :meth:`chain_needs` tells it how
       many more first-layer tasks to take in before it asks (at least c minus those ready; None
       while no chain can become ready).
    3. Grouping: if tbRatio(h) < 1, further ready tasks with tbRatio < 1 join G in LSF order while
       tbRatio(G) < 1 (so G may end slightly above 1, never with a member that fills the GPU
       alone).
    4. Look-ahead: if tbRatio(G) is still < 1, the successors of G's launches and of launches still
       on the GPU are examined; the one whose frames have least slack and whose tbRatio fits in
       1 - tbRatio(G) is *reserved*: it is launched now, chained on its predecessor's stream, so
       the GPU starts it the moment the predecessor ends without a round trip through the host. At
       most one successor is reserved per DEQUEUE. With nothing to take from Q, a DEQUEUE only
       looks ahead, and the successor must fit in the whole GPU (tbRatio <= 1).
    4b. Run-ahead (:meth:`S3dnnPolicy.run_ahead`, asked whenever Q is empty and launches are in
        flight, whatever the dispatch slots): no frame waits for a decision, so a chain's successor
        is queued behind its predecessor whatever its tbRatio while the work already queued on its
        stream (the costs of the launches in flight there) is below RUN_AHEAD_NS, as one launch of
        the chain's next layers (a segment, 4c) until that work reaches RUN_AHEAD_NS or the
        network ends: the GPU queue that successive single-layer launches would build, for one
        decision, launch and completion on the host. The GPU then does not wait for the host's
        round trip between a chain's layers, and a frame arriving meanwhile finds at most about
        RUN_AHEAD_NS of work queued on each stream before its own first decision. A *lone chain*
        (every launch on the GPU on one stream) is queued whole, in one launch: there is nothing
        beside it to keep control over. Run-ahead rounds take no dispatch slot
        (``Group.takes_slot``). With anything in Q, every layer is decided afresh (least slack
        first keeps control of the order, and firm mode can still drop a frame before its next
        layer), except within a segment (4c).
    4c. Segments: a launch of ``max_batch`` frames (a full launch, from rule 2 or a successor of
        rules 4 and 4b) takes its frames' next layers with it, as one launch of several layers
        (``Launch.depth``), while the segment's GPU time at that batch stays within RUN_AHEAD_NS
        (at least one layer); a chain of a burst cut by rule 2b takes all of them. A full
        launch's successor can take no other frame (fusion cannot grow it) and the frames stay
        together layer after layer, so deciding each layer afresh would only cost the host a
        round trip (a completion, an ENQUEUE of every frame, a DEQUEUE and a launch: about 100 µs
        of Python on an H200 host) per layer; the segment's layers run back to back on its
        stream. A frame arriving meanwhile finds at most about RUN_AHEAD_NS of work queued on that
        stream, as under rule 4b (more behind a burst's chain, whose burst holds the other
        streams' chains too). Within a segment firm mode does not drop a frame between layers (the
        frame was not lost when the segment was decided).
    4d. Run-ahead from the first decision: a DEQUEUE whose G, once grouped (rule 3), is one
        launch and leaves Q empty makes that launch the segment rule 4b's next round would queue:
        every layer its frames have left for a lone chain (nothing in flight, or every launch in
        flight on its stream), else its next layers while the work queued on its stream (the
        launches in flight there and the segment so far) is below RUN_AHEAD_NS. It comes before
        look-ahead (rule 4), which would otherwise reserve the launch's own next layer as a
        launch of its own. A launch whose images were uploaded on arrival runs its first kernel
        in tens of µs, less than 4b's host round trip: on an idle GPU the GPU would sit idle in
        between (the four-camera round of ``s3dnn-bench``), and on a busy one a frame at low
        load would cost three launches, two decisions and three completions (its first layer,
        the successor look-ahead reserves, then the rest by run-ahead) where it costs one of
        each.
    5. G is not kept between calls: each DEQUEUE builds a new group from the current queue; what G
       leaves in the queue is reconsidered, with fresh slacks, at the next call.
    6. Host-aware fusion: a frame's layers run in the batch its first layer was fused into, so the
       first layer decides how many launches (host time) and how much GPU time every frame costs.
       The policy keeps the arrival rate r (frames that reached its cameras in the last
       RATE_WINDOW_NS, whether they started at once, waited behind their camera's frame in the
       network or were dropped from its queue: the load offered, not the load carried, so that
       a scheduler that falls behind does not size its batches for the few frames it still
       starts) and picks the *target batch* b*: the smallest b <= max_batch with r *
       host(b) <= LOAD_TARGET and r * gpu(b) <= LOAD_TARGET * s, where host(b) is the host time
       per frame at batch b (:meth:`HostCosts.frame_ns`: per frame, plus every layer's launch
       and, per launch of ``launch_layers`` layers, a completion and a decision, shared by b
       frames), gpu(b) the GPU time per frame with every layer fused over b frames and s the
       scheduler's share of the GPU (``gpu_share``: 1, or 1/K when K schedulers share one GPU,
       each with its own host thread and cameras, so each sees only its own rate); max_batch
       when none qualifies. b* never exceeds the number of
       cameras (pipelines): a camera has one frame in the network at a time, so no more first-layer
       tasks can ever be ready together, and holding for more would only run out the hold. At low
       load b* is 1 and nothing changes. While fewer than b* first-layer tasks are ready, they are
       *held*: they neither head nor join G, until the oldest of them has waited b*/r (the time b*
       frames take to arrive, at the rate when it became the oldest) or would keep less than
       HOLD_RESERVE of the slack it had when it became ready (batch-1 slack), whichever comes
       first. A frame that became ready with no slack left (it can no longer make its deadline)
       is held for b*/r alone. The reserve is a share of the frame's own slack, not of its
       deadline, so that frames that become ready late - behind their camera's previous frame,
       when the scheduler has fallen behind - are still fused: were they let go at once, the
       launches would shrink to the few frames a completed launch frees at a time, every frame
       would cost more host and GPU time, and the scheduler would stay behind. Other layers are
       dispatched meanwhile; with nothing else to do the DEQUEUE only looks ahead and
       ``hold_until_ns`` says when to ask again. When the host or the GPU saturates this fuses more
       instead of less, so throughput holds under overload. Each first-layer launch is counted by
       what let it go (RELEASE_CAUSES: b* ready, the b*/r timer, the slack reserve, no rate yet)
       and by its size (``first_layer_launches``, ``first_layer_batches``). :meth:`would_hold`
       tells a caller whether first layers about to become ready would be held (the dispatcher
       then leaves their images' uploads to their launch); :meth:`keeps_holding` whether the hold
       in force goes on with the first layers now ready (frames that joined it while it lasts
       change no answer of a DEQUEUE, so the dispatcher need not ask again).
    """

    name: ClassVar[str] = 's3dnn'
    fusion: ClassVar[bool] = True
    look_ahead: ClassVar[bool] = True
    runs_ahead: ClassVar[bool] = True

    def __init__(self, costs: CostTable, firm: bool = False, max_batch: int = DEFAULT_MAX_BATCH,
                 max_inflight: int | None = None):
        super().__init__(costs, firm, max_batch, max_inflight)
        # arrival times in the last RATE_WINDOW_NS, oldest first, from _arrival_head on (a list
        # whose head moves, compacted now and then: cheaper per frame than a deque)
        self._arrival_times: list[int] = []
        self._arrival_head = 0
        self._target = (1, -TARGET_REFRESH_NS)  # (target batch, when computed)
        # (the host costs they were worked out for, _batch_costs)
        self._frame_costs: tuple[HostCosts | None, list[tuple[int, float, float]]] = (None, [])
        # the oldest held first layer, its hold's end and what ends it (RELEASE_CAUSES)
        self._held: tuple[KernelTask, int, str] | None = None
        # why this DEQUEUE's first-layer tasks are not held (RELEASE_CAUSES)
        self._release = 'target'
        #: first-layer launches by why they were not held longer (RELEASE_CAUSES), and by size:
        #: the batches every later layer of their frames inherits
        self.first_layer_launches = dict.fromkeys(RELEASE_CAUSES, 0)
        self.first_layer_batches: Counter[int] = Counter()
        # layers whose batch-1 kernel leaves room on the GPU: the only ones grouping adds (rule 3)
        self._small_layers = [layer for layer in range(self.num_layers)
                              if self.costs.tb_ratio(layer) < 1]
        # rule 4c: (layers, largest tbRatio) of a segment, per (first layer, batch, burst chain)
        self._segment_shapes: dict[tuple[int, int, bool], tuple[int, float]] = {}
        # rule 2: the engine's kernel batch per layer (the cost table's largest measured batch)
        self._kernel_batches = [self.costs.kernel_batch(layer) for layer in range(self.num_layers)]
        # rule 2's per-batch tests, per layer: built with the policy, not on a burst's first
        # decision (a fresh policy's first DEQUEUE would otherwise spend ~20 µs on them)
        self._fusion_steps = ([self._fusion_steps_of(layer) for layer in range(self.num_layers)]
                              if self.fusion else [])
        # rule 2b: a burst of at least c first layers found the GPU idle, and no later layer has
        # been decided since (its frames are still being taken in)
        self._burst = False
        self._all_layers = range(self.num_layers)

    def key(self, frame: Frame, layer: int) -> int:
        return frame.deadline_ns - self._remaining[layer]

    def clear(self) -> None:
        super().clear()
        self._held = None
        self._burst = False

    def arrived(self, now_ns: int, count: int = 1) -> None:
        if count == 1:
            self._arrival_times.append(now_ns)
        else:
            self._arrival_times.extend([now_ns] * count)
        self._forget_arrivals(now_ns - RATE_WINDOW_NS)

    def _forget_arrivals(self, cutoff_ns: int) -> None:
        """Forget the arrivals at or before ``cutoff_ns``."""
        times, head = self._arrival_times, self._arrival_head
        end = len(times)
        while head < end and times[head] <= cutoff_ns:
            head += 1
        if head > ARRIVALS_COMPACT and 2 * head > end:
            del times[:head]
            head = 0
        self._arrival_head = head

    def arrival_rate(self, now_ns: int) -> float:
        """Frames per second that arrived at the policy's cameras in the last RATE_WINDOW_NS."""
        self._forget_arrivals(now_ns - RATE_WINDOW_NS)
        return (len(self._arrival_times) - self._arrival_head) * 1e9 / RATE_WINDOW_NS

    def target_batch(self, now_ns: int) -> int:
        """b* of rule 6 (recomputed at most every TARGET_REFRESH_NS)."""
        batch, when = self._target
        if now_ns - when < TARGET_REFRESH_NS:
            return batch
        rate = self.arrival_rate(now_ns) / 1e9  # frames per ns
        gpu_target = LOAD_TARGET * self.gpu_share
        batch = next((b for b, host_ns, gpu_ns in self._batch_costs()
                      if rate * host_ns <= LOAD_TARGET and rate * gpu_ns <= gpu_target),
                     self.max_batch)
        if self.pipelines:
            batch = min(batch, self.pipelines)
        self._target = (batch, now_ns)
        return batch

    def _batch_costs(self) -> list[tuple[int, float, float]]:
        """
        Rule 6's (b, host ns, GPU ns) per frame at each batch b up to ``max_batch``.

        Worked out again when ``host`` is replaced (a worker replaces it with what it measured)
        or ``max_batch`` changes.
        """
        made_for, costs = self._frame_costs
        if made_for is not self.host or len(costs) != self.max_batch:
            host, layers = self.host, self.num_layers
            costs = [(b, host.frame_ns(b, layers), self.costs.frame_gpu_ns(b))
                     for b in range(1, self.max_batch + 1)]
            self._frame_costs = (host, costs)
        return costs

    def _hold_until(self, now_ns: int) -> int | None:
        """Until when the first-layer tasks are held (rule 6), None when they are not."""
        if not self._first_layer_ready:
            return None
        batch = self.target_batch(now_ns)
        if self._first_layer_ready >= batch:
            self._release = 'target'
            return None
        oldest = self._oldest_first_layer()
        held = self._held
        # its hold was set when it became the oldest: keep it
        if held is not None and held[0] is oldest:
            _, until, cause = held
        else:
            rate = self.arrival_rate(now_ns)
            if rate <= 0:
                self._release = 'no rate'
                return None
            ready = oldest.ready_ns
            timer = ready + round(batch * 1e9 / rate)
            slack = oldest.frame.deadline_ns - ready - self._remaining[0]
            limit = ready + round((1 - HOLD_RESERVE) * slack)
            # a frame that became ready too late to make its deadline has no slack to keep
            until, cause = (timer, 'timer') if slack <= 0 or timer <= limit else (limit, 'reserve')
            self._held = (oldest, until, cause)
        self._release = cause
        return until if until > now_ns else None

    def dequeue(self, now_ns: int, inflight: Sequence[Launch]) -> Group:
        group = Group()
        self.hold_until_ns = self._hold_until(now_ns) if self.fusion else None
        held = self.hold_until_ns is not None
        head = self._pop_first(now_ns, group, skip_first_layer=held)
        if head is None:
            if self.look_ahead:
                successor = self._reserve_successor(inflight, 1.0, now_ns)
                if successor is not None:
                    group.launches.append(successor)
            return group
        chains, continued, cut = 1, False, False
        if head.layer:
            self._burst = False  # a later layer is decided: the burst has been taken in
        elif self._cuts_bursts:
            ready = len(self._layers[0]) + 1
            target = self.target_batch(now_ns)
            size = max(target, BURST_CHAIN)
            if inflight and not self._burst:  # cut only when every launch is to be full
                cut = ready >= size and target >= self.max_batch
                chains = -(-ready // size) if cut else 1
            else:
                continued = bool(inflight)
                self._burst = continued or ready >= size
                chains = -(-ready // size)
        # a burst's chains, the one that opens it included, are segments: the loop taking the
        # burst in goes on to its next chain rather than spending run-ahead rounds on this one
        if chains > 1 or self._burst or cut:
            self._burst_launches(head, group, now_ns, chains)
            group.takes_slot = not continued
        else:
            group.launches.append(self._fused_launch(head, now_ns, group))
            self._split_launch(group, now_ns)
        tb = group.tb_ratio
        if head.tb_ratio < 1:
            small = [layer for layer in self._small_layers if layer or not held]
            while tb < 1 and (layer := self._least_layer(small)) is not None:
                task = self._take(layer)
                if self.lost(task.frame, task.layer, now_ns):
                    group.dropped.append(task.frame)
                    continue
                launch = self._fused_launch(task, now_ns, group)
                group.launches.append(launch)
                tb += launch.tb_ratio
        if self.runs_ahead and not self._ready and len(group.launches) == 1:
            group.launches[0] = self._run_ahead_segment(group.launches[0], inflight)  # rule 4d
            tb = group.tb_ratio
        if head.tb_ratio < 1 and tb < 1 and self.look_ahead:
            successor = self._reserve_successor([*group.launches, *inflight], 1 - tb, now_ns)
            if successor is not None:
                group.launches.append(successor)
        return group

    def _run_ahead_segment(self, launch: Launch, inflight: Sequence[Launch]) -> Launch:
        """Rule 4d: ``launch`` with the next layers rule 4b's next round would queue behind it."""
        layer, stream = launch.layer, launch.stream
        if all(other.stream == stream for other in inflight):  # a lone chain
            depth = self.num_layers - layer
        else:
            queued = sum(other.cost_ns for other in inflight if other.stream == stream)
            depth = self._filled_depth(layer, launch.batch, launch.depth, RUN_AHEAD_NS - queued)
        if depth == launch.depth:
            return launch
        return self._segment(layer, launch.frames, stream, depth, launch.chained)

    def _filled_depth(self, layer: int, batch: int, depth: int, room_ns: float) -> int:
        """
        Rule 4b's fill: the layers a segment of ``depth`` layers from ``layer`` spans once grown.

        It takes the next layer while the GPU work of those it has (at ``batch``) is below
        ``room_ns``, up to the network's last layer.
        """
        cost = self.costs.cost_ns
        work = sum(cost(i, batch) for i in range(layer, layer + depth))
        while work < room_ns and layer + depth < self.num_layers:
            work += cost(layer + depth, batch)
            depth += 1
        return depth

    @property
    def _cuts_bursts(self) -> bool:
        """Rule 2b applies: fusion, on a backend of more than one stream."""
        return self.fusion and self.streams != 1

    def chain_needs(self, now_ns: int, inflight: Sequence[Launch]) -> int | None:
        """
        Rule 2b: first-layer tasks still missing from c, on an idle GPU or in an open burst.

        A burst's next chain is ready (``chain_ready``) when none are.
        """
        if not ((self._burst or not inflight) and self._cuts_bursts):
            return None
        first = len(self._layers[0])
        if first < BURST_CHAIN:
            return BURST_CHAIN - first
        return max(0, self.target_batch(now_ns) - first)

    def would_hold(self, now_ns: int, starting: int) -> bool:
        """Rule 6: fewer than b* first-layer tasks would be ready."""
        return self.fusion and self._first_layer_ready + starting < self.target_batch(now_ns)

    def keeps_holding(self, now_ns: int) -> bool:
        """
        Rule 6: the hold has not ended and fewer than b* first-layer tasks are ready.

        A held DEQUEUE looks past Q's first layers only at later layers and at successors of the
        launches in flight; frames that only became ready first layers change neither, and the
        oldest held task (whose hold ends at ``hold_until_ns``) stays the oldest.
        """
        hold = self.hold_until_ns
        return hold is not None and now_ns < hold and self.would_hold(now_ns, 0)

    def continues_burst(self, now_ns: int, inflight: Sequence[Launch]) -> bool:
        """Rule 2b: a DEQUEUE now would cut a chain of the open burst (its G takes no slot)."""
        return (self._burst and bool(inflight) and self._least_layer(self._all_layers) == 0
                and len(self._layers[0]) >= self.target_batch(now_ns))

    def _split_launch(self, group: Group, now_ns: int) -> None:
        """
        Rule 2: the rest of a launch cut at the engine's kernel batch joins G as further launches.

        Until G holds ``max_batch`` frames of that layer.
        """
        first = group.launches[0]
        layer = first.layer
        if not self.fusion or first.batch != self._kernel_batches[layer]:
            return
        frames, queue = first.batch, self._layers[layer]
        while queue and frames < self.max_batch:
            task = self._take(layer)
            if self.lost(task.frame, layer, now_ns):
                group.dropped.append(task.frame)
                continue
            launch = self._fused_launch(task, now_ns, group, self.max_batch - frames)
            group.launches.append(launch)
            frames += launch.batch

    def _burst_launches(self, head: KernelTask, group: Group, now_ns: int, chains: int) -> None:
        """Rule 2b: the ready first layers, ``head`` first, as ``chains`` segments side by side."""
        size, longer = divmod(len(self._layers[0]) + 1, chains)  # the first `longer` take one more
        group.launches.append(self._fused_launch(head, now_ns, group, size + (longer > 0), True))
        queue = self._layers[0]
        while queue and len(group.launches) < chains:
            task = self._take(0)
            if self.lost(task.frame, 0, now_ns):
                group.dropped.append(task.frame)
                continue
            group.launches.append(self._fused_launch(task, now_ns, group,
                                                     size + (len(group.launches) < longer), True))

    def run_ahead(self, now_ns: int, inflight: Sequence[Launch]) -> Group:
        """
        Rule 4b: with Q empty, the least-slack successor of a chain whose stream has room.

        Room: its stream has less than RUN_AHEAD_NS of work queued (any amount for a lone chain).
        The successor is one launch of as many of the chain's next layers as the stream's room
        takes (a segment). It goes in a round that takes no slot.
        """
        group = Group(takes_slot=False)
        if self._ready or not inflight or not self.runs_ahead:
            return group
        queued: dict[int, int] = {}
        for launch in inflight:
            queued[launch.stream] = queued.get(launch.stream, 0) + launch.cost_ns
        horizon = math.inf if len(queued) == 1 else RUN_AHEAD_NS
        candidates = [launch for launch in inflight if queued[launch.stream] < horizon]
        successor = self._reserve_successor(
            candidates, math.inf, now_ns,
            {stream: horizon - work for stream, work in queued.items()})
        if successor is not None:
            group.launches.append(successor)
        return group

    def _segment_shape(self, layer: int, batch: int, chain: bool = False) -> tuple[int, float]:
        """
        Rule 4c: the layers a launch of ``batch`` frames from ``layer`` on spans.

        With the largest tbRatio among them. ``chain``: a burst chain of rule 2b, which spans
        every layer left.
        """
        if not self.fusion or (batch < self.max_batch and not chain):
            return 1, self.costs.tb_ratio(layer, batch)
        shape = self._segment_shapes.get((layer, batch, chain))
        if shape is None:
            if chain:
                depth = self.num_layers - layer
            else:
                cost = self.costs.cost_ns
                work, depth = cost(layer, batch), 1
                while layer + depth < self.num_layers:
                    work += cost(layer + depth, batch)
                    if work > RUN_AHEAD_NS:
                        break
                    depth += 1
            shape = self._segment_shapes[(layer, batch, chain)] = (
                depth, max(self.costs.tb_ratio(i, batch) for i in range(layer, layer + depth)))
        return shape

    def _fused_launch(self, task: KernelTask, now_ns: int, group: Group,
                      limit: int | None = None, chain: bool = False) -> Launch:
        """
        ``task``'s launch, fused with same-layer peers from the queue (rule 2).

        At most ``limit`` frames when given; ``chain``: a chain of a cut burst (rule 2b), a
        segment. Whether one more frame may join depends only on the launch's size (and h's
        slack), not on the frame, so the launch's room is worked out once; with soft deadlines its
        peers then leave the queue in one slice.
        """
        frames = [task.frame]
        layer = task.layer
        queue = self._layers[layer]
        if self.fusion and queue:
            room = self._fusion_room(layer, task.slack(now_ns), now_ns)
            if limit is not None:
                room = min(room, limit)
            if not self.firm:
                take = min(room - 1, len(queue))
                if take > 0:
                    entries = queue[:take]
                    del queue[:take]
                    self._ready -= take
                    for entry in entries:
                        entry[2].queued = False
                    frames += [entry[2].frame for entry in entries]
            else:
                while queue and len(frames) < self.max_batch:
                    other = queue[0][2]
                    if self.lost(other.frame, layer, now_ns):
                        self._take(layer)
                        group.dropped.append(other.frame)
                        continue
                    if len(frames) >= room:
                        break
                    self._take(layer)
                    frames.append(other.frame)
        if layer == 0 and self.fusion:
            self.first_layer_launches[self._release] += 1
            self.first_layer_batches[len(frames)] += 1
        return self._segment(layer, frames, task.frame.pipeline.stream,
                             self._segment_shape(layer, len(frames), chain)[0])

    def _fusion_room(self, layer: int, slack: int, now_ns: int) -> int:
        """
        Return the frames a launch of ``layer`` may hold under rule 2.

        The launch is headed by a task with ``slack``.

        The launch grows from b to b + 1 while the launch of b + 1 saves GPU time over its frames
        alone (or costs no more and b < b*) and leaves a non-negative head slack non-negative.
        """
        target = self.target_batch(now_ns)
        batch = 1
        for no_saving, loss, delay in self._fusion_steps[layer]:
            if no_saving and (batch >= target or loss):
                break
            if slack >= 0 and slack - delay < 0:
                break
            batch += 1
        return batch

    def _fusion_steps_of(self, layer: int) -> list[tuple[bool, bool, int]]:
        """
        Rule 2's tests of ``layer`` per batch b = 1 .. max_batch - 1.

        Whether a launch of b + 1 frames saves no GPU time over its frames alone (or, past the
        kernel batch, over separate launches), whether it loses some, and the head's delay at
        b + 1.
        """
        cost = self.costs.cost_ns
        single = cost(layer, 1)
        kernel_batch = self._kernel_batches[layer]
        return [(fused >= alone or b >= kernel_batch, fused > alone * (1 + FUSE_TOLERANCE),
                 fused - single)
                for b in range(1, self.max_batch)
                for fused, alone in ((cost(layer, b + 1), (b + 1) * single),)]

    def _reserve_successor(self, launches: Sequence[Launch], room: float, now_ns: int,
                           fill_ns: dict[int, float] | None = None) -> Launch | None:
        """
        Rule 4: the least-slack successor that fits in ``room``.

        It is chained behind its predecessor. ``fill_ns`` (rule 4b): the GPU work per stream the
        successor may add there; it takes further layers until it adds that much.
        """
        best, best_key, best_depth = None, None, 1
        for launch in launches:
            layer = launch.end_layer
            if layer >= self.num_layers:
                continue
            frames = launch.frames
            if any(frame.next_layer > layer or frame.pipeline.current is not frame
                   for frame in frames):
                continue  # already chained further, or a frame was dropped (an engine error)
            depth, tb_ratio = self._segment_shape(layer, len(frames))
            if tb_ratio > room:
                continue
            if any(self.lost(frame, layer, now_ns) for frame in frames):
                continue
            key = min(frame.deadline_ns for frame in frames) - self._remaining[layer]
            if best_key is None or key < best_key:
                best, best_key, best_depth = launch, key, depth
        if best is None:
            return None
        layer, batch = best.end_layer, best.batch
        if fill_ns is not None:
            best_depth = self._filled_depth(layer, batch, best_depth, fill_ns[best.stream])
        return self._segment(layer, list(best.frames), best.stream, best_depth, chained=True)


class FifoPolicy(S3dnnPolicy):
    """tbRatio grouping in release order; no fusion, no look-ahead."""

    name: ClassVar[str] = 'fifo'
    fusion: ClassVar[bool] = False
    look_ahead: ClassVar[bool] = False
    runs_ahead: ClassVar[bool] = False

    def key(self, frame: Frame, layer: int) -> int:
        return frame.release_ns


class EdfPolicy(FifoPolicy):
    """tbRatio grouping in absolute-deadline order; no fusion, no look-ahead."""

    name: ClassVar[str] = 'edf'

    def key(self, frame: Frame, layer: int) -> int:
        return frame.deadline_ns


class WholeFramePolicy(Policy):
    """Baselines that issue all kernels of a frame at once, in release order."""

    inflight_configurable: ClassVar[bool] = False

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

    name: ClassVar[str] = 'sequential'
    max_inflight: int | None = 1
    single_stream: ClassVar[bool] = True

    def stream_of(self, frame: Frame) -> int:
        return 0


class StreamsPolicy(WholeFramePolicy):
    """One stream per pipeline, every frame issued as soon as it starts."""

    name: ClassVar[str] = 'streams'
    max_inflight: int | None = None


POLICIES = {cls.name: cls
            for cls in (S3dnnPolicy, StreamsPolicy, SequentialPolicy, FifoPolicy, EdfPolicy)}


def make_policy(name: str, costs: CostTable, firm: bool = False,
                max_batch: int = DEFAULT_MAX_BATCH, max_inflight: int | None = None) -> Policy:
    """Return the policy called ``name``; ValueError naming the allowed ones otherwise."""
    if name not in POLICIES:
        raise ValueError(f'policy {name!r} is not known; allowed: {", ".join(POLICIES)}')
    return POLICIES[name](costs, firm=firm, max_batch=max_batch, max_inflight=max_inflight)
