"""The s3dnn_perception node: camera subscriptions -> S3DNN dispatcher -> detections and /diagnostics.

Executor callbacks only turn an Image into a numpy view and hand it to the dispatcher, which runs on
its own thread and publishes each camera's detection from its completion callback: the executor never
waits for inference. A frame's deadline counts from the moment its callback receives it (the image
stamp may come from another clock, e.g. a replayed bag); the stamp and frame_id are copied to the
detection.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rcl_interfaces.msg import ParameterDescriptor
from sensor_msgs.msg import Image

from ..engine.base import EngineError
from ..engine.costs import CostTableError
from ..engine.select import make_engine
from ..model.alexnet import alexnet
from ..model.weights import WeightsError, init_weights, load_weights
from ..scheduler.dispatcher import Dispatcher, EngineBackend
from ..scheduler.job import Frame, Pipeline
from ..scheduler.policies import make_policy
from .config import (CAMERA_PARAMETERS, GLOBAL_PARAMETERS, NODE_NAME, CameraConfig, ConfigError, camera_default,
                     check_camera_names, detections_topic, read_labels, validate)
from .image_codec import FrameRejected, image_to_array
from .messages import Detection, DetectionEncoder, status
from .spin import image_qos, run_node

#: a camera that sent frames and then none for this many diagnostics periods is an ERROR
STALE_PERIODS = 5
#: more cameras than this share streams (the GPU has 32 hardware queues at most)
MAX_STREAMS = 32
#: completed frames per camera whose latencies the summary's percentiles cover (an hour at 30 FPS)
LATENCY_HISTORY = 108_000


def camera_level(config, window_ratio: float, resolved: int, quiet_s: float | None, error_drops: int,
                 completed: int, last_error: str | None) -> tuple[str, str]:
    """Level and message of one camera's status for the last diagnostics period.

    ERROR: an engine error dropped its frames, it sent frames and then none for STALE_PERIODS periods,
    or its window miss ratio reached ``miss_error_ratio``; WARN: the ratio reached ``miss_warn_ratio``.
    A camera that never sent a frame is OK (waiting), so a node can start before its cameras.
    """
    if error_drops:
        return 'ERROR', f'engine error: {last_error}'
    if quiet_s is not None and quiet_s >= STALE_PERIODS * config.diagnostics_period_s:
        return 'ERROR', f'no frame for {quiet_s:.1f} s'
    if resolved and window_ratio >= config.miss_error_ratio:
        return 'ERROR', f'miss ratio {window_ratio:.2f} >= {config.miss_error_ratio:g}'
    if resolved and window_ratio >= config.miss_warn_ratio:
        return 'WARN', f'miss ratio {window_ratio:.2f} >= {config.miss_warn_ratio:g}'
    if quiet_s is None:
        return 'OK', 'waiting for the first frame'
    return 'OK', f'{completed} frames in the last period'


@dataclass
class CameraState:
    """One camera's pipeline, publisher and the counters the node keeps beside the dispatcher's."""

    config: CameraConfig
    pipeline: Pipeline
    publisher: object
    received: int = 0
    rejected: int = 0
    last_received_ns: int | None = None
    last_reject_reason: str = ''
    window_latencies_ms: list[float] = field(default_factory=list)
    previous: dict = field(default_factory=dict)


class PerceptionNode(Node):
    """Runs AlexNet on every configured camera under one GPU scheduler."""

    def __init__(self, **node_options):
        super().__init__(NODE_NAME, **node_options)
        try:
            self.config = self._read_parameters()
            self._setup()
        except (ConfigError, EngineError):
            self.destroy_node()  # also closes an engine that was already made
            raise

    # ------------------------------------------------------------------ configuration
    def _declare(self, name, default):
        descriptor = ParameterDescriptor(dynamic_typing=True)
        return self.declare_parameter(name, default, descriptor).value

    def _read_parameters(self):
        values = {name: self._declare(name, default) for name, default, _ in GLOBAL_PARAMETERS}
        for camera in check_camera_names('cameras', values['cameras']):  # before declaring <camera>.*
            for key, _, _ in CAMERA_PARAMETERS:
                values[f'{camera}.{key}'] = self._declare(f'{camera}.{key}', camera_default(key, camera))
        return validate(values)

    def _setup(self):
        config = self.config
        log = self.get_logger()
        network = alexnet(top_k=config.top_k)
        if config.weights:
            try:
                weights = load_weights(config.weights, network)
            except WeightsError as error:
                raise ConfigError(f'parameter weights={config.weights!r}: {error}') from error
            log.info(f'weights: {config.weights}')
        else:
            weights = init_weights(network, seed=0)
            log.warning('weights: none given, using seeded UNTRAINED weights: the classes reported mean nothing')
        self.labels = read_labels(config.labels, network.num_classes) if config.labels else None
        # a stream per camera (the policies put a camera's kernels on its own stream); one for sequential
        streams = 1 if config.policy == 'sequential' else min(len(config.cameras), MAX_STREAMS)
        self.engine, why = make_engine(config.engine, network, weights, config.device_id, config.max_batch,
                                       config.cost_table or None, streams)
        log.info(f'engine: {why}')
        self.backend = EngineBackend(self.engine)
        try:
            costs = self.engine.cost_table()
        except CostTableError as error:
            raise ConfigError(f'parameter cost_table={config.cost_table!r}: {error}') from error
        policy = make_policy(config.policy, costs, firm=config.firm_deadlines, max_batch=config.max_batch,
                             max_inflight=config.max_inflight)
        self.dispatcher = Dispatcher(policy, self.backend, on_done=self._publish_detection)
        self.encoder = DetectionEncoder()
        log.info(f'detections: {self.encoder.type_name} on {detections_topic("<camera>")}')
        qos = image_qos(config.qos_reliability, config.qos_depth)
        self.cameras: dict[str, CameraState] = {}
        for camera in config.cameras:
            pipeline = self.dispatcher.add_pipeline(camera.name, round(camera.deadline_ms * 1e6), camera.queue_depth,
                                                    camera.fps_hint or None, LATENCY_HISTORY)
            state = CameraState(camera, pipeline, self.create_publisher(self.encoder.msg_type,
                                                                         detections_topic(camera.name), 10))
            self.create_subscription(Image, camera.topic, lambda msg, s=state: self._on_image(s, msg), qos)
            self.cameras[camera.name] = state
            log.info(f'camera {camera.name}: {camera.topic} -> {detections_topic(camera.name)}, '
                     f'deadline {camera.deadline_ms:g} ms, queue depth {camera.queue_depth}')
        self._states = list(self.cameras.values())  # indexed by pipeline id
        self._window_lock = threading.Lock()
        self._scheduler_previous = {}
        self._window_start_ns = time.monotonic_ns()
        self.diagnostics = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_timer(config.diagnostics_period_s, self._publish_diagnostics)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.dispatcher.run, args=(self._stop,), name='s3dnn-dispatcher',
                                        daemon=True)
        self._thread.start()
        log.info(f'policy {config.policy}{" (firm deadlines)" if config.firm_deadlines else ""}, '
                 f'{len(self.cameras)} camera(s)')

    # ------------------------------------------------------------------ frames in, detections out
    def _on_image(self, camera: CameraState, msg: Image) -> None:
        now = time.monotonic_ns()
        camera.received += 1
        camera.last_received_ns = now
        try:
            image, encoding = image_to_array(msg)
        except FrameRejected as error:
            camera.rejected += 1
            camera.last_reject_reason = str(error)
            self.get_logger().warning(f'camera {camera.config.name}: frame rejected: {error}',
                                      throttle_duration_sec=5.0)
            return
        # the view keeps msg.data alive; the header travels with the frame to its detection
        self.dispatcher.submit(camera.pipeline, image, encoding, meta=msg.header, release_ns=now)

    def _publish_detection(self, frame: Frame) -> None:
        camera = self._states[frame.pipeline.id]
        scores, ids = frame.result
        latency_ms = (time.monotonic_ns() - frame.release_ns) / 1e6
        detection = Detection(camera.config.name, frame.meta, [int(i) for i in ids], [float(s) for s in scores],
                              self.labels, latency_ms, camera.config.deadline_ms,
                              latency_ms > camera.config.deadline_ms)
        camera.publisher.publish(self.encoder.encode(detection))
        with self._window_lock:
            camera.window_latencies_ms.append(latency_ms)

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        now = time.monotonic_ns()
        period_ns = max(1, now - self._window_start_ns)
        self._window_start_ns = now
        hardware_id = self.engine.device_name
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        with self._window_lock:
            windows = {name: camera.window_latencies_ms for name, camera in self.cameras.items()}
            for camera in self.cameras.values():
                camera.window_latencies_ms = []
        for name, camera in self.cameras.items():
            array.status.append(self._camera_status(camera, windows[name], now, hardware_id))
        array.status.append(self._scheduler_status(period_ns, hardware_id))
        self.diagnostics.publish(array)

    def _camera_status(self, camera: CameraState, latencies: list[float], now: int, hardware_id: str):
        stats = camera.pipeline.stats
        totals = {'completed': stats.completed, 'missed': stats.missed, 'dropped': stats.dropped,
                  'dropped_error': stats.dropped_error}
        window = {key: value - camera.previous.get(key, 0) for key, value in totals.items()}
        camera.previous = totals
        resolved = window['completed'] + window['dropped']
        window_ratio = (window['missed'] + window['dropped']) / resolved if resolved else 0.0
        quiet_s = (now - camera.last_received_ns) / 1e9 if camera.last_received_ns is not None else None
        level, message = camera_level(self.config, window_ratio, resolved, quiet_s, window['dropped_error'],
                                      window['completed'], self.dispatcher.last_error)
        values = {'received': camera.received, 'completed': stats.completed, 'missed': stats.missed,
                  'dropped': stats.dropped, 'rejected': camera.rejected,
                  'miss ratio (window)': window_ratio, 'miss ratio (total)': stats.miss_ratio}
        lat = np.asarray(latencies) if latencies else None
        for label, q in (('p50', 50), ('p95', 95), ('p99', 99)):
            values[f'latency {label} ms'] = float(np.percentile(lat, q)) if lat is not None else 0.0
        values['latency max ms'] = float(lat.max()) if lat is not None else 0.0
        values['deadline ms'] = camera.config.deadline_ms
        values['queue length'] = len(camera.pipeline.queue)
        if camera.rejected:
            values['last reject reason'] = camera.last_reject_reason
        return status(f's3dnn: {camera.config.name}', level, message, hardware_id, values)

    def _scheduler_status(self, period_ns: int, hardware_id: str):
        dispatcher = self.dispatcher
        totals = {'busy_ns': self.backend.busy_ns(), 'engine_errors': dispatcher.engine_errors}
        previous = self._scheduler_previous
        self._scheduler_previous = totals
        busy = (totals['busy_ns'] - previous.get('busy_ns', 0)) / period_ns
        new_errors = totals['engine_errors'] - previous.get('engine_errors', 0)
        level, message = ('ERROR', f'engine error: {dispatcher.last_error}') if new_errors else ('OK', 'running')
        return status('s3dnn: scheduler', level, message, hardware_id, {
            'policy': self.config.policy, 'engine': self.engine.name, 'device': hardware_id,
            'gpu busy fraction': min(1.0, busy), 'groups dispatched': dispatcher.groups,
            'mean group size': dispatcher.mean_group_size, 'launches': dispatcher.launches,
            'fused launches': dispatcher.fused_launches, 'mean batch': dispatcher.mean_batch,
            'engine errors': dispatcher.engine_errors})

    # ------------------------------------------------------------------ summary and shutdown
    def summary(self) -> list[dict]:
        """Per-camera totals for the command-line summary table."""
        rows = []
        for name, camera in self.cameras.items():
            stats = camera.pipeline.stats
            rows.append({'camera': name, 'received': camera.received, 'completed': stats.completed,
                         'missed': stats.missed, 'dropped': stats.dropped, 'rejected': camera.rejected,
                         'p50_ms': stats.latency_ms(50), 'p99_ms': stats.latency_ms(99)})
        return rows

    def destroy_node(self):
        """Stop and join the dispatcher thread, release the engine's buffers, then the ROS entities."""
        stop = getattr(self, '_stop', None)
        if stop is not None and not stop.is_set():
            stop.set()
            self.dispatcher.wake()
            self._thread.join(timeout=10.0)
        engine = getattr(self, 'engine', None)
        if engine is not None:
            engine.close()
            self.engine = None
        return super().destroy_node()


def main(args=None):
    return run_node(PerceptionNode, NODE_NAME, (ConfigError, EngineError), args)


if __name__ == '__main__':
    raise SystemExit(main())
