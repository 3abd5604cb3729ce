"""
s3dnn-replay: play a ROS 2 bag's camera images into the perception node, in one process.

It prints what happened per camera: images sent from the bag, received by the node, completed,
missed, dropped, rejected, and latency percentiles.

Cameras: with ``--config`` the file's cameras are used and each camera's topic must be in the bag;
without it every sensor_msgs/msg/Image topic of the bag becomes a camera named after its topic
(``/front/image_raw`` -> ``front``), and so does every sensor_msgs/msg/CompressedImage topic named
``<topic>/compressed`` (camera ``<topic>`` with ``transport: compressed``, unless ``<topic>``
itself is recorded raw), with ``--deadline-ms`` and ``--queue-depth``, and the rest of the
parameters come from the package's config/perception.yaml. Images are published with the node's own
QoS at their recorded spacing (log times) divided by ``--rate``; the header, stamp included, is the
recorded one and is copied to the detections. After the last image the node gets up to
``--drain-s`` to finish what it holds.

Example: ``s3dnn-make-bag four_cams && s3dnn-replay four_cams --policy s3dnn``
"""
from __future__ import annotations

import json
import os
from pathlib import Path
import re
import sys
import threading
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CompressedImage, Image

from .cli import (bounded_float, DEADLINE_MS, Parser, positive_float, positive_int,
                  require_rosbags)
from .perception import (config_overrides, default_config, format_summary, scheduler_overrides,
                         SUMMARY_COLUMNS)
from ..engine.base import ENGINE_KINDS
from ..ros.bag_player import BagPlayer
from ..ros.config import (compressed_topic, ConfigError, IMAGE_TYPES, parameters_from_yaml,
                          validate)
from ..ros.perception_node import PerceptionNode
from ..ros.spin import init_ros, spin_until, unmatched_topics
from ..scheduler.policies import POLICIES
from ..worker.client import WorkerError

IMAGE, COMPRESSED = IMAGE_TYPES['raw'], IMAGE_TYPES['compressed']
#: last topic segments that name the stream rather than the camera
IMAGE_SUFFIXES = ('image_raw', 'image', 'image_color', 'image_rect', 'image_rect_color')
#: how long the node's subscriptions get to match the player's publishers
MATCH_TIMEOUT_S = 5.0
#: the node is idle once nothing has arrived for this long and every received frame is
#: resolved
QUIET_S = 0.3


class BagError(ValueError):
    """A bag that cannot be replayed; the message names the bag and what is wrong."""


def camera_name(topic: str, taken: set[str]) -> str:
    """Return a camera name (letters, digits, _) for an image topic, distinct from ``taken``."""
    parts = [part for part in topic.split('/') if part]
    if len(parts) > 1 and parts[-1] in IMAGE_SUFFIXES:
        parts = parts[:-1]
    name = re.sub(r'[^A-Za-z0-9_]', '_', '_'.join(parts)) or 'camera'
    if not name[0].isalpha():
        name = 'cam_' + name
    unique, n = name, 2
    while unique in taken:
        unique, n = f'{name}_{n}', n + 1
    return unique


def one_line(error: Exception) -> str:
    """Return a library's error message on one line (YAML and mcap errors span several)."""
    return ' '.join(str(error).split())


