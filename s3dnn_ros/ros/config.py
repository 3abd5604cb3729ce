"""
The perception node's parameters: names, defaults, and validation.

Validation messages name the parameter, its value and what is allowed. Pure Python, so the rules
are testable without ROS and the launch file and command-line tool can read the same camera list.

Global parameters and per-camera parameters ``<camera>.<key>`` for every name in ``cameras``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import difflib
from importlib import resources
import re
from typing import Any, Callable

from ..engine.base import ENGINE_KINDS
from ..scheduler.policies import DEFAULT_MAX_BATCH, POLICIES

NODE_NAME = 's3dnn_perception'
RELIABILITY = ('best_effort', 'reliable')
#: how a camera's images arrive (image_transport's names): sensor_msgs/Image, or CompressedImage on
#: <topic>/compressed
TRANSPORTS = ('raw', 'compressed')
#: the message type of each transport's images (as ROS and rosbag name it)
IMAGE_TYPES = {'raw': 'sensor_msgs/msg/Image', 'compressed': 'sensor_msgs/msg/CompressedImage'}
#: detections as vision_msgs/Classification, JSON in std_msgs/String, or the first where
#: vision_msgs is installed
DETECTION_FORMATS = ('auto', 'vision_msgs', 'json')
_NAME = re.compile(r'[A-Za-z][A-Za-z0-9_]*')
_TOPIC = re.compile(r'/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*')
#: longest camera name and topic: the node builds topic and parameter names from the camera's name,
#: and DDS refuses topic names of more than 255 characters with its own prefixes
MAX_NAME, MAX_TOPIC = 64, 200


class ConfigError(ValueError):
    """An invalid parameter: the node refuses to start rather than run half-configured."""


def default_topic(camera: str) -> str:
    """
    Return a camera's image topic unless configured.

    It is relative, so a namespace or remap moves it with the node.
    """
    return f'{camera}/image_raw'


def compressed_topic(topic: str) -> str:
    """Where image_transport's compressed plugin publishes the images of ``topic``."""
    return topic.rstrip('/') + '/compressed'


def detections_topic(camera: str) -> str:
    """Return a camera's detections topic, relative like :func:`default_topic`."""
    return f's3dnn/{camera}/detections'


def annotated_topic(camera: str) -> str:
    """
    Return the topic of a camera's annotated pictures (``<camera>.annotated``).

    It is relative like :func:`default_topic`.
    """
    return f's3dnn/{camera}/annotated'


def _fail(name: str, value: Any, allowed: str):
    raise ConfigError(f'parameter {name}={value!r}: allowed {allowed}')


