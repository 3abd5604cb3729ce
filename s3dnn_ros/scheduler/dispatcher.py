"""
The dispatcher: feeds the GPU from a policy, tracks completions, advances frames, keeps statistics.

It drives a *backend*: :class:`EngineBackend` for a real engine (reference or CUDA) in real time,
or the simulator's virtual GPU. All of its methods except :meth:`Dispatcher.submit` run on one
thread (the dispatcher thread live, the event loop in the simulator); ``submit`` may be called from
any thread (camera callbacks) and never waits for the GPU.
"""
from __future__ import annotations

from collections import deque
import threading
import time
from typing import Any, Callable, cast, Protocol, Sequence

from .job import Frame, Group, Launch, Pipeline, PipelineStats
from .policies import Policy
from ..engine.base import check_image, Engine, EngineError

#: dropped-frame reasons passed to ``on_drop``
DROP_QUEUE, DROP_DEADLINE, DROP_ERROR = 'queue', 'deadline', 'error'
#: frames read together that start on an idle GPU (or in a burst) and are not held are staged
#: on arrival when at least this many start (:meth:`Dispatcher.arrive_all`): a copy of its own
#: costs the host about 15 µs (its events, a driver call, its interval read back), what the copies
#: of three frames cost inside their fused layer-0 launch
STAGE_MIN_FRAMES = 4


class Backend(Protocol):
    """What the dispatcher needs from the thing that runs kernels."""

    #: streams the backend runs launches on, stream ids taken modulo this (None: as many as there
    #: are ids)
    streams: int | None

    def now_ns(self) -> int: ...

    def open_pipeline(self, pipeline: Pipeline) -> None: ...

    def stage(self, frames: Sequence[Frame]) -> None:
        """
        Start moving the images of frames taken in to the GPU, ahead of their first launch.

        Called at intake for frames that became their camera's current one (nothing of the camera
        is in the network) together, while the GPU is idle or a burst is being taken in
        (:meth:`Dispatcher.arrive_all`). Marks the frames it staged (``Frame.staged``); one it
        cannot stage is left to its first launch, which stages it or fails it. Never raises.
        """

    def launch(self, launch: Launch) -> None:
        """
        Issue ``launch`` (all of its ``depth`` layers) on its stream; set ``launch.handle``.

        May raise EngineError.
        """

    def done(self, launch: Launch) -> bool:
        """
        Whether ``launch`` finished.

        May raise EngineError.
        """

    def results(self, frames: Sequence[Frame]) -> Sequence[Any]:
        """Return the outputs of frames whose last layer completed, in their order."""

    def busy_ns(self) -> int:
        """GPU time spent running at least one kernel so far."""