class Bag:
    """A ROS 2 bag opened with rosbags: its image topics and a stream of their raw records."""

    def __init__(self, path: str):
        from rosbags.rosbag2 import Reader
        self.path = path
        if not os.path.exists(path):
            raise BagError(f'bag {path!r} does not exist; allowed: a ROS 2 bag directory '
                           f'(metadata.yaml and .mcap or .db3 files)')
        try:
            self.reader = Reader(path)
            self.reader.open()
        # rosbags, sqlite3 and mcap each raise their own kinds
        except Exception as error:  # noqa: BLE001
            raise BagError(f'bag {path!r} cannot be read: {one_line(error)}') from error
        # camera topic (what the node's <camera>.topic names) -> (connection, transport): Image
        # topics as they are; CompressedImage topics on <topic>/compressed (image_transport's name)
        # as camera <topic>, compressed
        self.images = {c.topic: (c, 'raw') for c in self.reader.connections if c.msgtype == IMAGE}
        skipped = [f'{c.topic} ({c.msgtype})' for c in self.reader.connections
                   if c.msgtype not in (IMAGE, COMPRESSED)]
        for c in self.reader.connections:
            if c.msgtype != COMPRESSED:
                continue
            base = c.topic[:-len('/compressed')] if c.topic.endswith('/compressed') else None
            if base is None:
                skipped.append(f'{c.topic} ({c.msgtype}, not on a <topic>/compressed name)')
            elif base in self.images:
                skipped.append(f"{c.topic} ({c.msgtype}; the same camera's raw images are "
                               'replayed)')
            else:
                self.images[base] = (c, 'compressed')
        self.other_topics = sorted(skipped)
        if not self.images:
            self.close()
            raise BagError(f'bag {path!r} has no {IMAGE} topic nor {COMPRESSED} on a '
                           f'<topic>/compressed name; '
                           f'its topics: {", ".join(self.other_topics) or "none"}')

    def transport(self, topic: str) -> str:
        """Return how camera ``topic``'s images are recorded: 'raw' or 'compressed'."""
        return self.images[topic][1]

    def source(self, topic: str) -> tuple[str, type]:
        """Return the recorded topic of camera ``topic`` and its message type."""
        connection, transport = self.images[topic]
        return connection.topic, (CompressedImage if transport == 'compressed' else Image)

    def fps(self, topic: str) -> float:
        """Return the recorded images per second on ``topic`` (0 when it cannot tell)."""
        count, duration_s = self.images[topic][0].msgcount, self.reader.duration / 1e9
        return (count - 1) / duration_s if count > 1 and duration_s > 0 else 0.0

    def records(self, topics: list[str]):
        """
        Yield (recorded topic, log time ns, CDR bytes) of cameras ``topics`` in log-time order.

        See :meth:`stamped_records`.
        """
        for topic, log_ns, data, _ in self.stamped_records(topics):
            yield topic, log_ns, data

    def stamped_records(self, topics: list[str]):
        """
        Yield (recorded topic, log time ns, CDR bytes, header stamp ns) of cameras ``topics``.

        They come in log-time order; a record that cannot be read, or whose bytes are not the
        topic's message type (the node's middleware would drop it without a word), ends it with a
        BagError naming the record. The bytes are checked by the middleware's own deserializer
        (rclpy's), the one the node's subscription uses: rosbags' reads some bytes that it refuses.
        """
        connections = [self.images[topic][0] for topic in topics]
        types = {connection.topic: self.source(topic)[1]
                 for topic, connection in zip(topics, connections)}
        index = 0
        try:
            for connection, log_ns, data in self.reader.messages(connections=connections):
                data = data if isinstance(data, bytes) else bytes(data)
                stamp = deserialize_message(data, types[connection.topic]).header.stamp
                index += 1
                yield connection.topic, log_ns, data, stamp.sec * 1_000_000_000 + stamp.nanosec
        except Exception as error:  # noqa: BLE001 - see __init__
            raise BagError(f'bag {self.path!r}: record {index + 1} cannot be read: '
                           f'{one_line(error)}') from error

    def close(self) -> None:
        self.reader.close()


def bag_cameras(bag: Bag, args, topics: dict[str, str] | None = None) -> list[Parameter]:
    """
    Return the parameters of the cameras to replay.

    They make one camera of every image topic in the bag, or of every camera topic of ``topics``
    (camera topic -> the bag's camera topic whose images it gets).
    """
    topics = topics or {topic: topic for topic in sorted(bag.images)}
    names, params = [], []
    for topic, recorded in topics.items():
        name = camera_name(topic, set(names))
        names.append(name)
        params += [Parameter(f'{name}.topic', value=topic),
                   Parameter(f'{name}.deadline_ms', value=args.deadline_ms),
                   Parameter(f'{name}.transport', value=bag.transport(recorded)),
                   Parameter(f'{name}.fps_hint', value=bag.fps(recorded)),
                   Parameter(f'{name}.queue_depth', value=args.queue_depth)]
    return [Parameter('cameras', value=names)] + params


