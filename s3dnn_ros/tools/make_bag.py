"""s3dnn-make-bag: write a ROS 2 bag of simulated cameras, for replaying without cameras.

Camera ``cam<i>`` records sensor_msgs/Image on ``/cam<i>/image_raw`` with the moving test pattern that
camera_sim publishes (each camera a few steps apart, so no two send the same picture). Stamps and log times
follow a fixed-rate timeline from ``--start-sec``, not the wall clock, so the same arguments always give the
same bag. Written with ``rosbags``: no ROS installation needed.

Example: ``s3dnn-make-bag four_cams --cameras 4 --fps 30 --seconds 10``
"""
from __future__ import annotations

import os
import shutil
import sys

from ..engine.base import ENCODINGS
from ..ros.config import default_topic
from ..ros.pattern import make_frames
from .cli import FPS, IMAGE_SIDE, Parser, bounded_int, positive_float, positive_int, require_rosbags

IMAGE = 'sensor_msgs/msg/Image'
STORAGES = ('mcap', 'sqlite3')
#: frames between the patterns of neighbouring cameras
CAMERA_OFFSET = 7


def write_bag(path: str, cameras: int, fps: float, seconds: float, width: int, height: int, encoding: str,
              storage: str = 'mcap', start_sec: int = 1_700_000_000) -> dict[str, int]:
    """Write the bag and return the number of images per topic. Raises rosbags' WriterError when ``path``
    exists or cannot be written."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    typestore = get_typestore(Stores.ROS2_KILTED)
    types = typestore.types
    Image, Header, Time = types[IMAGE], types['std_msgs/msg/Header'], types['builtin_interfaces/msg/Time']
    channels = ENCODINGS[encoding][0]
    count = max(1, round(fps * seconds))
    names = [f'cam{i}' for i in range(cameras)]
    patterns = {}
    for index, name in enumerate(names):
        patterns[name] = make_frames(width, height, encoding)
        for _ in range(index * CAMERA_OFFSET):
            next(patterns[name])
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    topics = {name: '/' + default_topic(name) for name in names}  # a recording holds resolved (absolute) names
    written = dict.fromkeys(topics.values(), 0)
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        connections = {name: writer.add_connection(topics[name], IMAGE, typestore=typestore)
                       for name in names}
        for step in range(count):
            stamp_ns = start_sec * 10**9 + round(step * 1e9 / fps)
            for name in names:
                frame = next(patterns[name])
                msg = Image(header=Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=name),
                            height=height, width=width, encoding=encoding, is_bigendian=0, step=width * channels,
                            data=frame.reshape(-1))
                writer.write(connections[name], stamp_ns, typestore.serialize_cdr(msg, IMAGE))
                written[topics[name]] += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog='s3dnn-make-bag', description='Write a ROS 2 bag of N simulated cameras '
                    '(sensor_msgs/Image on /cam<i>/image_raw) for s3dnn-replay or ros2 bag play.')
    parser.add_argument('path', help='bag directory to create (must not exist)')
    parser.add_argument('--cameras', type=positive_int, default=4, help='number of cameras (default 4)')
    parser.add_argument('--fps', type=FPS, default=30.0, help='frames per second per camera (default 30)')
    parser.add_argument('--seconds', type=positive_float, default=10.0, help='length of the recording (default 10)')
    parser.add_argument('--width', type=IMAGE_SIDE, default=640)
    parser.add_argument('--height', type=IMAGE_SIDE, default=480)
    parser.add_argument('--encoding', choices=list(ENCODINGS), default='rgb8')
    parser.add_argument('--storage', choices=STORAGES, default='mcap', help='storage format (default mcap)')
    parser.add_argument('--start-sec', type=bounded_int(0, 2**31 - 1), default=1_700_000_000,
                        help='stamp of the first frame, in seconds, 0 to 2147483647 (default 1700000000)')
    args = parser.parse_args(argv)
    require_rosbags(parser)
    from rosbags.rosbag2 import WriterError
    existed = os.path.lexists(args.path)
    try:
        written = write_bag(args.path, args.cameras, args.fps, args.seconds, args.width, args.height, args.encoding,
                            args.storage, args.start_sec)
    except (WriterError, OSError, KeyboardInterrupt) as error:
        if not existed and os.path.isdir(args.path):
            shutil.rmtree(args.path, ignore_errors=True)  # no partial bag left to make a re-run say 'exists'
        if isinstance(error, KeyboardInterrupt):
            print(f's3dnn-make-bag: stopped by Ctrl-C; the partial bag {args.path!r} was removed', file=sys.stderr)
            return 130
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        print(f's3dnn-make-bag: error: cannot write {args.path!r}: {reason}', file=sys.stderr)
        return 2
    total = sum(written.values())
    print(f'{args.path}: {total} images, {len(written)} cameras ({", ".join(written)}), '
          f'{args.width}x{args.height} {args.encoding} at {args.fps:g} FPS, {args.storage}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