class Dispatcher:
    """
    Keeps up to ``policy.max_inflight`` dispatch rounds on the GPU and moves frames along.

    ``on_done(frame)`` is called (on the dispatcher thread) when a frame's last layer completes,
    with ``frame.result``, ``frame.finish_ns`` and ``frame.missed`` set; ``on_drop(frame, reason)``
    when a frame is dropped (reasons: queue overflow, lost deadline in firm mode, engine error).
    Given ``on_done_all(frames, results)`` instead, the frames whose last layers completed together
    come in one call, with ``finish_ns`` set and their results as the backend returned them
    (:meth:`Backend.results`, in their order; ``frame.result`` is not set): a caller that hands
    the results on as they are pays no call per frame.
    """

    def __init__(self, policy: Policy, backend: Backend,
                 on_done: Callable[[Frame], None] | None = None,
                 on_drop: Callable[[Frame, str], None] | None = None,
                 on_done_all: Callable[[list[Frame], Any], None] | None = None):
        if on_done is not None and on_done_all is not None:
            raise ValueError('give on_done or on_done_all, not both')
        self.policy = policy
        self.backend = backend
        policy.streams = backend.streams
        self.on_done = on_done
        self.on_done_all = on_done_all
        self.on_drop = on_drop
        self.num_layers = policy.num_layers
        self.pipelines: list[Pipeline] = []
        self.inflight: list[Launch] = []
        self._by_stream: dict[int, deque[Launch]] = {}
        self._groups_inflight = 0
        self._inbox: deque[tuple] = deque()
        self._wake = threading.Event()
        self._settled = False  # the policy's last answer was empty and nothing changed since
        self._ahead_settled = False  # the same for its run-ahead
        # counters
        self.groups = 0
        self.launches = 0
        self.fused_launches = 0
        self.chained_launches = 0
        self.segment_launches = 0  # launches of several layers (rule 4c of the S3DNN policy)
        self.frames_launched = 0
        self.engine_errors = 0
        self.last_error: str | None = None
        # what each poll found: busy streams (one completion check each), launches in flight and
        # tasks waiting in the policy's queue, summed over polls
        self.polls = self.polled_streams = self.polled_inflight = self.polled_ready = 0
        self.dequeues = 0  # DEQUEUEs asked

    # ----------------------------------------------------------------- pipelines and arrivals
    def add_pipeline(self, name: str, deadline_ns: int, queue_depth: int = 1,
                     latency_history: int | None = None) -> Pipeline:
        pipeline = Pipeline(len(self.pipelines), name, deadline_ns, queue_depth, latency_history)
        self.backend.open_pipeline(pipeline)
        self.pipelines.append(pipeline)
        self.policy.pipelines = len(self.pipelines)
        return pipeline

    def submit(self, pipeline: Pipeline, image: Any = None, encoding: str = 'rgb8',
               meta: Any = None, release_ns: int | None = None) -> None:
        """Hand a frame to the dispatcher thread (thread-safe, returns at once)."""
        if release_ns is None:
            release_ns = self.backend.now_ns()
        self._inbox.append((pipeline, release_ns, image, encoding, meta))
        self._wake.set()

    def arrive(self, pipeline: Pipeline, release_ns: int, image: Any = None,
               encoding: str = 'rgb8', meta: Any = None) -> Frame:
        """
        Let a frame enter its pipeline (dispatcher thread).

        An image the engines cannot take is dropped here, counted as an error drop of its camera,
        before a fused launch could take other cameras' frames down with it. (A frame alone is not
        staged on arrival: see :meth:`arrive_all`.)
        """
        frame = pipeline.new_frame(release_ns, image, encoding, meta)
        if self._admit(frame):
            now = self.backend.now_ns()
            self.policy.arrived(now)
            if pipeline.current is None:
                settled = self._settled
                self._start_next(pipeline, now)
                self._joined_hold(settled, now)
        return frame

    def arrive_all(self, arrivals: Sequence[tuple], start: int = 0,
                   checked: bool = False) -> tuple[int, bool]:
        """
        Let frames read together enter their pipelines, until a chain of a burst is ready.

        ``arrivals``: (pipeline, release_ns, image, encoding, meta) tuples, taken in from
        ``arrivals[start]`` on; ``checked``: their images are known to suit their encodings (made
        for them, as a ring's slot views are), so that no check drops them here. Returns (the index
        of the first arrival not taken in, whether a chain is ready): the loop dispatches the chain
        (:meth:`pump`) before it takes in the rest. The same as :meth:`arrive` for each with
        :meth:`chain_ready` asked after each, but the frames arrive together: one clock reading,
        and the policy told of them and handed their first layers once per chain (or once for all)
        rather than once per frame.

        At least STAGE_MIN_FRAMES frames that start (nothing of their camera in the network)
        together on an idle GPU, or in a burst being taken in (``Policy.chain_needs``), and that
        the policy will not hold back to fuse them with frames still to come
        (``Policy.would_hold``), have their images sent on their way to the GPU at once
        (:meth:`Backend.stage`): the copies then run while the policy decides, where they would
        otherwise delay the first kernel. Otherwise a frame's copy rides with its (fused) first
        launch, which costs the host less (with every frame that started on an idle GPU staged,
        the worker's host time per frame at 384 cameras on an H200 rose by 10-20 µs: under
        rule 6 the GPU is often idle while frames are held, and most reads bring a few).

        On an idle GPU, when the frames read together can fill the chain being formed, its first
        STAGE_MIN_FRAMES frames are staged as soon as they have arrived and the rest once the
        chain is full: the copies start after a few arrivals rather than after a whole chain's
        (on an H200 host 0.045-0.060 ms into a burst rather than 0.066-0.084, the chain's 16
        uploads done 0.02-0.05 ms sooner), and they do not pause, as the first four take longer
        to copy than the rest take to arrive. One more copy call per such burst.
        """
        policy, inflight, settled = self.policy, self.inflight, self._settled
        now = self.backend.now_ns()
        needs = policy.chain_needs(now, inflight)
        ahead = needs is not None or not inflight  # stage on arrival
        early = needs is not None and self._stages_early(needs, len(arrivals) - start, now)
        starting: list[Frame] = []
        staged = arrived = 0  # of starting: staged ahead of the chain, arrived
        index, end = start, len(arrivals)
        while index < end:
            pipeline, release_ns, image, encoding, meta = arrivals[index]
            index += 1
            if not self._admit(pipeline.new_frame(release_ns, image, encoding, meta), checked):
                continue
            arrived += 1
            if pipeline.current is None:
                starting.append(self._take_current(pipeline))
                if early and len(starting) == STAGE_MIN_FRAMES:
                    self.backend.stage(starting)
                    staged, early = STAGE_MIN_FRAMES, False
                if needs is not None and len(starting) >= needs:
                    policy.arrived(now, arrived)
                    if ahead:
                        self._stage_rest(starting, staged, now)
                    policy.enqueue_all(starting, 0, now)
                    if policy.chain_ready(now, inflight):
                        return index, True
                    starting, staged, arrived = [], 0, 0
                    needs = policy.chain_needs(now, inflight)
                    ahead = needs is not None or not inflight
        if arrived:
            policy.arrived(now, arrived)
        if starting:
            if ahead:
                self._stage_rest(starting, staged, now)
            policy.enqueue_all(starting, 0, now)
        self._joined_hold(settled, now)
        return index, needs is not None and policy.chain_ready(now, inflight)

    def _joined_hold(self, settled: bool, now: int) -> None:
        """
        Stay settled when frames that started only joined the policy's hold in force.

        ``settled``: whether the dispatcher was settled before they started (the policy had
        answered nothing). It is again when the policy keeps holding (``Policy.keeps_holding``):
        a DEQUEUE would answer nothing again, and is not asked until the hold ends or something
        else changes.
        """
        if settled and not self._settled and self.policy.keeps_holding(now):
            self._settled = True

    def _stages_early(self, needs: int, coming: int, now: int) -> bool:
        """
        Whether the first STAGE_MIN_FRAMES frames of a chain of ``needs`` go ahead before it fills.

        On an idle GPU, when the ``coming`` arrivals can fill the chain the policy is forming and
        it will not hold that chain back (see :meth:`arrive_all`).
        """
        return not self.inflight and STAGE_MIN_FRAMES < needs <= coming \
            and not self.policy.would_hold(now, needs)

    def _stage_rest(self, starting: list[Frame], staged: int, now: int) -> None:
        """Stage the frames of ``starting`` after its first ``staged`` (frames going ahead)."""
        rest = starting[staged:] if staged else starting
        if len(rest) >= STAGE_MIN_FRAMES \
                and not self.policy.would_hold(now, len(starting)):
            self.backend.stage(rest)

    def _admit(self, frame: Frame, checked: bool = False) -> bool:
        """
        Queue a new frame in its pipeline; False if its image was dropped as one no engine takes.

        Its image is not looked at when ``checked`` (the caller made it for its encoding). A frame
        the queue pushes out (newest wins) goes to ``on_drop``.
        """
        pipeline = frame.pipeline
        if frame.image is not None and not checked:
            try:
                check_image(frame.image, frame.encoding)
            except ValueError as error:
                pipeline.stats.released += 1
                self.last_error = f'{pipeline.name}: {error}'
                self._drop(frame, DROP_ERROR)
                return False
        overflow = pipeline.admit(frame)
        if overflow is not None and self.on_drop:
            self.on_drop(overflow, DROP_QUEUE)
        return True

    def _next_current(self, pipeline: Pipeline) -> Frame | None:
        """Make the oldest queued frame of ``pipeline`` its current one (not yet enqueued)."""
        return self._take_current(pipeline) if pipeline.queue else None

    def _take_current(self, pipeline: Pipeline) -> Frame:
        """Make the oldest frame of ``pipeline``'s queue, which holds one, its current one."""
        self._settled = self._ahead_settled = False
        frame = pipeline.current = pipeline.queue.popleft()
        return frame

    def _start_next(self, pipeline: Pipeline, now: int | None = None) -> None:
        # a frame that starts alone, or after its camera's previous one, is staged by its first
        # launch (see arrive_all)
        frame = self._next_current(pipeline)
        if frame is not None:
            self.policy.enqueue(frame, self.backend.now_ns() if now is None else now)

    # ----------------------------------------------------------------- dispatch
    def pump(self) -> int:
        """
        Dispatch groups while the policy allows more in flight; returns launches issued.

        With nothing queued and launches in flight the policy is first asked to run ahead (slotless
        rounds of successors, whatever the slots in use), then, while slots are free, to look ahead
        at the successors like any round. An empty answer ends the round, and the policy is not
        asked again until a frame arrives (but for frames that only join a hold in force:
        :meth:`_joined_hold`), a launch completes or the policy's hold ends (a live loop calls
        this very often). A chain of a burst being taken in (:meth:`chain_ready`) takes
        no slot and is asked for whatever the slots in use (``Policy.continues_burst``).
        """
        # the policy answered nothing and nothing changed since; is its hold over?
        if self._settled:
            hold = self.policy.hold_until_ns
            if hold is None or self.backend.now_ns() < hold:
                return 0
            self._settled = False
        issued = 0
        limit = self.policy.max_inflight
        while True:
            if self.inflight and not self._ahead_settled and self.policy.runs_ahead \
                    and not len(self.policy):
                # nothing waits for a decision: the policy may queue successors ahead, slot or not
                group = self.policy.run_ahead(self.backend.now_ns(), self.inflight)
                launched = self._issue(group) if group.launches else 0
                if launched:
                    issued += launched
                    continue
                self._ahead_settled = True
            if not (len(self.policy) or self.inflight) \
                    or (limit is not None and self._groups_inflight >= limit
                        and not self.policy.continues_burst(self.backend.now_ns(),
                                                            self.inflight)):
                break
            self.dequeues += 1
            group = self.policy.dequeue(self.backend.now_ns(), self.inflight)
            for frame in group.dropped:
                self._drop(frame, DROP_DEADLINE)
            if group.launches:
                launched = self._issue(group)
                issued += launched
                if not launched and not group.dropped:
                    # every launch of the group was skipped (its frames failed): ask after a change
                    break
            elif not group.dropped:
                self._settled = True
                break
        return issued

    def chain_ready(self) -> bool:
        """
        Whether the policy has a chain of a burst ready (rule 2b of ``s3dnn``).

        A loop taking in many frames at once dispatches it (:meth:`pump`) before it takes in the
        rest.
        """
        return self.policy.chain_ready(self.backend.now_ns(), self.inflight)

    def _stream_for(self, launch: Launch) -> int:
        """
        Return the stream ``launch`` runs on.

        A chained launch follows its frames' previous layer. Any other may run on any stream: on a
        backend with a bounded set of streams (ids modulo ``backend.streams``) it takes its own
        stream's slot unless a launch in flight holds it, then the next free one (its own when none
        is free), so launches decided apart never wait for each other in one stream's order.
        """
        if launch.chained:
            return launch.frames[0].stream
        count = self.backend.streams
        if count is None:
            return launch.stream
        stream = launch.stream % count
        busy = self._by_stream
        if stream in busy:
            stream = next((s % count for s in range(stream + 1, stream + count)
                           if s % count not in busy), stream)
        return stream

    def _issue(self, group: Group) -> int:
        """
        Launch a group.

        It holds a dispatch slot unless the policy says it needs none (``Group.takes_slot``:
        successors a policy runs ahead with delay no decision).
        """
        self.groups += 1
        self._groups_inflight += group.takes_slot
        issued = 0
        for launch in group.launches:
            frames = launch.frames
            if any(frame.pipeline.current is not frame for frame in frames):
                continue  # a frame of this launch failed earlier in the group
            launch.stream = self._stream_for(launch)
            launch.group = group
            try:
                self.backend.launch(launch)
            except EngineError as error:
                self._engine_failed(launch, error)
                continue
            if launch.layer == 0:
                now = self.backend.now_ns()
                for frame in frames:
                    frame.started_ns = now
            end_layer = launch.end_layer
            for frame in frames:
                frame.next_layer = end_layer
                frame.stream = launch.stream
            group.pending += 1
            self.inflight.append(launch)
            stream_queue = self._by_stream.get(launch.stream)
            if stream_queue is None:
                stream_queue = self._by_stream[launch.stream] = deque()
            stream_queue.append(launch)
            issued += 1
            self.launches += 1
            self.frames_launched += launch.batch
            self.fused_launches += launch.batch > 1
            self.chained_launches += launch.chained
            self.segment_launches += launch.depth > 1
        if group.pending == 0:
            self._groups_inflight -= group.takes_slot
        return issued

    # ----------------------------------------------------------------- completions
    def poll(self) -> int:
        """
        Retire finished launches (stream heads only: a stream completes in order).

        Streams with nothing in flight are not kept, so a poll costs as many checks as streams are
        busy.
        """
        retired = 0
        self.polls += 1
        self.polled_streams += len(self._by_stream)
        self.polled_inflight += len(self.inflight)
        self.polled_ready += len(self.policy)
        for stream, stream_queue in list(self._by_stream.items()):
            while stream_queue:
                launch = stream_queue[0]
                try:
                    if not self.backend.done(launch):
                        break
                except EngineError as error:
                    stream_queue.popleft()
                    self._retire(launch)
                    self._engine_failed(launch, error)
                    retired += 1
                    continue
                stream_queue.popleft()
                self.complete(launch, from_poll=True)
                retired += 1
            if not stream_queue:
                del self._by_stream[stream]
        return retired

    def complete(self, launch: Launch, from_poll: bool = False) -> None:
        """
        Retire ``launch``, which finished.

        Advance its frames, enqueue ready successors, finish whole frames.
        """
        if not from_poll:
            stream_queue = self._by_stream[launch.stream]
            stream_queue.remove(launch)
            if not stream_queue:
                del self._by_stream[launch.stream]
        self._retire(launch)
        now = self.backend.now_ns()
        done = launch.end_layer
        # the frames whose next layer this launch readied (none already chained further or
        # dropped after an engine error while it was in flight); past the last layer, finished
        ready = []
        for frame in launch.frames:
            if frame.pipeline.current is not frame:
                continue
            frame.done_layers = done
            if frame.next_layer == done:
                ready.append(frame)
        if not ready:
            return
        if done == self.num_layers:
            self._finish(ready, now)
        else:
            self.policy.enqueue_all(ready, done, now)

    def _retire(self, launch: Launch) -> None:
        self._settled = self._ahead_settled = False
        self.inflight.remove(launch)
        group = cast(Group, launch.group)
        launch.group = None  # no cycle left for the garbage collector
        group.pending -= 1
        if group.pending == 0:
            self._groups_inflight -= group.takes_slot

    def _finish(self, frames: list[Frame], now: int) -> None:
        """Hand over frames that completed together, their results read in one call."""
        policy, on_done, on_done_all = self.policy, self.on_done, self.on_done_all
        results = self.backend.results(frames)
        for frame in frames:
            frame.finish_ns = now
            stats = frame.pipeline.stats
            stats.completed += 1
            stats.missed += frame.missed
            stats.latencies_ns.append(now - frame.release_ns)
            policy.finished(frame, now)
        if on_done_all is not None:
            on_done_all(frames, results)
        else:
            for frame, result in zip(frames, results):
                frame.result = result
                if on_done is not None:
                    on_done(frame)
        for frame in frames:
            self._release(frame)

    def _drop(self, frame: Frame, reason: str) -> None:
        stats = frame.pipeline.stats
        if reason == DROP_DEADLINE:
            stats.dropped_deadline += 1
        else:
            stats.dropped_error += 1
        if self.on_drop:
            self.on_drop(frame, reason)
        self._release(frame)

    def _release(self, frame: Frame) -> None:
        pipeline = frame.pipeline
        if pipeline.current is frame:
            pipeline.current = None
            self._start_next(pipeline)

    def _engine_failed(self, launch: Launch, error: EngineError) -> None:
        self.engine_errors += 1
        self.last_error = str(error)
        for frame in launch.frames:
            if frame.pipeline.current is frame:
                self._drop(frame, DROP_ERROR)

    # ----------------------------------------------------------------- live loop
    def step(self) -> bool:
        """Take submitted frames, retire finished launches, dispatch; True if anything happened."""
        progressed = False
        inbox = self._inbox
        if inbox:
            # frames stay in the inbox until taken in (submitted_waiting); submit only appends
            arrivals = list(inbox)
            taken = 0
            while taken < len(arrivals):
                before = taken
                taken, chain = self.arrive_all(arrivals, taken)
                for _ in range(taken - before):
                    inbox.popleft()
                if chain:
                    self.pump()
            progressed = True
        if self.inflight and self.poll():
            progressed = True
        if self.pump():
            progressed = True
        return progressed

    def run(self, stop: threading.Event, idle_wait_s: float = 0.05) -> None:
        """
        Serve until ``stop`` is set: poll while kernels are in flight, sleep when idle.

        While in flight the loop only yields (``sleep(0)`` lets other threads take the GIL): any
        real sleep rounds up to tens of microseconds, a gap the GPU would sit idle between
        dependent kernels.
        """
        while not stop.is_set():
            if self.step():
                continue
            if self.inflight:
                time.sleep(0)
            else:
                self._wake.wait(self.idle_wait_s(idle_wait_s))
                self._wake.clear()

    def idle_wait_s(self, longest_s: float) -> float:
        """
        Return how long an idle loop may wait for new frames.

        That is ``longest_s``, or less when the policy holds ready work back until a given time.
        """
        hold = self.policy.hold_until_ns
        if hold is None or not len(self.policy):
            return longest_s
        return min(longest_s, max(0.0, (hold - self.backend.now_ns()) / 1e9))

    def wake(self) -> None:
        """Interrupt an idle wait (used to stop promptly)."""
        self._wake.set()

    def discard(self) -> None:
        """Forget every frame and launch without reporting them (a scheduler shutting down)."""
        self.inflight.clear()
        self._by_stream.clear()
        self._inbox.clear()
        self.policy.clear()
        for pipeline in self.pipelines:
            pipeline.queue.clear()
            pipeline.current = None

    # ----------------------------------------------------------------- statistics
    @property
    def groups_inflight(self) -> int:
        """Dispatch rounds now holding one of the policy's ``max_inflight`` slots."""
        return self._groups_inflight

    @property
    def submitted_waiting(self) -> int:
        """Frames handed to :meth:`submit` that the dispatcher thread has not taken in yet."""
        return len(self._inbox)

    @property
    def mean_batch(self) -> float:
        return self.frames_launched / self.launches if self.launches else 0.0

    @property
    def mean_group_size(self) -> float:
        return self.launches / self.groups if self.groups else 0.0