def start_node(args, bag: Bag, topics: dict[str, str] | None = None,
               stop: threading.Event | None = None) -> tuple[PerceptionNode, threading.Event]:
    """
    Return the perception node for this bag and the event a stop signal sets.

    The node's cameras: ``topics`` as in :func:`bag_cameras`, without --config. The event is
    ``stop`` when ROS is already started. A --config whose cameras the bag lacks is refused before
    the node starts.
    """
    config = args.config or default_config()
    if config and not os.path.isfile(config):
        raise ConfigError(f'argument --config: {config!r} does not exist')
    if args.config:
        cameras = validate(parameters_from_yaml(args.config)).cameras
        missing = [f'{camera.name} ({compressed_topic(camera.topic)})'
                   if camera.transport == 'compressed' else f'{camera.name} ({camera.topic})'
                   for camera in cameras
                   if camera.topic not in bag.images
                   or bag.transport(camera.topic) != camera.transport]
        if missing:
            raise ConfigError(f'cameras of {args.config!r} without images in bag {bag.path!r}: '
                              f'{", ".join(missing)}; allowed: its image topics '
                              f'{", ".join(sorted(bag.source(t)[0] for t in bag.images))}')
    params = config_overrides(config, not args.config) + scheduler_overrides(args)
    params += [] if args.config else bag_cameras(bag, args, topics)
    stop = stop or init_ros(None)
    return PerceptionNode(parameter_overrides=params), stop


def replay(args, bag: Bag, node: PerceptionNode, stop: threading.Event,
           sources: dict[str, type] | None = None, records=None, rate: float | None = None,
           on_tick=None, beside=None, settled=None) -> tuple[BagPlayer, float]:
    """
    Play the bag into the node, then let the node drain.

    Returns the player and the seconds it took. A stop signal ends both early. By default the
    node's cameras' recorded topics are played at ``args.rate``; ``sources`` (topic -> message
    type) with ``records`` ((topic, log time ns, bytes)) play other topics, at ``rate``.
    ``on_tick(player)`` is called between executor slices. ``beside`` (a node, e.g. a recorder)
    spins with them, and the drain also waits for ``settled()``.
    """
    if sources is None:
        topics = [camera.topic for camera in node.config.cameras]
        sources, records = dict(bag.source(topic) for topic in topics), bag.records(topics)
    player = BagPlayer(sources, records, rate or args.rate, node.config.qos_reliability,
                       node.config.qos_depth)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    executor.add_node(player)
    if beside is not None:
        executor.add_node(beside)
    started = time.monotonic()
    try:
        unmatched = unmatched_topics(player.publishers_by_topic, MATCH_TIMEOUT_S)
        if unmatched:
            raise ConfigError(f'no subscriber on {", ".join(unmatched)} '
                              f'after {MATCH_TIMEOUT_S:g} s')
        if args.wait_listeners:
            outputs = {camera.publisher.topic_name: camera.publisher
                       for camera in node.cameras.values()}
            unheard = unmatched_topics(outputs, args.wait_listeners)
            if unheard:
                raise ConfigError(f'--wait-listeners {args.wait_listeners:g}: no subscriber on '
                                  f'{", ".join(unheard)}')
        player.start()
        tick = on_tick or (lambda _: None)
        spin_until(executor, stop, lambda: tick(player) or player.finished.is_set())
        drain_end = time.monotonic() + args.drain_s
        last = {'received': -1, 'change': time.monotonic()}

        def drained() -> bool:
            received = sum(camera.received for camera in node.cameras.values())
            if received != last['received']:
                last.update(received=received, change=time.monotonic())
                return False
            return (node.pending() == 0 and time.monotonic() - last['change'] >= QUIET_S
                    and (settled is None or settled()))

        spin_until(executor, stop,
                   lambda: tick(player) or time.monotonic() >= drain_end or drained())
    finally:
        executor.remove_node(player)
        if beside is not None:
            executor.remove_node(beside)
        player.destroy_node()
        executor.shutdown()
    return player, time.monotonic() - started


