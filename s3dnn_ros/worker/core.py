"""
The scheduler worker's core: one GPU's engine, policy and dispatcher, driven by messages.

:class:`WorkerCore` is the unit per GPU. It is built from a plain, picklable
:class:`~.spec.WorkerSpec` (:func:`build_worker` loads the weights, makes the engine, reads or
calibrates its cost table and makes the policy), takes frames that lie in shared-memory slots
(:mod:`.slots`), and gives back plain outputs: one tuple per frame finished or dropped, and
:meth:`WorkerCore.snapshot`, a dict of statistics. Nothing in it knows about ROS or processes;
:mod:`.process` runs it in a process of its own, and the capacity benchmark and tests drive the
same loop.

It also measures its own thread's host time (:meth:`WorkerCore.host_costs`): per frame taken in and
handed back, per decision, per launch, per uploaded image and per retired launch. Every
HOST_REFRESH_S the policy's host costs are replaced with what was measured, so the S3DNN policy
sizes its fused batches for this host (rule 6 of
:class:`~s3dnn_ros.scheduler.policies.S3dnnPolicy`).
"""
from __future__ import annotations

import gc
import importlib
import os
import resource
import sys
import time
from typing import Any, Callable

import numpy as np

from .frame_pipe import ENCODING_NAMES, FRAME, Record
from .slots import Ring
from .spec import WorkerSpec
from .. import native
from ..engine.base import Engine, EngineError
from ..engine.costs import CostTableError, HostCosts
from ..engine.select import make_engine
from ..model.alexnet import alexnet
from ..model.weights import init_weights, load_weights, WeightsError
from ..scheduler.dispatcher import Dispatcher, EngineBackend
from ..scheduler.job import Frame
from ..scheduler.policies import make_policy, POLICIES

#: the policy's host costs are re-measured this often
HOST_REFRESH_S = 0.5
#: measured host costs need at least this many launches in the last period to replace the current
#: ones
HOST_MIN_LAUNCHES = 50
#: the CUDA engine's stream pool: a stream per camera up to this many (the GPU has 32 hardware
#: queues)
MAX_STREAMS = 32
#: completed frames whose latencies each camera's statistics keep: 34 s at 30 FPS, for in-process
#: profiles (the node keeps its own). A worker runs for as long as its node: an unbounded history
#: grew by every frame, about 0.7 MB a second at 640 cameras; this one holds at most about 24 MB
#: there.
LATENCY_HISTORY = 1024
#: bytes of a memory page (resident_bytes)
PAGE_BYTES = os.sysconf('SC_PAGE_SIZE')
#: dropped-frame reason when the frame's slot cannot be read (a ring that failed to open)
DROP_SLOT = 'slot'

#: output kinds: a frame finished, a frame dropped; frames that finished together, as the worker
#: hands them over (:meth:`WorkerCore.take_outputs`, :func:`expand_outputs`)
DONE, DROPPED, DONE_BATCH = 'done', 'dropped', 'done_batch'
#: the kinds of metered work that make a frame's host time (``host_work_ns``)
HOST_WORK = ('arrive', 'output', 'decide', 'retire')


class WorkerStartError(Exception):
    """
    The worker could not start (weights, engine, cost table).

    The message names the parameter.
    """