class BusyMeter:
    """
    Union of kernel intervals on the GPU: busy time however many streams overlap.

    Intervals arrive roughly in completion order; those ending more than ``horizon_ns`` before the
    latest start are folded into a running total, so memory stays bounded. Merging sorts what is
    kept, and happens only when the list has doubled since the last merge (or when the total is
    read), so each interval costs amortised O(log n) however many launches a second there are.
    """

    MIN_MERGE = 1024

    def __init__(self, horizon_ns: int = 50_000_000):
        self.horizon_ns = horizon_ns
        self._folded = 0
        self._intervals: list[tuple[int, int]] = []
        self._latest_start = 0
        self._merge_at = self.MIN_MERGE

    def add(self, start_ns: int, end_ns: int) -> None:
        self._intervals.append((start_ns, end_ns))
        if start_ns > self._latest_start:
            self._latest_start = start_ns
        if len(self._intervals) > self._merge_at:
            self._merge()

    def _merge(self) -> None:
        fold_before = self._latest_start - self.horizon_ns
        merged: list[tuple[int, int]] = []
        for start, end in sorted(self._intervals):
            if merged and start <= merged[-1][1]:
                if end > merged[-1][1]:
                    merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        keep = [iv for iv in merged if iv[1] >= fold_before]
        self._folded += sum(end - start for start, end in merged if end < fold_before)
        self._intervals = keep
        self._merge_at = max(self.MIN_MERGE, 2 * len(keep))

    def busy_ns(self) -> int:
        self._merge()
        return self._folded + sum(end - start for start, end in self._intervals)