def summary(args, bag: Bag, node: PerceptionNode, player: BagPlayer, wall_s: float) -> dict:
    """Return what the replay did, per camera and overall (the --json object)."""
    rows = node.summary()
    for row, camera in zip(rows, node.config.cameras):
        row['topic'], _ = bag.source(camera.topic)
        row['sent'] = player.sent[row['topic']]
    return {'bag': str(Path(args.bag)), 'policy': node.config.policy, 'engine': node.engine_name,
            'device': node.device_name, 'rate': args.rate, 'wall_s': round(wall_s, 3),
            'error': str(player.error) if player.error else None, 'cameras': rows,
            'skipped_topics': bag.other_topics}


def add_node_options(parser: Parser) -> None:
    """Add the options that shape the node a replay starts (shared with s3dnn-evaluate)."""
    parser.add_argument('--config', help="parameters file whose cameras name the bag's topics "
                        '(default: one camera per image topic, other parameters from '
                        'config/perception.yaml)')
    parser.add_argument('--engine', choices=list(ENGINE_KINDS),
                        help='override the configured engine')
    parser.add_argument('--max-inflight', type=positive_int,
                        help='override the configured max_inflight')
    parser.add_argument('--deadline-ms', type=DEADLINE_MS, default=100.0,
                        help='deadline of cameras taken from the bag (default 100)')
    parser.add_argument('--queue-depth', type=positive_int, default=1,
                        help='queue depth of cameras taken from the bag '
                        '(default 1: newest frame wins)')
    parser.add_argument('--drain-s', type=positive_float, default=10.0,
                        help='longest wait after the last image (of each run) for the node to '
                        'finish (default 10)')


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog='s3dnn-replay', description="Replay a ROS 2 bag's camera images into the "
                    'perception node and print per-camera results.')
    parser.add_argument('bag', help='ROS 2 bag directory (mcap or sqlite3)')
    parser.add_argument('--policy', choices=list(POLICIES), help='override the configured policy')
    add_node_options(parser)
    parser.add_argument('--rate', type=bounded_float(0.001, 1000.0), default=1.0,
                        help='playback speed factor, 0.001 to 1000 (default 1)')
    parser.add_argument('--wait-listeners', type=positive_float, metavar='S',
                        help='before playing, wait up to S seconds until every '
                        "camera's detections topic has a subscriber (a recorder, an evaluation "
                        'script), so it sees the first detections too')
    parser.add_argument('--json', action='store_true',
                        help='print one JSON object instead of the table')
    args = parser.parse_args(argv)
    require_rosbags(parser)
    node = None
    try:
        bag = Bag(args.bag)
    except BagError as error:
        print(f's3dnn-replay: error: {error}', file=sys.stderr)
        return 2
    try:
        node, stop = start_node(args, bag)
        player, wall_s = replay(args, bag, node, stop)
        result = summary(args, bag, node, player, wall_s)
    except (ConfigError, WorkerError) as error:
        print(f's3dnn-replay: error: {error}', file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        bag.close()
    if args.json:
        print(json.dumps(result))
    else:
        title = (f'{args.bag}: {len(result["cameras"])} cameras, policy {result["policy"]}, '
                 f'engine {result["engine"]} on {result["device"]}, rate {args.rate:g}, '
                 f'{wall_s:.1f} s')
        print(format_summary(result['cameras'], title,
                             SUMMARY_COLUMNS[:1] + [('sent', '{:d}')] + SUMMARY_COLUMNS[1:]))
        if result['skipped_topics']:
            print(f'not replayed: {", ".join(result["skipped_topics"])}')
    if result['error']:
        print(f's3dnn-replay: error: {result["error"]}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
