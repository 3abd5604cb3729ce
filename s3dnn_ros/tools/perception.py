"""
s3dnn-perception: the perception node and one simulated camera per configured camera.

All in one process.

For machines without ``ros2 launch``; on exit (after --seconds, or Ctrl-C) prints a per-camera
summary.
"""
from __future__ import annotations

import os
import sys
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from .cli import DEADLINE_MS, FPS, IMAGE_SIDE, Parser, positive_float, positive_int, text_table
from ..engine.base import ENGINE_KINDS
from ..ros.camera_sim import CameraSim
from ..ros.config import CAMERA_KEYS, ConfigError, default_topic, parameters_from_yaml
from ..ros.perception_node import PerceptionNode
from ..ros.spin import init_ros, spin_until
from ..scheduler.policies import POLICIES
from ..worker.client import WorkerError


def default_config() -> str | None:
    """config/perception.yaml of the installed package, else of the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory
        path = os.path.join(get_package_share_directory('s3dnn_ros'), 'config', 'perception.yaml')
        if os.path.isfile(path):
            return path
    except (ImportError, LookupError, OSError):
        pass  # no ament index (AMENT_PREFIX_PATH unset): the source tree
    path = os.path.join(os.path.dirname(__file__), '..', '..', 'config', 'perception.yaml')
    return os.path.normpath(path) if os.path.isfile(path) else None


def config_overrides(path: str | None, replaces_cameras: bool) -> list[Parameter]:
    """
    Return the node's parameters in the params file at ``path``, as overrides.

    Raises ConfigError when it cannot be read. A tool that replaces the camera list leaves the
    file's cameras and their parameters out: the node refuses parameters of cameras it does not
    have.
    """
    if not path:
        return []
    values = parameters_from_yaml(path)
    if replaces_cameras:
        values = {name: value for name, value in values.items()
                  if name != 'cameras' and name.partition('.')[2] not in CAMERA_KEYS}
    return [Parameter(name, value=value) for name, value in values.items()]


def scheduler_overrides(args) -> list[Parameter]:
    """Return the --policy, --engine and --max-inflight overrides, shared with s3dnn-replay."""
    params = []
    if args.policy:
        params.append(Parameter('policy', value=args.policy))
    if args.engine:
        params.append(Parameter('engine', value=args.engine))
    if args.max_inflight:
        params.append(Parameter('max_inflight', value=args.max_inflight))
    return params


def overrides(args) -> list[Parameter]:
    params = scheduler_overrides(args)
    if args.cameras:
        names = [f'cam{i}' for i in range(args.cameras)]
        params.append(Parameter('cameras', value=names))
        for name in names:
            params += [Parameter(f'{name}.topic', value=default_topic(name)),
                       Parameter(f'{name}.deadline_ms', value=args.deadline_ms),
                       Parameter(f'{name}.fps_hint', value=args.fps)]
    return params


SUMMARY_COLUMNS = [('camera', '{}'), ('received', '{:d}'), ('completed', '{:d}'),
                   ('missed', '{:d}'), ('dropped', '{:d}'), ('rejected', '{:d}'),
                   ('p50_ms', '{:.1f}'), ('p99_ms', '{:.1f}')]


def format_summary(rows: list[dict], title: str, columns=SUMMARY_COLUMNS) -> str:
    header = [name.replace('_ms', ' ms') for name, _ in columns]
    return text_table(title, header,
                      [[fmt.format(row[name]) for name, fmt in columns] for row in rows])


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog='s3dnn-perception',
                    description='Run the perception node with simulated cameras.')
    parser.add_argument('--config',
                        help="parameters file (default: the package's config/perception.yaml)")
    parser.add_argument('--policy', choices=list(POLICIES), help='override the configured policy')
    parser.add_argument('--engine', choices=list(ENGINE_KINDS),
                        help='override the configured engine')
    parser.add_argument('--max-inflight', type=positive_int,
                        help='override the configured max_inflight')
    parser.add_argument('--cameras', type=positive_int,
                        help="N simulated cameras cam0..camN-1 instead of the config's")
    parser.add_argument('--fps', type=FPS, default=30.0, help='simulated camera rate (default 30)')
    parser.add_argument('--deadline-ms', type=DEADLINE_MS, default=100.0,
                        help='deadline of the --cameras cameras (default 100)')
    parser.add_argument('--width', type=IMAGE_SIDE, default=640)
    parser.add_argument('--height', type=IMAGE_SIDE, default=480)
    parser.add_argument('--seconds', type=positive_float, default=15.0,
                        help='how long to run (default 15)')
    args = parser.parse_args(argv)
    config = args.config or default_config()
    if config and not os.path.isfile(config):
        parser.error(f'argument --config: {config!r} does not exist')
    stop = init_ros(None)
    try:
        node = PerceptionNode(parameter_overrides=config_overrides(config, bool(args.cameras))
                              + overrides(args))
    except (ConfigError, WorkerError) as error:
        print(f's3dnn-perception: error: {error}', file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    cameras = [CameraSim(f'camera_sim_{camera.name}', parameter_overrides=[
        Parameter('topic', value=camera.topic),
        Parameter('fps', value=camera.fps_hint or args.fps),
        Parameter('width', value=args.width), Parameter('height', value=args.height),
        Parameter('frame_id', value=camera.name)]) for camera in node.config.cameras]
    executor = SingleThreadedExecutor()
    for each in [node, *cameras]:
        executor.add_node(each)
    started = time.monotonic()
    spin_until(executor, stop, lambda: time.monotonic() - started >= args.seconds)
    rows = node.summary()
    ran = (f'stopped after {time.monotonic() - started:.1f} of {args.seconds:g} s' if stop.is_set()
           else f'{args.seconds:g} s')
    title = (f'{len(rows)} cameras, policy {node.config.policy}, engine {node.engine_name} on '
             f'{node.device_name}, {ran}')
    executor.shutdown()
    for each in [*cameras, node]:
        each.destroy_node()
    rclpy.try_shutdown()
    print(format_summary(rows, title))
    return 0


if __name__ == '__main__':
    sys.exit(main())