def build_worker(spec: WorkerSpec, engine: Engine | None = None) -> 'WorkerCore':
    """
    Build the worker for ``spec``.

    Raises WorkerStartError naming the parameter when it cannot be built.

    ``engine``: an engine made by the caller (tests), else the one ``spec.engine`` asks for.
    """
    if spec.policy not in POLICIES:
        raise WorkerStartError(f'parameter policy={spec.policy!r}: '
                               f'allowed one of {", ".join(POLICIES)}')
    network = alexnet(top_k=spec.top_k)
    why = 'given by the caller'
    if engine is None:
        if spec.weights:
            try:
                weights = load_weights(spec.weights, network)
            except WeightsError as error:
                raise WorkerStartError(f'parameter weights={spec.weights!r}: {error}') from error
        else:
            weights = init_weights(network, seed=0)
        streams = 1 if POLICIES[spec.policy].single_stream else min(len(spec.cameras), MAX_STREAMS)
        try:
            if spec.engine_factory:
                module, _, function = spec.engine_factory.partition(':')
                engine = getattr(importlib.import_module(module), function)(network, weights)
                why = f'{engine.name} engine made by {spec.engine_factory}'
            else:
                engine, why = make_engine(spec.engine, network, weights, spec.device_id,
                                          spec.max_batch, spec.cost_table or None, streams)
        except EngineError as error:
            raise WorkerStartError(f'parameter engine={spec.engine!r}: {error}') from error
        except CostTableError as error:  # the table a timed engine takes its times from
            raise WorkerStartError(f'parameter cost_table={spec.cost_table!r}: {error}') \
                from error
    try:
        costs = engine.cost_table()
    except CostTableError as error:
        engine.close()
        raise WorkerStartError(f'parameter cost_table={spec.cost_table!r}: {error}') from error
    return WorkerCore(spec, engine, costs, why)


def resident_bytes() -> int:
    """
    Return this process's resident memory in bytes.

    Now, from ``/proc/self/statm`` where there is one (Linux); elsewhere the peak so far.
    """
    try:
        with open('/proc/self/statm', 'rb') as statm:
            return int(statm.read().split()[1]) * PAGE_BYTES
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == 'darwin' else peak * 1024  # bytes there, KiB elsewhere


def expand_outputs(outputs: list[tuple]) -> list[tuple]:
    """
    Return the outputs of :meth:`WorkerCore.take_outputs` as one tuple per frame, in order.

    ``(DONE, camera, seq, finish_ns, [scores, class_ids])`` (the top-k scores and their class ids,
    both lists of floats, as the result holds them) or ``(DROPPED, camera, seq, time_ns,
    reason)``. (The parent's receiver does this, off the GPU loop.)
    """
    expanded: list[tuple] = []
    for output in outputs:
        if output[0] != DONE_BATCH:
            expanded.append(output)
            continue
        _, finish_ns, cameras, seqs, results = output
        rows = np.frombuffer(results, np.float32).reshape(len(cameras), 2, -1).tolist()
        expanded.extend((DONE, camera, seq, finish_ns, row)
                        for camera, seq, row in zip(cameras, seqs, rows))
    return expanded


def host_costs_from(delta: dict[str, int]) -> HostCosts | None:
    """
    Return HostCosts from the difference of two :meth:`WorkerCore.host_totals`.

    None with too few launches.

    A launch costs what the backend's launch calls took per kernel layer they issued, on average
    over all of them, except what calls starting at layer 0 took beyond that average: that is
    ``upload_us`` per frame they started (staging and copying the images that were not staged on
    arrival). Both together give back the calls' total. (The layer cost of the calls after layer 0
    alone misleads when those are few and short: with segments from layer 0, the rare launch from
    a later layer is one layer carrying a whole call's cost.) A decision is the
    dispatch time that was neither launching nor running a synchronous engine's kernels
    (``kernel_ns``), per round; a completion the poll time per retired launch (finishing frames
    included); a frame its arrival (staging its image there, when it starts at once) plus handing
    its output over.
    """
    launches = delta['launches']
    if launches < HOST_MIN_LAUNCHES or not delta['arrivals'] or not delta['groups']:
        return None
    frames = delta['first_frames']
    average = delta['launch_ns'] / launches
    upload_ns = max(0.0, delta['first_ns'] - delta['first_launches'] * average) / max(1, frames)
    launch_ns = (delta['launch_ns'] - upload_ns * frames) / launches
    decide_ns = max(0.0, delta['decide_ns'] - delta['launch_ns'] - delta['kernel_ns']) \
        / delta['groups']
    frame_ns = delta['arrive_ns'] / delta['arrivals'] \
        + (delta['output_ns'] / delta['outputs'] if delta['outputs'] else 0.0)
    completion_ns = delta['retire_ns'] / delta['retired'] if delta['retired'] else 0.0
    # the backend counts the layers its launches issued; a retired launch is one decided launch
    layers = max(1.0, launches / delta['retired']) if delta['retired'] else 1.0
    return HostCosts(frame_us=frame_ns / 1000, decision_us=decide_ns / 1000,
                     launch_us=launch_ns / 1000, upload_us=upload_ns / 1000,
                     completion_us=completion_ns / 1000, launch_layers=layers)