class EngineBackend:
    """
    Runs launches on an :class:`~s3dnn_ros.engine.base.Engine` in real time.

    It counts the host time its launch calls take (``launch_ns`` over ``launches``, the kernel
    layers issued: a segment of d layers counts d; of those, ``first_layer_ns`` over
    ``first_layer_launches``, the layers of calls starting at layer 0, which started
    ``first_layer_frames`` frames and staged those :meth:`stage` had not). A synchronous engine's
    call (the reference engine's, whose handle has no GPU interval) is the kernel itself: it
    counts as busy time, not as host time, as a kernel on a GPU would (``kernel_ns``: the time
    those calls spent in kernels, so that callers timing a whole dispatch round can take it out
    too). The copies :meth:`stage` starts ahead of the launches are GPU busy time too; its host
    time is the caller's (the intake's); ``staged_frames`` counts the frames it staged.
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self.streams = engine.streams
        self.busy = BusyMeter()
        self._uploads: deque = deque()  # copies started by stage(), in the order they run
        self.launch_ns = self.launches = 0
        self.first_layer_ns = self.first_layer_launches = self.first_layer_frames = 0
        self.staged_frames = 0  # frames whose images :meth:`stage` sent on their way
        self.kernel_ns = 0

    @staticmethod
    def now_ns() -> int:
        return time.monotonic_ns()

    def open_pipeline(self, pipeline: Pipeline) -> None:
        self.engine.open_pipeline(pipeline.id)

    def stage(self, frames: Sequence[Frame]) -> None:
        """
        Stage the frames' images in the engine and start their uploads (:meth:`Engine.upload`).

        A batch the engine refuses (an image it cannot take, a failed allocation or copy) is left
        to the frames' first launch, which stages them again and fails those it cannot take.
        """
        items = [(frame.pipeline.id, frame.image, frame.encoding) for frame in frames
                 if frame.image is not None]
        if not items:
            return
        try:
            self.engine.set_inputs(items)
            upload = self.engine.upload([pid for pid, _, _ in items])
        except (EngineError, ValueError):
            return
        for frame in frames:
            frame.staged = frame.image is not None
        self.staged_frames += len(items)
        if upload is not None and hasattr(upload, 'interval'):
            self.started(upload, len(items))

    def started(self, upload, frames: int) -> None:
        """Keep ``upload`` (``frames`` images copied by :meth:`stage`) until it is done."""
        self._uploads.append(upload)

    def _uploads_done(self) -> None:
        """Count the finished copies :meth:`stage` started as busy time (they finish in order)."""
        uploads = self._uploads
        while uploads and uploads[0].done():
            self.busy.add(*uploads.popleft().interval())

    def launch(self, launch: Launch) -> None:
        begin = time.perf_counter_ns()
        frames = launch.frames
        pids = [frame.pipeline.id for frame in frames]
        if launch.layer == 0:
            items = [(frame.pipeline.id, frame.image, frame.encoding) for frame in frames
                     if not frame.staged]
            try:
                if items:
                    self.engine.set_inputs(items)
            except ValueError as error:
                names = ', '.join(frame.pipeline.name for frame in frames)
                raise EngineError(f'staging the images of {names}: {error}') from error
        start = time.monotonic_ns()
        if launch.depth == 1:
            launch.handle = self.engine.launch(launch.layer, pids, launch.stream)
        else:
            launch.handle = self.engine.launch_layers(launch.layer, launch.depth, pids,
                                                      launch.stream)
        end = time.monotonic_ns()
        spent = time.perf_counter_ns() - begin
        if not hasattr(launch.handle, 'interval'):  # synchronous engine: the call was the kernel
            self.busy.add(start, end)
            spent -= end - start
            self.kernel_ns += end - start
        self.launch_ns += spent
        self.launches += launch.depth
        if launch.layer == 0:
            self.first_layer_ns += spent
            self.first_layer_launches += launch.depth
            self.first_layer_frames += len(frames)

    def done(self, launch: Launch) -> bool:
        handle = launch.handle
        if not handle.done():
            return False
        interval = getattr(handle, 'interval', None)
        if interval is not None:
            self.busy.add(*interval())
        if self._uploads:
            self._uploads_done()
        return True

    def results(self, frames: Sequence[Frame]) -> Any:
        return self.engine.results([frame.pipeline.id for frame in frames])

    def busy_ns(self) -> int:
        self._uploads_done()
        return self.busy.busy_ns()


def summarize(pipelines: Sequence[Pipeline]) -> dict:
    """Totals over pipelines (latency percentiles over all completed frames)."""
    total = PipelineStats()
    for pipeline in pipelines:
        s = pipeline.stats
        total.released += s.released
        total.completed += s.completed
        total.missed += s.missed
        total.dropped_queue += s.dropped_queue
        total.dropped_deadline += s.dropped_deadline
        total.dropped_error += s.dropped_error
        total.latencies_ns.extend(s.latencies_ns)
    return total.summary()
