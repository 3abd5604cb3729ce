"""
The s3dnn_perception node.

Camera subscriptions -> the scheduler worker process -> detections and /diagnostics.

This process does ROS I/O only. The GPU is driven by a scheduler worker in a process of its own
(:mod:`s3dnn_ros.worker`), so the GPU loop never waits for this interpreter's GIL. An image
callback copies the frame once, into a shared-memory slot of its camera, and hands the worker the
slot's number; the header stays here, keyed by the frame's sequence number. The worker's outputs
come back on a receiver thread, which only queues them and triggers a guard condition: detections
are published from the executor. A frame's deadline counts from the moment its callback receives it
(the image stamp may come from another clock, e.g. a replayed bag); the stamp and frame_id are
copied to the detection. If the worker dies, its frames are counted as dropped, /diagnostics turns
ERROR and a new worker takes over.
"""
from __future__ import annotations

import collections
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
import os
import sys
import time
from typing import Callable

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.exceptions import InvalidParameterValueException
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from .config import (annotated_topic, apply_live, camera_default, CAMERA_PARAMETERS, CameraConfig,
                     check_camera_names, check_of, compressed_topic, ConfigError, describe,
                     detections_topic, GLOBAL_PARAMETERS, IMAGE_TYPES, is_live, NODE_NAME,
                     NodeConfig, params_file_sections, read_labels, unknown_parameter, validate)
from .image_codec import array_to_image, decode_compressed, FrameRejected, image_to_array, opencv
from .messages import (Detection, DetectionEncoder, label_info, status, vision_msgs_label_types,
                       vision_msgs_types)
from .overlay import annotate, thumbnail
from .placement import describe_placement, place_cameras
from .spin import image_qos, run_node
from ..model.alexnet import alexnet
from ..scheduler.placement import gpu_shares, Slot
from ..worker.client import WorkerClient, WorkerError
from ..worker.core import DONE
from ..worker.spec import CameraSpec, WorkerSpec

#: a camera that sent frames and then none for this many diagnostics periods is an ERROR
STALE_PERIODS = 5
#: completed frames per camera whose latencies the summary's percentiles cover (an hour at 30 FPS)
LATENCY_HISTORY = 108_000
#: a camera's reject warning is logged at most this often per distinct reason (each camera and
#: reason is throttled on its own: one camera's bad frames do not hide another's)
REJECT_LOG_PERIOD_NS = 5_000_000_000
#: distinct reasons remembered per camera (a source whose every frame fails differently stays
#: bounded)
REJECT_REASONS_KEPT = 64
#: drop reasons that mean the frame was lost to a failure, not to load (an ERROR on /diagnostics)
FAILURE_REASONS = ('error', 'slot', 'worker')
#: where the class names go with vision_msgs (relative: it moves with the node's namespace)
LABEL_INFO_TOPIC = 's3dnn/label_info'
#: threads decoding compressed images (OpenCV releases the GIL while it decodes)
DECODE_THREADS = max(1, min(4, (os.cpu_count() or 1) - 1))
#: a compressed frame is dropped (counted as 'decode backlog') when this many of its camera's wait
#: for a decoder
DECODE_BACKLOG = 4


def camera_level(config, window_ratio: float, resolved: int, quiet_s: float | None,
                 error_drops: int, completed: int, last_error: str | None, rejected: int = 0,
                 accepted: int = 0, reject_reason: str = '', waiting_s: float = 0.0,
                 publishers: Callable[[], str] = str
                 ) -> tuple[str, str]:
    """
    Level and message of one camera's status for the last diagnostics period.

    ERROR: an engine or worker failure dropped its frames, every frame it sent in the period was
    rejected (the reason named), it sent frames and then none for STALE_PERIODS periods, or its
    window miss ratio (rejected frames count as missed) reached ``miss_error_ratio``; WARN: the
    ratio reached ``miss_warn_ratio``, or it has sent nothing for STALE_PERIODS periods since the
    node started (the message says what ``publishers()`` found on its topic). A camera that has not
    sent anything yet is OK (waiting) until then, so a node can start before its cameras.
    """
    stale_s = STALE_PERIODS * config.diagnostics_period_s
    if error_drops:
        return 'ERROR', f'engine error: {last_error}'
    if rejected and not accepted:
        return 'ERROR', f'every frame rejected ({rejected} in the last period): {reject_reason}'
    if quiet_s is not None and quiet_s >= stale_s:
        return 'ERROR', f'no frame for {quiet_s:.1f} s'
    if (resolved or rejected) and window_ratio >= config.miss_error_ratio:
        return 'ERROR', f'miss ratio {window_ratio:.2f} >= {config.miss_error_ratio:g}'
    if (resolved or rejected) and window_ratio >= config.miss_warn_ratio:
        return 'WARN', f'miss ratio {window_ratio:.2f} >= {config.miss_warn_ratio:g}'
    if quiet_s is None:
        if waiting_s >= stale_s:
            return 'WARN', f'no frame in {waiting_s:.1f} s since start; {publishers()}'
        return 'OK', 'waiting for the first frame'
    return 'OK', f'{completed} frames in the last period'