class _Meter:
    """Host ns and counts of one kind of work, totals and since the last period."""

    __slots__ = ('ns', 'count')

    def __init__(self):
        self.ns = 0
        self.count = 0


class WorkerCore:
    """
    Frames in, outputs out, on one thread.

    Call :meth:`take_records` with the frame notices read together (or :meth:`resolve` for each
    arriving frame and :meth:`take_in` for those read together) and :meth:`step` (or
    :meth:`cycle`) in a loop; :meth:`take_outputs` returns what finished since the last call.
    """

    def __init__(self, spec: WorkerSpec, engine: Engine, costs, engine_why: str = ''):
        self.spec = spec
        self.engine = engine
        self.engine_why = engine_why
        #: how the scheduler's per-frame modules run: 'compiled' (mypyc) or 'interpreted'
        self.build = native.build()
        self.costs = costs
        self.policy = make_policy(spec.policy, costs, firm=spec.firm_deadlines,
                                  max_batch=spec.max_batch, max_inflight=spec.max_inflight)
        self.policy.gpu_share = spec.gpu_share
        self.backend = EngineBackend(engine)
        self.dispatcher = Dispatcher(self.policy, self.backend, on_drop=self._dropped,
                                     on_done_all=self._done)
        self.pipelines = [self.dispatcher.add_pipeline(camera.name, camera.deadline_ns,
                                                       camera.queue_depth, LATENCY_HISTORY)
                          for camera in spec.cameras]
        # camera -> (current ring, its pinned bytes)
        self._rings: list[tuple[Ring, Any] | None] = [None] * len(spec.cameras)
        # (ring, pinned, camera) waiting for their frames
        self._retired: list[tuple[Ring, Any, int]] = []
        self._outputs: list[tuple] = []
        self._output_frames = 0  # frames in _outputs
        self.started_ns = time.monotonic_ns()
        # host time of this thread, by kind of work (HOST_WORK), and of the DEQUEUEs that launched
        # nothing ('hold': while the policy holds first layers back, the answer a new frame
        # brought)
        self.meters = {kind: _Meter() for kind in (*HOST_WORK, 'hold')}
        #: when a dict, each metered call's host ns is also kept in it, in a list by kind
        #: (``bench/worker_profile.py --call-times``)
        self.call_times: dict[str, list[int]] | None = None
        # a serving loop's turns, and the time it spent blocked waiting for work (not host work)
        self.turns = _Meter()
        self._host_mark = self.host_totals()
        self._host_refresh_ns = self.started_ns + round(HOST_REFRESH_S * 1e9)

    # ------------------------------------------------------------------ rings
    def open_ring(self, camera: int, name: str, slot_bytes: int, slots: int,
                  generation: int) -> None:
        """
        Attach camera ``camera``'s ring (page-locked for the engine).

        An older ring of the camera is released once its last frame is resolved.
        """
        ring = Ring.attach(name, slot_bytes, slots, generation)
        try:
            pinned = self.engine.pin(ring.array)
            ring.use(pinned)
        except Exception:
            ring.close()
            raise
        previous = self._rings[camera]
        self._rings[camera] = (ring, pinned)
        if previous is not None:
            self._retired.append((*previous, camera))
            self._release_retired()

    def _release_retired(self) -> None:
        keep = []
        for ring, pinned, camera in self._retired:
            if ring.in_use:
                keep.append((ring, pinned, camera))
                continue
            self.engine.unpin(pinned)
            if not ring.close():
                keep.append((ring, None, camera))  # a view still alive: try again later
        self._retired = keep

    def close(self) -> None:
        """
        Release the engine, then the rings.

        No frame, launch or engine buffer refers to them any more.
        """
        rings = [entry[0] for entry in self._rings if entry is not None] \
            + [ring for ring, _, _ in self._retired]
        self._unpin_all()
        self._rings = [None] * len(self._rings)
        self._retired = []
        self.engine.close()
        self.dispatcher.discard()
        # finished launches and their groups refer to each other, and through them to frames
        gc.collect()
        for ring in rings:
            ring.close()

    def _unpin_all(self) -> None:
        arrays = [entry[1] for entry in self._rings if entry is not None]
        arrays += [pinned for _, pinned, _ in self._retired]
        for array in arrays:
            if array is not None:
                self.engine.unpin(array)

    # ------------------------------------------------------------------ frames
    def resolve(self, camera: int, generation: int, slot: int, seq: int, release_ns: int,
                height: int, width: int, encoding: str) -> tuple | None:
        """
        Find the frame of camera ``camera`` that lies in ``slot`` of its ring of ``generation``.

        Returns its arrival for :meth:`take_in`; None when no such ring is open or the slot cannot
        hold the image (the frame is dropped, counted and reported).
        """
        pipeline = self.pipelines[camera]
        entry = self._rings[camera]
        try:
            if entry is None or entry[0].generation != generation:
                raise ValueError(f'no ring of generation {generation} '
                                 f'is open for camera {pipeline.name}')
            ring = entry[0]
            image = ring.image(slot, height, width, encoding)
        except ValueError as error:
            pipeline.stats.released += 1
            pipeline.stats.dropped_error += 1
            self.dispatcher.last_error = f'{pipeline.name}: {error}'
            self._outputs.append((DROPPED, camera, seq, time.monotonic_ns(), DROP_SLOT))
            return None
        ring.in_use += 1
        return (pipeline, release_ns, image, encoding, (seq, ring))

    def take_records(self, records: list[Record], index: int, start_ns: int) -> int:
        """
        Take in the frames of ``records[index:]`` up to the first ring mark; return its index.

        ``records``: frame-pipe records as :meth:`.frame_pipe.FrameReader.read` returns them, read
        since ``start_ns`` (``time.perf_counter_ns``). Each frame is resolved (:meth:`resolve`) and
        those resolved are taken in together (:meth:`take_in`). Returns ``len(records)`` when no
        ring mark follows; the caller opens the marked ring and calls again after it.
        """
        arrivals: list[tuple] = []
        count, end = 0, len(records)
        while index < end:
            kind, camera, generation, slot, code, height, width, seq, release_ns = records[index]
            if kind != FRAME:
                break
            count += 1
            arrival = self.resolve(camera, generation, slot, seq, release_ns, height, width,
                                   ENCODING_NAMES[code])
            if arrival is not None:
                arrivals.append(arrival)
            index += 1
        if count:
            self.take_in(arrivals, start_ns, count)
        return index

    def take_in(self, arrivals: list[tuple], start_ns: int, received: int) -> None:
        """
        Let frames resolved together arrive, stepping whenever a chain of a burst is ready.

        (:meth:`Dispatcher.arrive_all`; the images are views :meth:`resolve` made for their
        geometry and encoding, so not checked again.) ``received``: the frames the loop read since
        ``start_ns`` (``time.perf_counter_ns``), those :meth:`resolve` dropped included; the time
        from then on is metered as theirs ('arrive'), the steps apart.
        """
        dispatcher, taken, count = self.dispatcher, 0, received - len(arrivals)
        while True:
            before = taken
            taken, chain = dispatcher.arrive_all(arrivals, taken, True)
            count += taken - before
            if count:
                self.timed('arrive', start_ns, count)
            if chain:
                self.step()
            if taken == len(arrivals):
                return
            start_ns, count = time.perf_counter_ns(), 0

    def set_deadline(self, camera: int, deadline_ns: int) -> None:
        """Camera ``camera``'s relative deadline for the frames that arrive from now on."""
        if deadline_ns <= 0:
            raise ValueError(f'deadline of camera {self.pipelines[camera].name} must be positive, '
                             f'got {deadline_ns} ns')
        self.pipelines[camera].deadline_ns = deadline_ns

    def _resolved(self, frame: Frame) -> None:
        ring = frame.meta[1]
        ring.in_use -= 1
        if not ring.in_use and self._retired:
            self._release_retired()

    def _done(self, frames: list[Frame], results: Any) -> None:
        # one entry for the frames that finished together, their results as one block of bytes
        cameras, seqs = [], []
        for frame in frames:
            cameras.append(frame.pipeline.id)
            seqs.append(frame.meta[0])
            self._resolved(frame)
        self._outputs.append((DONE_BATCH, frames[0].finish_ns, cameras, seqs,
                              np.ascontiguousarray(results, np.float32).tobytes()))
        self._output_frames += len(frames)

    def _dropped(self, frame: Frame, reason: str) -> None:
        self._outputs.append(
            (DROPPED, frame.pipeline.id, frame.meta[0], time.monotonic_ns(), reason))
        self._output_frames += 1
        self._resolved(frame)

    def take_outputs(self) -> tuple[list[tuple], int]:
        """
        Return what was resolved since the last call, and how many frames that is.

        In the order it happened: ``(DONE_BATCH, finish_ns, cameras, seqs, results)`` for frames
        that finished together (``results``: their (2, k) top-k scores and class ids, float32,
        as bytes), ``(DROPPED, camera, seq, time_ns, reason)`` for a frame dropped. What goes to
        the parent as it is; :func:`expand_outputs` makes one tuple per frame of it.
        """
        outputs, frames = self._outputs, self._output_frames
        self._outputs, self._output_frames = [], 0
        return outputs, frames

    # ------------------------------------------------------------------ the loop's work
    def step(self) -> bool:
        """
        Retire finished launches and dispatch; True if anything happened.

        Only work that retired or issued something is host work (a loop polling an idle GPU is not
        host cost); a round whose DEQUEUEs launched nothing is metered apart ('hold').
        """
        dispatcher = self.dispatcher
        start = time.perf_counter_ns()
        retired = dispatcher.poll() if dispatcher.inflight else 0
        if retired:
            self.timed('retire', start, retired)
            start = time.perf_counter_ns()
        groups, asked = dispatcher.groups, dispatcher.dequeues
        issued = dispatcher.pump()
        if issued:
            self.timed('decide', start, dispatcher.groups - groups)
        elif dispatcher.dequeues != asked:
            self.timed('hold', start, dispatcher.dequeues - asked)
        now = time.monotonic_ns()
        if now >= self._host_refresh_ns:
            self._refresh_host_costs(now)
        return bool(retired or issued)

    def cycle(self, send: Callable[[list[tuple]], None]) -> None:
        """
        Do one turn of a serving loop after its frames were taken in.

        :meth:`step`, then hand what was resolved (:meth:`take_outputs`) to ``send`` (metered as
        'output').
        """
        self.step()
        if self._outputs:
            outputs, frames = self.take_outputs()
            start = time.perf_counter_ns()
            send(outputs)
            self.timed('output', start, frames)

    def idle_wait_s(self, longest_s: float) -> float:
        """
        Return how long the loop may block waiting for frames.

        0 while launches are in flight (they are polled), else ``longest_s`` or until the policy's
        hold ends.
        """
        if self.dispatcher.inflight:
            return 0.0
        return self.dispatcher.idle_wait_s(longest_s)

    def turned(self, blocked_since: int | None) -> None:
        """
        Count a turn of a serving loop.

        ``blocked_since`` (``time.perf_counter_ns``): when the turn began to block waiting for
        work, if it did. What the loop's time holds beyond its blocked time and its metered work is
        the loop's own cost: its system calls, polls that found nothing, statistics.
        """
        self.turns.count += 1
        if blocked_since is not None:
            self.turns.ns += time.perf_counter_ns() - blocked_since

    def timed(self, kind: str, start: int, count: int) -> None:
        """
        Meter the time since ``start`` (``time.perf_counter_ns``) as ``count`` units of ``kind``.

        The kinds: frames taken in ('arrive': receiving and :meth:`take_in`), outputs handed over
        ('output'), launches retired ('retire'), rounds decided ('decide'), DEQUEUEs that launched
        nothing ('hold', not host work).
        """
        meter, elapsed = self.meters[kind], time.perf_counter_ns() - start
        meter.ns += elapsed
        meter.count += count
        if self.call_times is not None:
            self.call_times.setdefault(kind, []).append(elapsed)

    # ------------------------------------------------------------------ host costs
    def host_totals(self) -> dict[str, int]:
        backend, dispatcher = self.backend, self.dispatcher
        return {'arrive_ns': self.meters['arrive'].ns, 'arrivals': self.meters['arrive'].count,
                'output_ns': self.meters['output'].ns, 'outputs': self.meters['output'].count,
                'decide_ns': self.meters['decide'].ns, 'groups': self.meters['decide'].count,
                'retire_ns': self.meters['retire'].ns, 'retired': self.meters['retire'].count,
                'hold_ns': self.meters['hold'].ns, 'holds': self.meters['hold'].count,
                'launch_ns': backend.launch_ns, 'launches': backend.launches,
                'first_ns': backend.first_layer_ns, 'first_launches': backend.first_layer_launches,
                'first_frames': backend.first_layer_frames, 'kernel_ns': backend.kernel_ns,
                'dequeues': dispatcher.dequeues,
                'polls': dispatcher.polls, 'polled_streams': dispatcher.polled_streams,
                'polled_inflight': dispatcher.polled_inflight,
                'polled_ready': dispatcher.polled_ready,
                'turns': self.turns.count, 'blocked_ns': self.turns.ns}

    def host_costs(self) -> HostCosts | None:
        """Return what this thread measured since it started (None before enough launches)."""
        return host_costs_from(self.host_totals())

    def _refresh_host_costs(self, now: int) -> None:
        totals = self.host_totals()
        delta = {key: totals[key] - self._host_mark[key] for key in totals}
        measured = host_costs_from(delta)
        if measured is not None:
            self.policy.host = measured
            self._host_mark = totals
        self._host_refresh_ns = now + round(HOST_REFRESH_S * 1e9)

    # ------------------------------------------------------------------ statistics
    def snapshot(self) -> dict:
        """
        Return plain statistics of the scheduler and every camera's pipeline.

        For diagnostics and benchmarks.
        """
        dispatcher = self.dispatcher
        now = time.monotonic_ns()
        work_ns = sum(self.meters[kind].ns for kind in HOST_WORK)
        host = self.host_costs()
        return {
            'time_ns': now, 'policy': self.policy.name, 'engine': self.engine.name,
            'scheduler': self.build,
            'device': self.engine.device_name, 'busy_ns': self.backend.busy_ns(),
            'groups': dispatcher.groups, 'launches': dispatcher.launches,
            'kernel_launches': self.engine.kernel_launches,
            'fused_launches': dispatcher.fused_launches,
            'segment_launches': dispatcher.segment_launches,
            'frames_launched': dispatcher.frames_launched, 'mean_batch': dispatcher.mean_batch,
            # frames whose images were uploaded on arrival (Dispatcher.arrive_all)
            'staged_frames': self.backend.staged_frames,
            'mean_group_size': dispatcher.mean_group_size,
            'engine_errors': dispatcher.engine_errors, 'last_error': dispatcher.last_error,
            'host_work_ns': work_ns, 'uptime_ns': now - self.started_ns,
            # the worker's resident memory: a leak shows as a steady rise
            'resident_bytes': resident_bytes(),
            'host_totals': self.host_totals(), 'host_costs': host.to_json() if host else None,
            'policy_host_costs': self.policy.host.to_json(),
            'target_batch': (self.policy.target_batch(now)
                             if hasattr(self.policy, 'target_batch') else 1),
            # rule 6 of the s3dnn policy: first-layer launches by cause and by size
            'first_layer_launches': dict(getattr(self.policy, 'first_layer_launches', {})),
            'first_layer_batches': dict(getattr(self.policy, 'first_layer_batches', {})),
            'cameras': [{'released': p.stats.released, 'completed': p.stats.completed,
                         'missed': p.stats.missed, 'dropped_queue': p.stats.dropped_queue,
                         'dropped_deadline': p.stats.dropped_deadline,
                         'dropped_error': p.stats.dropped_error,
                         'queue': len(p.queue) + (p.current is not None)} for p in self.pipelines],
        }