def _number(low: float, high: float = float('inf'), low_inclusive: bool = False) -> Callable:
    bound = ('>= ' if low_inclusive else '> ') + f'{low:g}' \
        + (f' and <= {high:g}' if high != float('inf') else '')

    def check(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(name, value, f'a number {bound}')
        ok = (value >= low if low_inclusive else value > low) and value <= high
        if not ok or value != value:
            _fail(name, value, f'a number {bound}')
        return float(value)
    if low_inclusive and high != float('inf'):
        check.range = (float, low, high)  # what the node's parameter descriptor states
    return check


def _integer(low: int, high: int) -> Callable:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            _fail(name, value, f'an integer {low}..{high}')
        return value
    check.range = (int, low, high)
    return check


def _one_of(options) -> Callable:
    def check(name: str, value: Any) -> str:
        if value not in options:
            _fail(name, value, 'one of ' + ', '.join(options))
        return value
    return check


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        _fail(name, value, 'true or false')
    return value


def _string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        _fail(name, value, 'a string')
    return value


def _topic(name: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_TOPIC or not _TOPIC.fullmatch(value):
        _fail(name, value,
              f'a ROS topic name like /front/image_raw, at most {MAX_TOPIC} characters')
    return value


def check_camera_names(name: str, value: Any) -> list[str]:
    if value is None:  # ROS gives an empty YAML list no type: the parameter arrives unset
        raise ConfigError(f'parameter {name} is empty (an empty list has no type in ROS); '
                          'allowed a non-empty list of camera names')
    if not isinstance(value, (list, tuple)) or not value \
            or not all(isinstance(v, str) for v in value):
        _fail(name, value, 'a non-empty list of camera names')
    for camera in value:
        if len(camera) > MAX_NAME or not _NAME.fullmatch(camera):
            _fail(name, value,
                  'names of letters, digits and _ starting with a letter, '
                  f'at most {MAX_NAME} characters ({camera!r} is not)')
    if len(set(value)) != len(value):
        _fail(name, value, 'distinct names')
    return list(value)


#: ``<camera>.device_id`` of a camera placed by load (see :mod:`.placement`)
AUTO_DEVICE = -1

#: (name, default, check) of every global parameter
GLOBAL_PARAMETERS = [
    ('cameras', ['camera'], check_camera_names),
    ('policy', 's3dnn', _one_of(tuple(POLICIES))),
    ('engine', 'auto', _one_of(ENGINE_KINDS)),
    ('device_id', 0, _integer(0, 63)),
    ('gpus', 1, _integer(1, 64)),
    ('workers_per_gpu', 1, _integer(1, 8)),
    ('weights', '', _string),
    ('cost_table', '', _string),
    ('labels', '', _string),
    ('top_k', 5, _integer(1, 1000)),
    ('detections_format', 'auto', _one_of(DETECTION_FORMATS)),
    ('max_batch', DEFAULT_MAX_BATCH, _integer(1, 64)),
    ('max_inflight', 2, _integer(1, 16)),
    ('firm_deadlines', False, _boolean),
    ('qos.reliability', 'best_effort', _one_of(RELIABILITY)),
    ('qos.depth', 5, _integer(1, 1000)),
    ('diagnostics_period_s', 1.0, _number(0.1, 3600.0, low_inclusive=True)),
    ('miss_warn_ratio', 0.05, _number(0.0, 1.0, low_inclusive=True)),
    ('miss_error_ratio', 0.2, _number(0.0, 1.0, low_inclusive=True)),
    ('annotated_hz', 2.0, _number(0.1, 30.0, low_inclusive=True)),
    ('annotated_width', 320, _integer(64, 1920)),
]

#: (key, default or default(camera), check) of every per-camera parameter ``<camera>.<key>``
CAMERA_PARAMETERS = [
    ('topic', default_topic, _topic),
    ('transport', 'raw', _one_of(TRANSPORTS)),
    # >= 1 µs: the node counts in ns
    ('deadline_ms', 100.0, _number(0.001, 3_600_000.0, low_inclusive=True)),
    ('fps_hint', 0.0, _number(0.0, 10_000.0, low_inclusive=True)),
    ('queue_depth', 1, _integer(1, 1000)),
    ('annotated', False, _boolean),
    ('device_id', AUTO_DEVICE, _integer(AUTO_DEVICE, 63)),
]


#: what each parameter means (its ROS parameter description); ``<camera>.`` stands for every camera
DESCRIPTIONS = {
    'cameras': 'camera names (letters, digits, _; at most 64 characters); one pipeline each',
    'policy': 'GPU scheduling policy: ' + ', '.join(POLICIES),
    'engine': 'auto (cuda when a GPU and pycuda are there), cuda, reference, or timed (no GPU: '
              'each launch takes the time cost_table gives and every detection is class 0 with '
              'score 0; for load tests of the host side)',
    'device_id': 'CUDA device; with gpus > 1 the first of the GPUs cameras are spread over',
    'gpus': 'GPUs device_id .. device_id + gpus - 1 take the cameras without a '
            '<camera>.device_id, balanced by expected load (fps_hint); workers_per_gpu '
            'scheduler worker processes per GPU used',
    'workers_per_gpu': 'scheduler worker processes per GPU, each serving part of the cameras of '
                       'its GPU (balanced by fps_hint) with its own host thread and streams; '
                       'fusion stays within a worker',
    'weights': '.npz from s3dnn-convert-weights; empty: seeded untrained weights',
    'cost_table': 'CUDA engine: cost table JSON, loaded when it exists, '
                  'else written after calibrating; timed engine: the table it takes its times '
                  'from (must exist)',
    'labels': 'UTF-8 text file with one label per class, or imagenet: the 1000 ImageNet-1k class '
              'names shipped with the package (for weights converted from torchvision)',
    'top_k': 'classes per detection',
    'detections_format': 'vision_msgs (Classification), json (std_msgs/String) or auto: '
                         'vision_msgs where installed, else json with a WARN on /diagnostics',
    'max_batch': 'largest fused batch of the s3dnn policy',
    'max_inflight': 'dispatch rounds s3dnn/fifo/edf keep on the GPU',
    'firm_deadlines': 'drop a frame as soon as it can no longer meet its deadline',
    'qos.reliability': 'camera subscriptions: best_effort or reliable',
    'qos.depth': 'camera subscriptions: history depth',
    'diagnostics_period_s': '/diagnostics period in seconds',
    'miss_warn_ratio': 'window miss ratio that makes a camera WARN (may be set while running)',
    'miss_error_ratio': 'window miss ratio that makes a camera ERROR (may be set while running)',
    'annotated_hz': 'annotated pictures per second per camera, at most',
    'annotated_width': 'width in pixels of the annotated pictures',
    '<camera>.topic': 'sensor_msgs/Image topic of the camera',
    '<camera>.transport': 'raw: sensor_msgs/Image on the topic; compressed: '
                          'sensor_msgs/CompressedImage (jpeg, png) on <topic>/compressed, '
                          'decoded by OpenCV off the executor',
    '<camera>.deadline_ms': 'relative deadline from receiving a frame to its detection, ms '
                            '(may be set while running)',
    '<camera>.fps_hint': 'expected frame rate (0: unknown)',
    '<camera>.queue_depth': 'frames that may wait; when full the oldest is dropped and counted',
    '<camera>.annotated': 'publish s3dnn/<camera>/annotated: a small copy of some frames with the '
                          'top classes, the latency and a green (on time) or red (missed) border',
    '<camera>.device_id': 'CUDA device of the camera (its own scheduler worker); -1: placed by '
                          'load on one of the gpus GPUs',
}


_GLOBAL_CHECKS = {name: check for name, _, check in GLOBAL_PARAMETERS}
_CAMERA_CHECKS = {key: check for key, _, check in CAMERA_PARAMETERS}
#: the keys of per-camera parameters (``<camera>.<key>``)
CAMERA_KEYS = frozenset(_CAMERA_CHECKS)


def check_of(name: str) -> Callable:
    """Return the check of parameter ``name`` (a global one or ``<camera>.<key>``)."""
    return _GLOBAL_CHECKS.get(name) or _CAMERA_CHECKS[name.partition('.')[2]]


def describe(name: str) -> str:
    """Return the description of parameter ``name`` (a global one or ``<camera>.<key>``)."""
    return DESCRIPTIONS.get(name) or DESCRIPTIONS['<camera>.' + name.partition('.')[2]]


@dataclass(frozen=True)
class CameraConfig:
    name: str
    topic: str
    transport: str
    deadline_ms: float
    fps_hint: float
    queue_depth: int
    annotated: bool
    device_id: int = AUTO_DEVICE


@dataclass(frozen=True)
class NodeConfig:
    cameras: tuple[CameraConfig, ...]
    policy: str
    engine: str
    device_id: int
    gpus: int
    workers_per_gpu: int
    weights: str
    cost_table: str
    labels: str
    top_k: int
    detections_format: str
    max_batch: int
    max_inflight: int
    firm_deadlines: bool
    qos_reliability: str
    qos_depth: int
    diagnostics_period_s: float
    miss_warn_ratio: float
    miss_error_ratio: float
    annotated_hz: float
    annotated_width: int


def camera_default(key: str, camera: str):
    default = {k: d for k, d, _ in CAMERA_PARAMETERS}[key]
    return default(camera) if callable(default) else default


def validate(values: dict[str, Any]) -> NodeConfig:
    """
    Check every parameter and build the node's configuration.

    Missing parameters take their defaults.
    """
    checked = {}
    for name, default, check in GLOBAL_PARAMETERS:
        checked[name] = check(name, values.get(name, default))
    if checked['device_id'] + checked['gpus'] > 64:
        _fail('gpus', checked['gpus'],
              f'at most {64 - checked["device_id"]} with device_id {checked["device_id"]} '
              '(devices 0..63)')
    if checked['miss_error_ratio'] < checked['miss_warn_ratio']:
        _fail('miss_error_ratio', checked['miss_error_ratio'],
              f'a ratio >= miss_warn_ratio ({checked["miss_warn_ratio"]:g})')
    cameras = []
    topics = {}
    for camera in checked['cameras']:
        fields = {}
        for key, _, check in CAMERA_PARAMETERS:
            name = f'{camera}.{key}'
            fields[key] = check(name, values.get(name, camera_default(key, camera)))
        if fields['topic'] in topics:
            _fail(f'{camera}.topic', fields['topic'],
                  f'a topic no other camera uses ({topics[fields["topic"]]} does)')
        topics[fields['topic']] = camera
        cameras.append(CameraConfig(camera, **fields))
    return NodeConfig(cameras=tuple(cameras), policy=checked['policy'], engine=checked['engine'],
                      device_id=checked['device_id'], gpus=checked['gpus'],
                      workers_per_gpu=checked['workers_per_gpu'],
                      weights=checked['weights'],
                      cost_table=checked['cost_table'], labels=checked['labels'],
                      top_k=checked['top_k'], detections_format=checked['detections_format'],
                      max_batch=checked['max_batch'], max_inflight=checked['max_inflight'],
                      firm_deadlines=checked['firm_deadlines'],
                      qos_reliability=checked['qos.reliability'], qos_depth=checked['qos.depth'],
                      diagnostics_period_s=checked['diagnostics_period_s'],
                      miss_warn_ratio=checked['miss_warn_ratio'],
                      miss_error_ratio=checked['miss_error_ratio'],
                      annotated_hz=checked['annotated_hz'],
                      annotated_width=checked['annotated_width'])


#: the value of ``labels`` that names the ImageNet-1k class names shipped with the package
IMAGENET = 'imagenet'


def read_labels(path: str, num_classes: int) -> list[str]:
    """
    One label per line, exactly ``num_classes`` lines; ConfigError naming the parameter otherwise.

    ``imagenet`` reads the package's own ImageNet-1k class names
    (s3dnn_ros/model/imagenet_classes.txt).
    """
    try:
        if path == IMAGENET:
            labels = imagenet_classes()
        else:
            with open(path, encoding='utf-8') as file:
                labels = file.read().splitlines()
    except OSError as error:
        raise ConfigError(f'parameter labels={path!r}: cannot read it ({error.strerror}); '
                          f'allowed a text file with {num_classes} '
                          'lines, one label per class') from error
    except UnicodeDecodeError as error:
        raise ConfigError(f'parameter labels={path!r}: not UTF-8 text (byte {error.start}); '
                          f'allowed a text file with {num_classes} '
                          'lines, one label per class') from error
    if len(labels) != num_classes:
        raise ConfigError(f'parameter labels={path!r}: has {len(labels)} lines; '
                          f'allowed a text file with {num_classes} lines, one label per class')
    return labels


def imagenet_classes() -> list[str]:
    """
    Return the 1000 ImageNet-1k class names in class-id order.

    That is torchvision's order, so weights converted from torchvision's AlexNet give readable
    labels.
    """
    return (resources.files('s3dnn_ros.model').joinpath('imagenet_classes.txt')
            .read_text('utf-8').splitlines())


#: the parameters a running node applies when set (``ros2 param set``); every other one is
#: read-only
LIVE_PARAMETERS = ('miss_warn_ratio', 'miss_error_ratio', '<camera>.deadline_ms')


def is_live(name: str) -> bool:
    """Whether parameter ``name`` may change while the node runs (see LIVE_PARAMETERS)."""
    return name in LIVE_PARAMETERS or '<camera>.' + name.partition('.')[2] in LIVE_PARAMETERS


def apply_live(config: 'NodeConfig', changes: dict[str, Any]) -> 'NodeConfig':
    """
    Return ``config`` with ``changes`` to LIVE_PARAMETERS applied.

    Raises ConfigError naming the first parameter that is not live or whose value is not allowed.
    """
    cameras = {camera.name: camera for camera in config.cameras}
    values = {}
    for name, value in changes.items():
        camera, _, key = name.partition('.')
        if not is_live(name) or (key and camera not in cameras):
            _fail(name, value,
                  'no change while the node runs (restart it); live: '
                  f'{", ".join(LIVE_PARAMETERS)}')
        if key:
            cameras[camera] = dataclasses.replace(cameras[camera],
                                                  **{key: check_of(name)(name, value)})
        else:
            values[name] = check_of(name)(name, value)
    merged = dataclasses.replace(config, cameras=tuple(cameras.values()), **values)
    if merged.miss_error_ratio < merged.miss_warn_ratio:
        name = 'miss_error_ratio' if 'miss_error_ratio' in values else 'miss_warn_ratio'
        _fail(name, values[name],
              f'miss_warn_ratio <= miss_error_ratio (they would be {merged.miss_warn_ratio:g} '
              f'and {merged.miss_error_ratio:g})')
    return merged


def unknown_parameter(name: str, value: Any, known: list[str], cameras: list[str]) -> str:
    """
    Return the one-line error for a parameter given to the node that it does not have.

    That is a per-camera key of a camera that is not configured, or a name with the nearest known
    one.
    """
    camera, _, key = name.partition('.')
    if key in CAMERA_KEYS and camera not in cameras:
        return (f'parameter {name}={value!r}: {camera!r} is not one of the cameras; '
                f'allowed <camera>.{key} for cameras {", ".join(cameras)}')
    nearest = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f'did you mean {nearest[0]}?' if nearest else f'allowed {", ".join(sorted(known))}'
    return f'parameter {name}={value!r}: {NODE_NAME} has no such parameter; {hint}'


def _section_pattern(key: str) -> re.Pattern:
    """
    Return a params-file section name as ROS matches it against a node's full name.

    ``*`` matches one name token, ``**`` any number of them; a name without a leading / is taken
    from the root (``s3dnn_perception`` is ``/s3dnn_perception``, so it does not reach a node moved
    to another namespace).
    """
    key = key if key.startswith('/') else '/' + key
    parts = []
    for token in re.split(r'(\*\*|\*)', key):
        parts.append('.*' if token == '**' else '[^/]*' if token == '*' else re.escape(token))
    return re.compile(''.join(parts).replace('/.*/', '(/.*)?/'))


def params_file_sections(path: str, full_name: str) -> tuple[bool, list[str]]:
    """
    Tell whether the params file at ``path`` has a section for the node ``full_name``.

    ``full_name`` is e.g. ``/robot1/s3dnn_perception``. Returns that and the file's section names;
    ConfigError when it cannot be read.
    """
    sections = [name for name, _ in node_sections(read_params_file(path, full_name))]
    return any(_section_pattern(name).fullmatch(full_name) for name in sections), sections


def node_sections(data: Any, prefix: str = '') -> list[tuple[str, dict]]:
    """
    Return (section name, its ros__parameters) of a params file, in file order.

    A section may be written whole (``/robot1/s3dnn_perception:``) or nested under its namespace
    (``/robot1:`` then ``s3dnn_perception:``).
    """
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            name = f'{prefix}/{str(key).strip("/")}' if prefix else str(key)
            if isinstance(value, dict) and 'ros__parameters' in value:
                found.append((name, value['ros__parameters'] or {}))
            elif isinstance(value, dict):
                found += node_sections(value, name)
    return found


def read_params_file(path: str, node_name: str = NODE_NAME) -> dict:
    """
    Return the YAML mapping of a ROS 2 params file.

    Raises ConfigError naming the file when it cannot be read or is not a mapping of node sections.
    """
    import yaml
    allowed = f'a ROS 2 params file with a {node_name}: or /**: section holding ros__parameters:'
    try:
        with open(path, encoding='utf-8') as file:
            data = yaml.safe_load(file) or {}
    except OSError as error:
        raise ConfigError(f'parameters file {path!r}: '
                          f'cannot read it ({error.strerror}); allowed {allowed}') from error
    except UnicodeDecodeError as error:
        raise ConfigError(f'parameters file {path!r}: not UTF-8 text (byte {error.start}); '
                          f'allowed {allowed}') from error
    except yaml.YAMLError as error:
        where = getattr(error, 'problem_mark', None)
        line = f' at line {where.line + 1}' if where else ''
        raise ConfigError(f'parameters file {path!r}: '
                          f'not valid YAML{line}; allowed {allowed}') from error
    if not isinstance(data, dict) \
            or not all(isinstance(v, dict) or v is None for v in data.values()):
        raise ConfigError(f'parameters file {path!r}: '
                          f'not a mapping of node sections; allowed {allowed}')
    return data


def parameters_from_yaml(path: str, node_name: str = NODE_NAME) -> dict[str, Any]:
    """
    Return the node's flattened parameters from a ROS 2 params file.

    They come from the first section whose name matches the node's, as ROS matches them:
    ``s3dnn_perception``, ``/**``, ``/**/s3dnn_perception``... Raises ConfigError naming the file
    when it cannot be read or is not a params file.
    """
    data = read_params_file(path, node_name)
    full_name = node_name if node_name.startswith('/') else '/' + node_name
    parameters = (next((values for name, values in node_sections(data)
                        if _section_pattern(name).fullmatch(full_name)), None) or {})
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: dict):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(f'{prefix}{key}.', value)
            else:
                flat[prefix + key] = value
    walk('', parameters)
    return flat