def host_cost_values(host: dict | None) -> dict:
    """
    Return the scheduler status's values for a worker's measured host costs (none before any).

    ``frame_us`` becomes ``host frame us``; a field without a unit, ``launch_layers``, becomes
    ``host launch layers``.
    """
    return {(f'host {key[:-3]} us' if key.endswith('_us') else f'host {key.replace("_", " ")}'):
            value for key, value in (host or {}).items()}


@dataclass(frozen=True)
class FrameOutcome:
    """
    How one received frame ended, for a tool that wants every frame (``frame_sink``).

    ``outcome`` is 'done' (a detection was published; ``finished_ns``, ``latency_ms`` and
    ``missed`` set), 'dropped' (with the reason the node counts it under) or 'rejected' (the image
    could not be used, with the reason). Times are ``time.monotonic_ns``; ``stamp_ns`` is the
    source header's stamp.
    """

    camera: str
    stamp_ns: int
    received_ns: int
    outcome: str
    reason: str = ''
    finished_ns: int | None = None
    latency_ms: float | None = None
    deadline_ms: float = 0.0
    missed: bool = False


def stamp_ns(header) -> int:
    """Return a header's stamp in nanoseconds."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


@dataclass
class CameraState:
    """
    One camera's publisher, its frames in flight and its counters.

    Frames in flight are kept as header and release time by sequence number. Touched only by the
    node's callbacks (one mutually exclusive group).
    """

    config: CameraConfig
    index: int  # in its worker's cameras
    publisher: object
    worker: Slot = Slot(0)  # the scheduler worker (GPU, worker) its frames run on
    received: int = 0
    rejected: int = 0
    completed: int = 0
    missed: int = 0
    dropped: collections.Counter = field(default_factory=collections.Counter)  # reason -> frames
    last_received_ns: int | None = None
    last_reject_reason: str = ''
    reject_logged_ns: dict = field(default_factory=dict)  # reason -> when it was last logged
    in_flight: dict = field(default_factory=dict)  # seq -> (header, release_ns)
    annotated: object = None  # publisher of its annotated pictures, when <camera>.annotated
    # seq -> small BGR copy of the frame, to annotate
    thumbnails: dict = field(default_factory=dict)
    next_thumbnail_ns: int = 0
    decoding: int = 0       # compressed frames handed to a decoder thread and not yet back
    decoded: int = 0
    decode_ns: int = 0      # decoder time of those, summed
    latencies_ms: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=LATENCY_HISTORY))
    window_latencies_ms: list[float] = field(default_factory=list)
    previous: dict = field(default_factory=dict)

    def totals(self) -> dict:
        failures = sum(self.dropped[reason] for reason in FAILURE_REASONS)
        return {'completed': self.completed, 'missed': self.missed,
                'dropped': sum(self.dropped.values()), 'dropped_error': failures,
                'received': self.received, 'rejected': self.rejected}

    def latency_ms(self, percentile: float) -> float:
        return (float(np.percentile(np.asarray(self.latencies_ms), percentile))
                if self.latencies_ms else 0.0)


class PerceptionCore:
    """
    What the perception node does, in steps.

    A plain node takes the steps at once (:class:`PerceptionNode`) and a lifecycle node takes one
    transition at a time (``perception_lifecycle_node``): read and check the parameters
    (:meth:`_read_parameters`), start the scheduler worker and the publishers (:meth:`_configure`),
    subscribe to the cameras (:meth:`_subscribe`, undone by :meth:`_unsubscribe`), stop and free
    everything (:meth:`_teardown`). Mixed into an rclpy Node.
    """

    config: NodeConfig
    #: the scheduler workers, by (CUDA device, worker on that device) (empty until configured)
    workers: dict[Slot, WorkerClient] = {}
    cameras: dict
    _subscriptions_by_camera: list
    #: called on the executor thread with a :class:`FrameOutcome` for each received frame once it
    #: is resolved (an evaluation tool sets it before spinning; every received frame gets one)
    frame_sink: Callable[[FrameOutcome], None] | None = None

    # ------------------------------------------------------------------ configuration
    def _check_params_files(self, args: list[str]) -> None:
        """
        Check that every ``--params-file`` among ``args`` has a section for this node.

        Sections are matched by the node's full name, as ROS matches them: a file without one is
        meant for another node, or a namespace remap left it behind, and the node would silently
        run on its defaults.
        """
        full_name = self.get_fully_qualified_name()
        files = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == '--params-file']
        for path in files:
            found, sections = params_file_sections(path, full_name)
            if not found:
                raise ConfigError(f'parameters file {path!r}: no section for node {full_name} '
                                  f'(sections: {", ".join(sections) or "none"}); '
                                  f'allowed a section {full_name}:, /**: '
                                  'or another pattern that matches it')

    def _declare(self, name, default):
        """
        Declare ``name`` with its description, read-only unless live.

        It gets its range where it has one.

        A value rclpy refuses by that range is reported with the parameter's own one-line message.
        """
        check = check_of(name)
        descriptor = ParameterDescriptor(description=describe(name), read_only=not is_live(name),
                                         dynamic_typing=True)
        kind, low, high = getattr(check, 'range', (None, 0, 0))
        if kind is float:
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=low, to_value=high, step=0.0)]
        elif kind is int:
            descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
        try:
            return self.declare_parameter(name, default, descriptor).value
        except InvalidParameterValueException as error:
            value = (self._parameter_overrides[name].value if name in self._parameter_overrides
                     else default)
            # raises ConfigError naming the parameter, the value and what is allowed
            check(name, value)
            raise ConfigError(f'parameter {name}={value!r}: {error}') from error

    def _read_parameters(self):
        values = {name: self._declare(name, default) for name, default, _ in GLOBAL_PARAMETERS}
        cameras = check_camera_names('cameras', values['cameras'])
        for camera in cameras:  # before declaring <camera>.*
            for key, _, _ in CAMERA_PARAMETERS:
                values[f'{camera}.{key}'] = self._declare(f'{camera}.{key}',
                                                          camera_default(key, camera))
        # rclpy keeps the values given to this node (params files, -p, parameter_overrides) that
        # were not declared in _parameter_overrides: any left over is a misspelled or misplaced
        # parameter
        for name, parameter in self._parameter_overrides.items():
            if not self.has_parameter(name) and not name.startswith('qos_overrides.'):
                raise ConfigError(
                    unknown_parameter(name, parameter.value, sorted(values), cameras))
        config = validate(values)
        users: dict[str, str] = {}
        # distinct as written; now as this node resolves them (namespace, remaps)
        for camera in config.cameras:
            resolved = self.resolve_topic_name(camera.topic)
            if resolved in users:
                raise ConfigError(f'parameter {camera.name}.topic={camera.topic!r}: '
                                  'allowed a topic no other camera uses '
                                  f'({users[resolved]} uses {resolved})')
            users[resolved] = camera.name
        return config

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        """
        Take a parameter change at run time.

        LIVE_PARAMETERS are checked and applied (a camera's new deadline counts for the frames it
        receives from now on), the others are read-only (rclpy refuses them by their descriptor
        before this is called).
        """
        try:
            config = apply_live(self.config,
                                {parameter.name: parameter.value for parameter in parameters})
        except ConfigError as error:
            return SetParametersResult(successful=False, reason=str(error))
        self.config = config
        # not configured (a lifecycle node): the workers start with the new values
        if not self.workers:
            return SetParametersResult(successful=True)
        for camera in config.cameras:
            state = self.cameras[camera.name]
            if state.config != camera:
                if camera.deadline_ms != state.config.deadline_ms:
                    self.workers[state.worker].set_deadline(state.index,
                                                            round(camera.deadline_ms * 1e6))
                state.config = camera
        return SetParametersResult(successful=True)

    def worker_spec(self, device: int, cameras: list[CameraConfig],
                    gpu_share: float = 1.0) -> WorkerSpec:
        """
        Return the spec of a scheduler worker on GPU ``device``, serving ``cameras``.

        ``gpu_share``: 1 / the workers sharing the GPU.
        """
        config = self.config
        return WorkerSpec(cameras=tuple(CameraSpec(camera.name, round(camera.deadline_ms * 1e6),
                                                   camera.queue_depth)
                                        for camera in cameras),
                          policy=config.policy, engine=config.engine, device_id=device,
                          weights=config.weights, cost_table=config.cost_table, top_k=config.top_k,
                          max_batch=config.max_batch, max_inflight=config.max_inflight,
                          firm_deadlines=config.firm_deadlines,
                          stats_period_s=min(0.25, config.diagnostics_period_s / 2),
                          gpu_share=gpu_share)

    def _configure(self):
        """
        Start the scheduler worker and make the publishers and timer.

        Starting the worker loads the weights, the kernels and the cost table.
        """
        config = self.config
        log = self.get_logger()
        self.labels = read_labels(config.labels, alexnet().num_classes) if config.labels else None
        if not config.weights:
            log.warning('weights: none given, using seeded UNTRAINED weights: '
                        'the classes reported mean nothing')
        types = vision_msgs_types()
        if config.detections_format == 'vision_msgs' and types is None:
            raise ConfigError("parameter detections_format='vision_msgs': "
                              'allowed only where vision_msgs is installed (not importable here); '
                              'allowed here: json, auto')
        #: detections_format auto found no vision_msgs: JSON, and a WARN on the scheduler status
        #: says so
        self.format_fell_back = config.detections_format == 'auto' and types is None
        self.encoder = DetectionEncoder(None if config.detections_format == 'json' else types)
        label_types = (vision_msgs_label_types()
                       if self.labels and config.detections_format != 'json' else None)
        self.label_info = None
        if label_types is not None:  # late subscribers get it too (transient local)
            qos = QoSProfile(depth=1, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
            self.label_info = self.create_publisher(label_types[0], LABEL_INFO_TOPIC, qos)
            header = Header(stamp=self.get_clock().now().to_msg())
            self.label_info.publish(label_info(label_types, self.labels, header))
        self.cameras = {}
        compressed = [camera for camera in config.cameras if camera.transport == 'compressed']
        needs = [(f'{camera.name}.transport', 'compressed') for camera in compressed]
        needs += [(f'{camera.name}.annotated', True) for camera in config.cameras
                  if camera.annotated]
        if needs and opencv() is None:
            raise ConfigError(f'parameter {needs[0][0]}={needs[0][1]!r}: '
                              'allowed only with OpenCV (its Python module cv2 is not importable '
                              'here; pip install opencv-python-headless)')
        self._decoder = ThreadPoolExecutor(DECODE_THREADS, 's3dnn-decode') if compressed else None
        self._decoded: collections.deque = collections.deque()  # from the decoder threads
        self._decoded_ready = self.create_guard_condition(self._take_decoded)
        placement = place_cameras(config)
        self._by_worker: dict[Slot, list[CameraState]] = {}
        for camera in config.cameras:
            slot = placement[camera.name]
            served = self._by_worker.setdefault(slot, [])
            state = CameraState(camera, len(served),
                                self.create_publisher(self.encoder.msg_type,
                                                      detections_topic(camera.name), 10),
                                slot)
            served.append(state)
            if camera.annotated:
                state.annotated = self.create_publisher(Image, annotated_topic(camera.name), 2)
            self.cameras[camera.name] = state
        self._subscriptions_by_camera = []
        self._states = list(self.cameras.values())  # in configuration order
        self._outputs: collections.deque = collections.deque()   # from the receiver threads
        self._restarts: collections.deque = collections.deque()  # (worker, why it died)
        self._outputs_ready = self.create_guard_condition(self._publish_outputs)
        if len(self._by_worker) > 1:
            log.info('cameras per scheduler worker: '
                     f'{describe_placement(placement, config.workers_per_gpu)}')
        self.device_names = {}
        self.workers = {}
        shares = gpu_shares(self._by_worker)
        for slot, states in sorted(self._by_worker.items()):
            self.workers[slot] = worker = WorkerClient(
                self.worker_spec(slot.device, [state.config for state in states], shares[slot]),
                lambda outputs, w=slot: self._receive_outputs(w, outputs),
                lambda why, w=slot: self._worker_replaced(w, why))
            info = worker.info
            self.engine_name = info['engine']
            self.device_names[slot] = info['device']
            log.info(f'engine: {info["why"]}; costs: {info["costs"]}; '
                     f'scheduler modules {info["scheduler"]}; '
                     f'scheduler worker {slot.label(config.workers_per_gpu)} pid {worker.pid}')
        self.device_name = ', '.join(dict.fromkeys(self.device_names.values()))
        if config.weights:
            log.info(f'weights: {config.weights}')
        log.info(f'detections: {self.encoder.type_name}')
        for camera in config.cameras:
            source = (compressed_topic(camera.topic) if camera.transport == 'compressed'
                      else camera.topic)
            log.info(f'camera {camera.name}: {self.resolve_topic_name(source)} '
                     f'({camera.transport}) -> '
                     f'{self.resolve_topic_name(detections_topic(camera.name))}, '
                     f'deadline {camera.deadline_ms:g} ms, queue depth {camera.queue_depth}')
        self._scheduler_previous = {slot: {} for slot in self.workers}
        self._started_ns = self._window_start_ns = time.monotonic_ns()
        self.diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diagnostics_timer = self.create_timer(config.diagnostics_period_s,
                                                    self._publish_diagnostics)
        log.info(f'policy {config.policy}{" (firm deadlines)" if config.firm_deadlines else ""}, '
                 f'{len(self.cameras)} camera(s)')

    def _subscribe(self) -> None:
        """Subscribe to every camera: frames flow from now on."""
        qos = image_qos(self.config.qos_reliability, self.config.qos_depth)
        for state in self._states:
            camera = state.config
            if camera.transport == 'compressed':
                subscription = self.create_subscription(
                    CompressedImage, compressed_topic(camera.topic),
                    lambda msg, s=state: self._on_compressed(s, msg), qos)
            else:
                subscription = self.create_subscription(
                    Image, camera.topic, lambda msg, s=state: self._on_image(s, msg), qos)
            self._subscriptions_by_camera.append(subscription)

    def _unsubscribe(self) -> None:
        """Stop taking frames; frames already with the worker still finish and are published."""
        for subscription in self._subscriptions_by_camera:
            self.destroy_subscription(subscription)
        self._subscriptions_by_camera = []

    def _teardown(self) -> None:
        """
        Stop the worker (it frees the GPU), remove the frame slots and destroy what was made.

        That is what :meth:`_configure` made; safe on a half-configured node.
        """
        if getattr(self, '_subscriptions_by_camera', None):
            self._unsubscribe()
        decoder = getattr(self, '_decoder', None)
        if decoder is not None:
            decoder.shutdown(cancel_futures=True)
            self._decoder = None
        workers, self.workers = self.workers, {}
        for worker in workers.values():
            worker.close()
        timer = getattr(self, '_diagnostics_timer', None)
        if timer is not None:
            self.destroy_timer(timer)
            self._diagnostics_timer = None
        for state in getattr(self, 'cameras', {}).values():
            self.destroy_publisher(state.publisher)
            if state.annotated is not None:
                self.destroy_publisher(state.annotated)
        self.cameras = {}
        for name in ('diagnostics', 'label_info'):
            publisher = getattr(self, name, None)
            if publisher is not None:
                self.destroy_publisher(publisher)
                setattr(self, name, None)
        for name in ('_outputs_ready', '_decoded_ready'):
            guard = getattr(self, name, None)
            if guard is not None:
                self.destroy_guard_condition(guard)
                setattr(self, name, None)

    # ------------------------------------------------------------------ frames in
    def _on_image(self, camera: CameraState, msg: Image) -> None:
        now = time.monotonic_ns()
        camera.received += 1
        camera.last_received_ns = now
        try:
            image, encoding = image_to_array(msg)
        except FrameRejected as error:
            self._reject(camera, msg.header, str(error), now, now)
            return
        self._submit(camera, msg.header, image, encoding, now)

    def _submit(self, camera: CameraState, header, image: np.ndarray, encoding: str,
                release_ns: int) -> None:
        seq, refused = self.workers[camera.worker].submit(camera.index, image, encoding,
                                                          release_ns)
        if seq is None:
            self._drop(camera, header, release_ns, refused)
            return
        camera.in_flight[seq] = (header, release_ns)
        if camera.annotated is not None and release_ns >= camera.next_thumbnail_ns:
            camera.next_thumbnail_ns = release_ns + round(1e9 / self.config.annotated_hz)
            camera.thumbnails[seq] = thumbnail(image, encoding, self.config.annotated_width)

    def _drop(self, camera: CameraState, header, release_ns: int, reason: str) -> None:
        camera.dropped[reason] += 1
        if self.frame_sink is not None:
            self.frame_sink(FrameOutcome(camera.config.name, stamp_ns(header), release_ns,
                                         'dropped', reason, deadline_ms=camera.config.deadline_ms))

    def _reject(self, camera: CameraState, header, reason: str, release_ns: int, now: int) -> None:
        camera.rejected += 1
        camera.last_reject_reason = reason
        if self.frame_sink is not None:
            self.frame_sink(FrameOutcome(camera.config.name, stamp_ns(header), release_ns,
                                         'rejected', reason,
                                         deadline_ms=camera.config.deadline_ms))
        last = camera.reject_logged_ns.get(reason)
        if last is None or now - last >= REJECT_LOG_PERIOD_NS:
            if last is None and len(camera.reject_logged_ns) >= REJECT_REASONS_KEPT:
                camera.reject_logged_ns.clear()
            camera.reject_logged_ns[reason] = now
            self.get_logger().warning(f'camera {camera.config.name}: frame rejected: {reason}')

    # ---------------------------------------------------------- compressed images: decoder threads
    def _on_compressed(self, camera: CameraState, msg: CompressedImage) -> None:
        """
        Send a compressed frame to a decoder thread.

        Decoding then holds up neither the executor nor other cameras; the frame's deadline counts
        from now, so the decode time is part of its latency.
        """
        now = time.monotonic_ns()
        camera.received += 1
        camera.last_received_ns = now
        if camera.decoding >= DECODE_BACKLOG:
            self._drop(camera, msg.header, now, 'decode backlog')
            return
        camera.decoding += 1
        self._decoder.submit(self._decode, camera, msg, now)

    def _decode(self, camera: CameraState, msg: CompressedImage, release_ns: int) -> None:
        """Decode on a decoder thread and hand the result to the executor."""
        begin = time.perf_counter_ns()
        try:
            result = decode_compressed(msg)
        except FrameRejected as error:
            result = error
        except Exception as error:  # noqa: BLE001 - the thread's boundary:
            # whatever OpenCV raises rejects the frame
            result = FrameRejected(f'compressed image cannot be decoded: {error}')
        self._decoded.append((camera, msg.header, release_ns, result,
                              time.perf_counter_ns() - begin))
        self._decoded_ready.trigger()

    def _take_decoded(self) -> None:
        """
        Submit decoded frames to the worker, count the ones that could not be decoded.

        Runs on the executor.
        """
        decoded = self._decoded
        while decoded:
            camera, header, release_ns, result, spent_ns = decoded.popleft()
            camera.decoding -= 1
            camera.decoded += 1
            camera.decode_ns += spent_ns
            if isinstance(result, FrameRejected):
                self._reject(camera, header, str(result), release_ns, time.monotonic_ns())
            else:
                self._submit(camera, header, *result, release_ns)

    # -------------------------------------------------------- outputs: receiver thread -> executor
    def _receive_outputs(self, slot: Slot, outputs: list[tuple]) -> None:
        """Receiver thread of worker ``slot``: queue its outputs, wake the executor."""
        self._outputs.append((slot, outputs))
        self._outputs_ready.trigger()

    def _worker_replaced(self, slot: Slot, why: str) -> None:
        """Receiver thread: worker ``slot`` died and a new one is being started."""
        self._restarts.append((slot, why))
        self.get_logger().error(f'{slot.label(self.config.workers_per_gpu)}: {why}; '
                                'starting a new scheduler worker')
        self._outputs_ready.trigger()

    def _publish_outputs(self) -> None:
        """Executor: publish the detections of finished frames, count dropped ones."""
        outputs = self._outputs
        while outputs:
            slot, batch = outputs.popleft()
            states = self._by_worker[slot]
            for kind, index, seq, _, payload in batch:
                self._resolve(states[index], kind, seq, payload)

    def _resolve(self, camera: CameraState, kind: str, seq: int, payload) -> None:
        """Executor: one frame the worker finished (its detection published) or dropped."""
        header, release_ns = camera.in_flight.pop(seq)
        picture = camera.thumbnails.pop(seq, None)
        if kind != DONE:
            self._drop(camera, header, release_ns, payload)
            return
        scores, ids = payload[0], [int(i) for i in payload[1]]  # (the worker sends floats)
        finished = time.monotonic_ns()
        latency_ms = (finished - release_ns) / 1e6
        missed = latency_ms > camera.config.deadline_ms
        if self.frame_sink is not None:
            self.frame_sink(FrameOutcome(camera.config.name, stamp_ns(header), release_ns,
                                         'done', finished_ns=finished, latency_ms=latency_ms,
                                         deadline_ms=camera.config.deadline_ms, missed=missed))
        camera.publisher.publish(self.encoder.encode(Detection(
            camera.config.name, header, ids, scores, self.labels, latency_ms,
            camera.config.deadline_ms, missed)))
        if picture is not None:
            names = [self.labels[i] if self.labels else f'class {i}' for i in ids]
            msg = Image(header=header)
            array_to_image(annotate(picture, list(zip(names, scores)), latency_ms,
                                    camera.config.deadline_ms, missed), 'bgr8', msg)
            camera.annotated.publish(msg)
        camera.completed += 1
        camera.missed += missed
        camera.latencies_ms.append(latency_ms)
        camera.window_latencies_ms.append(latency_ms)

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        now = time.monotonic_ns()
        period_ns = max(1, now - self._window_start_ns)
        self._window_start_ns = now
        stats = {slot: worker.stats or {} for slot, worker in self.workers.items()}
        restarts = {slot: [] for slot in self.workers}
        while self._restarts:
            slot, why = self._restarts.popleft()
            restarts[slot].append(why)
        last_error = {slot: restarts[slot][-1] if restarts[slot]
                      else stats[slot].get('last_error') for slot in self.workers}
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        for camera in self._states:
            array.status.append(self._camera_status(camera, now, stats[camera.worker],
                                                    last_error[camera.worker]))
        for slot in self.workers:
            array.status.append(self._scheduler_status(slot, period_ns, stats[slot],
                                                       restarts[slot]))
        self.diagnostics.publish(array)

    def _camera_status(self, camera: CameraState, now: int, stats: dict, last_error: str | None):
        totals = camera.totals()
        window = {key: value - camera.previous.get(key, 0) for key, value in totals.items()}
        camera.previous = totals
        latencies, camera.window_latencies_ms = camera.window_latencies_ms, []
        resolved = window['completed'] + window['dropped']
        rejected = window['rejected']
        window_ratio = ((window['missed'] + window['dropped'] + rejected) / (resolved + rejected)
                        if resolved + rejected else 0.0)
        quiet_s = ((now - camera.last_received_ns) / 1e9 if camera.last_received_ns is not None
                   else None)
        level, message = camera_level(self.config, window_ratio, resolved, quiet_s,
                                      window['dropped_error'], window['completed'], last_error,
                                      rejected, window['received'] - rejected,
                                      camera.last_reject_reason, (now - self._started_ns) / 1e9,
                                      lambda: self._publishers_on(camera.config))
        resolved_total = totals['completed'] + totals['dropped']
        values = {'received': camera.received, 'completed': camera.completed,
                  'missed': camera.missed, 'dropped': totals['dropped'],
                  'rejected': camera.rejected,
                  'miss ratio (window)': window_ratio,
                  'miss ratio (total)': ((camera.missed + totals['dropped']) / resolved_total
                                         if resolved_total else 0.0)}
        lat = np.asarray(latencies) if latencies else None
        for label, q in (('p50', 50), ('p95', 95), ('p99', 99)):
            values[f'latency {label} ms'] = (float(np.percentile(lat, q)) if lat is not None
                                             else 0.0)
        values['latency max ms'] = float(lat.max()) if lat is not None else 0.0
        values['deadline ms'] = camera.config.deadline_ms
        values['gpu'] = camera.worker.device
        if self.config.workers_per_gpu > 1:
            values['worker'] = camera.worker.worker
        cameras = stats.get('cameras')
        values['queue length'] = cameras[camera.index]['queue'] if cameras else 0
        for reason, count in sorted(camera.dropped.items()):
            values[f'dropped ({reason})'] = count
        if camera.decoded:
            values['decode ms (mean)'] = camera.decode_ns / camera.decoded / 1e6
        if camera.rejected:
            values['last reject reason'] = camera.last_reject_reason
        return status(f's3dnn: {camera.config.name}', level, message,
                      self.device_names[camera.worker], values)

    def _publishers_on(self, camera: CameraConfig) -> str:
        """
        Describe what is publishing on a camera's topic, for a camera that sends nothing.

        No one, or publishers whose type or reliability cannot reach the node's subscription.
        """
        compressed = camera.transport == 'compressed'
        topic = self.resolve_topic_name(compressed_topic(camera.topic) if compressed
                                        else camera.topic)
        publishers = self.get_publishers_info_by_topic(topic)
        if not publishers:
            return f'no publisher on {topic}'
        wanted = IMAGE_TYPES[camera.transport]
        reliable = self.config.qos_reliability == 'reliable'
        notes = []
        for info in publishers:
            if info.topic_type != wanted:
                notes.append(f'{info.node_name} publishes {info.topic_type}, not {wanted}')
            elif reliable and info.qos_profile.reliability == QoSReliabilityPolicy.BEST_EFFORT:
                notes.append(f'{info.node_name} publishes best_effort, '
                             'the subscription is reliable (qos.reliability)')
        return (f'{len(publishers)} publisher(s) on {topic}'
                + (': ' + '; '.join(notes) if notes else ''))

    def _scheduler_status(self, slot: Slot, period_ns: int, stats: dict, restarts: list[str]):
        """
        Return scheduler worker ``slot``'s status.

        Named 's3dnn: scheduler' on a node with one worker, else 's3dnn: scheduler gpu<N>' (one
        worker per GPU) or 's3dnn: scheduler gpu<N> worker<K>', with the worker's cameras among
        its values.
        """
        totals = {'busy_ns': stats.get('busy_ns', 0),
                  'engine_errors': stats.get('engine_errors', 0),
                  'host_work_ns': stats.get('host_work_ns', 0),
                  'uptime_ns': stats.get('uptime_ns', 0)}
        previous, self._scheduler_previous[slot] = self._scheduler_previous[slot], totals
        # a new worker counts from zero again
        fresh = totals['uptime_ns'] < previous.get('uptime_ns', 0)
        delta = {key: value - (0 if fresh else previous.get(key, 0))
                 for key, value in totals.items()}
        busy = delta['busy_ns'] / period_ns
        host_busy = delta['host_work_ns'] / period_ns
        namesakes = self.get_node_names_and_namespaces().count((self.get_name(),
                                                                self.get_namespace()))
        if restarts:
            level, message = 'ERROR', f'{restarts[-1]}; a new worker was started'
        elif delta['engine_errors'] > 0:
            level, message = 'ERROR', f'engine error: {stats.get("last_error")}'
        elif namesakes > 1:
            level, message = 'ERROR', (f'{namesakes} nodes named '
                                       f'{self.get_fully_qualified_name()} on the graph: '
                                       'their detections and statuses mix on the same topics')
        elif self.format_fell_back:
            level, message = 'WARN', ('running; detections are JSON in std_msgs/String because '
                                      'vision_msgs is not installed (detections_format: '
                                      'json chooses that without this warning)')
        else:
            level, message = 'OK', 'running'
        values = {'policy': self.config.policy, 'detections': self.encoder.type_name,
                  'engine': self.engine_name, 'device': self.device_names[slot],
                  'gpu busy fraction': min(1.0, max(0.0, busy)),
                  'scheduler host busy fraction': min(1.0, max(0.0, host_busy)),
                  'groups dispatched': stats.get('groups', 0),
                  'mean group size': stats.get('mean_group_size', 0.0),
                  'launches': stats.get('launches', 0),
                  'fused launches': stats.get('fused_launches', 0),
                  'segment launches': stats.get('segment_launches', 0),
                  'mean batch': stats.get('mean_batch', 0.0),
                  'target batch': stats.get('target_batch', 1),
                  'engine errors': stats.get('engine_errors', 0),
                  'worker restarts': self.workers[slot].restarts,
                  'worker pid': self.workers[slot].pid or 0,
                  'worker memory MB': round(stats.get('resident_bytes', 0) / 1e6, 1),
                  'cameras': ', '.join(state.config.name for state in self._by_worker[slot])}
        for cause, launches in stats.get('first_layer_launches', {}).items():
            values[f'first-layer launches ({cause})'] = launches
        values.update(host_cost_values(stats.get('host_costs')))
        name = ('s3dnn: scheduler' if len(self.workers) == 1
                else f's3dnn: scheduler {slot.label(self.config.workers_per_gpu)}')
        return status(name, level, message, self.device_names[slot], values)

    # ------------------------------------------------------------------ summary and shutdown
    def summary(self) -> list[dict]:
        """Per-camera totals for the command-line summary table."""
        return [{'camera': name, 'received': camera.received, 'completed': camera.completed,
                 'missed': camera.missed, 'dropped': sum(camera.dropped.values()),
                 'rejected': camera.rejected, 'p50_ms': camera.latency_ms(50),
                 'p99_ms': camera.latency_ms(99)} for name, camera in self.cameras.items()]

    def pending(self) -> int:
        """Frames handed to the worker and not yet resolved (published or counted dropped)."""
        return (sum(len(camera.in_flight) + camera.decoding for camera in self._states)
                + len(self._outputs))


class PerceptionNode(PerceptionCore, Node):
    """
    Runs AlexNet on every configured camera under one GPU scheduler (a worker process).

    It runs from the moment it is made.
    """

    def __init__(self, **node_options):
        Node.__init__(self, NODE_NAME, **node_options)
        try:
            self._check_params_files([*(node_options.get('cli_args') or []), *sys.argv])
            self.config = self._read_parameters()
            self._configure()
            self._subscribe()
            self.add_on_set_parameters_callback(self._on_set_parameters)
        except (ConfigError, WorkerError):
            self.destroy_node()  # also stops a worker that was already started
            raise

    def destroy_node(self):
        """Stop the worker (it frees the GPU), remove the frame slots, then the ROS entities."""
        self._teardown()
        return Node.destroy_node(self)


def main(args=None):
    return run_node(PerceptionNode, NODE_NAME, (ConfigError, WorkerError), args)


if __name__ == '__main__':
    raise SystemExit(main())
