"""
s3dnn-make-bag: write a ROS 2 bag of camera images, for replaying without cameras.

Without sources, camera ``cam<i>`` records sensor_msgs/Image on ``/cam<i>/image_raw`` with the
moving test pattern that camera_sim publishes (each camera a few steps apart, so no two send the
same picture). With sources, each ``--images DIR`` (its PNG and JPEG files in name order, repeated
to fill ``--seconds`` when given) and each ``--video FILE`` (its frames, read by OpenCV, up to
``--seconds`` when given) becomes one camera, ``cam<i>`` in the order given; ``--format
compressed`` records them as JPEG sensor_msgs/CompressedImage on ``/cam<i>/image_raw/compressed``
(image_transport's name) instead of bgr8 Images. Stamps and log times follow a fixed-rate timeline
from ``--start-sec``, not the wall clock, so the same arguments always give the same bag. Written
with ``rosbags``: no ROS installation needed.

Examples: ``s3dnn-make-bag four_cams --cameras 4 --fps 30 --seconds 10``,
``s3dnn-make-bag photos --images pictures/ --fps 30 --seconds 10 --format compressed``
"""
from __future__ import annotations

import os
from pathlib import Path
import shutil
import sys
from typing import Iterator

import numpy as np

from .cli import (bounded_int, FPS, IMAGE_SIDE, Parser, positive_float, positive_int,
                  require_rosbags)
from ..engine.base import ENCODINGS
from ..ros.config import compressed_topic, default_topic, IMAGE_TYPES, TRANSPORTS
from ..ros.pattern import make_frames

IMAGE, COMPRESSED = IMAGE_TYPES['raw'], IMAGE_TYPES['compressed']
STORAGES = ('mcap', 'sqlite3')
#: picture files --images takes
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')
JPEG_QUALITY = 90


class SourceError(ValueError):
    """
    A source (--images, --video) that cannot be read.

    The message names the option and the path.
    """


def image_files(folder: str) -> list[Path]:
    """Return the PNG and JPEG files of ``folder`` in name order."""
    path = Path(folder)
    if not path.is_dir():
        raise SourceError(f'argument --images: {folder!r} is not a directory; allowed: a folder '
                          f'of {"/".join(IMAGE_SUFFIXES)} files')
    files = sorted(f for f in path.iterdir()
                   if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    if not files:
        raise SourceError(f'argument --images: {folder!r} has no {"/".join(IMAGE_SUFFIXES)} file')
    return files


def source_frames(kind: str, where: str, count: int | None) -> Iterator[np.ndarray]:
    """
    Yield the BGR frames of one source.

    They are a folder's pictures (once, or repeated to ``count`` frames) or a
    video's frames (up to ``count``). A file OpenCV cannot read raises SourceError naming it.
    """
    import cv2
    if kind == 'images':
        files = image_files(where)
        for index in range(len(files) if count is None else count):
            name = files[index % len(files)]
            frame = cv2.imread(str(name), cv2.IMREAD_COLOR)
            if frame is None:
                raise SourceError(f'argument --images: {str(name)!r} cannot be read as a picture')
            yield frame
        return
    capture = cv2.VideoCapture(where)
    try:
        ok, frame = capture.read()
        if not ok:
            raise SourceError(f'argument --video: {where!r} cannot be read as a video '
                              '(or has no frame)')
        produced = 0
        while ok and (count is None or produced < count):
            yield frame
            produced += 1
            ok, frame = capture.read()
    finally:
        capture.release()


#: frames between the patterns of neighbouring cameras
CAMERA_OFFSET = 7


def write_bag(path: str, cameras: int, fps: float, seconds: float, width: int, height: int,
              encoding: str, storage: str = 'mcap',
              start_sec: int = 1_700_000_000) -> dict[str, int]:
    """
    Write the bag and return the number of images per topic.

    Raises rosbags' WriterError when ``path`` exists or cannot be written.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    typestore = get_typestore(Stores.ROS2_KILTED)
    types = typestore.types
    Image, Header, Time = (types[IMAGE], types['std_msgs/msg/Header'],
                           types['builtin_interfaces/msg/Time'])
    channels = ENCODINGS[encoding][0]
    count = max(1, round(fps * seconds))
    names = [f'cam{i}' for i in range(cameras)]
    patterns = {}
    for index, name in enumerate(names):
        patterns[name] = make_frames(width, height, encoding)
        for _ in range(index * CAMERA_OFFSET):
            next(patterns[name])
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    # a recording holds resolved (absolute) names
    topics = {name: '/' + default_topic(name) for name in names}
    written = dict.fromkeys(topics.values(), 0)
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        connections = {name: writer.add_connection(topics[name], IMAGE, typestore=typestore)
                       for name in names}
        for step in range(count):
            stamp_ns = start_sec * 10**9 + round(step * 1e9 / fps)
            for name in names:
                frame = next(patterns[name])
                msg = Image(header=Header(stamp=Time(sec=stamp_ns // 10**9,
                                                     nanosec=stamp_ns % 10**9),
                                          frame_id=name),
                            height=height, width=width, encoding=encoding, is_bigendian=0,
                            step=width * channels, data=frame.reshape(-1))
                writer.write(connections[name], stamp_ns, typestore.serialize_cdr(msg, IMAGE))
                written[topics[name]] += 1
    return written


def write_sources(path: str, sources: list[tuple[str, str]], fps: float, seconds: float | None,
                  transport: str = 'raw', storage: str = 'mcap',
                  start_sec: int = 1_700_000_000) -> dict[str, int]:
    """
    Write one camera per source and return the number of images per topic.

    Frames of all cameras are interleaved on one fixed-rate timeline (a camera whose source ends
    earlier stops there). Raises SourceError for a source that cannot be read and rosbags'
    WriterError when ``path`` exists or cannot be written.
    """
    import cv2
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    typestore = get_typestore(Stores.ROS2_KILTED)
    types = typestore.types
    Header, Time = types['std_msgs/msg/Header'], types['builtin_interfaces/msg/Time']
    count = None if seconds is None else max(1, round(fps * seconds))
    names = [f'cam{i}' for i in range(len(sources))]
    frames = {name: source_frames(kind, where, count)
              for name, (kind, where) in zip(names, sources)}
    # every source is checked before the bag is made
    first = {name: next(frames[name]) for name in names}
    msgtype = IMAGE_TYPES[transport]
    topics = {name: '/' + (compressed_topic(default_topic(name)) if transport == 'compressed'
                           else default_topic(name)) for name in names}
    written = dict.fromkeys(topics.values(), 0)
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        connections = {name: writer.add_connection(topics[name], msgtype, typestore=typestore)
                       for name in names}
        step, live = 0, list(names)
        while live:
            stamp_ns = start_sec * 10**9 + round(step * 1e9 / fps)
            header = {name: Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
                                   frame_id=name)
                      for name in live}
            for name in list(live):
                frame = first.pop(name) if name in first else next(frames[name], None)
                if frame is None:
                    live.remove(name)
                    continue
                if transport == 'raw':
                    height, width = frame.shape[:2]
                    msg = types[IMAGE](header=header[name], height=height, width=width,
                                       encoding='bgr8', is_bigendian=0, step=width * 3,
                                       data=frame.reshape(-1))
                else:
                    ok, data = cv2.imencode('.jpg', frame,
                                            [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                    msg = types[COMPRESSED](header=header[name], format='jpeg',
                                            data=np.asarray(data).reshape(-1))
                writer.write(connections[name], stamp_ns, typestore.serialize_cdr(msg, msgtype))
                written[topics[name]] += 1
            step += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog='s3dnn-make-bag', description='Write a ROS 2 bag of N simulated cameras '
                    '(sensor_msgs/Image on /cam<i>/image_raw), or of one camera per picture '
                    'folder or video, for s3dnn-replay, s3dnn-evaluate or ros2 bag play.')
    parser.add_argument('path', help='bag directory to create (must not exist)')
    parser.add_argument('--cameras', type=positive_int, help='number of simulated cameras '
                        '(default 4; not with --images or --video)')
    parser.add_argument('--images', dest='sources', action='append',
                        type=lambda text: ('images', text), metavar='DIR',
                        help='a camera of the PNG/JPEG files of DIR in name order (repeatable)')
    parser.add_argument('--video', dest='sources', action='append',
                        type=lambda text: ('video', text), metavar='FILE',
                        help='a camera of the frames of a video file (repeatable)')
    parser.add_argument('--format', choices=TRANSPORTS, default='raw',
                        help='of --images and --video cameras: raw bgr8 Images or JPEG '
                        'CompressedImages on <topic>/compressed (default raw)')
    parser.add_argument('--fps', type=FPS, default=30.0,
                        help='frames per second per camera (default 30)')
    parser.add_argument('--seconds', type=positive_float, help='length of the recording '
                        '(default 10; with --images or --video: each source once, a folder '
                        'repeated to fill the time when given)')
    parser.add_argument('--width', type=IMAGE_SIDE, default=640)
    parser.add_argument('--height', type=IMAGE_SIDE, default=480)
    parser.add_argument('--encoding', choices=list(ENCODINGS), default='rgb8')
    parser.add_argument('--storage', choices=STORAGES, default='mcap',
                        help='storage format (default mcap)')
    parser.add_argument('--start-sec', type=bounded_int(0, 2**31 - 1), default=1_700_000_000,
                        help='stamp of the first frame, in seconds, 0 to 2147483647 '
                        '(default 1700000000)')
    args = parser.parse_args(argv)
    if args.sources and args.cameras is not None:
        parser.error(f'argument --cameras: {args.cameras} with --images/--video; allowed: one or '
                     'the other (each source is a camera)')
    require_rosbags(parser)
    from rosbags.rosbag2 import WriterError
    existed = os.path.lexists(args.path)
    try:
        if args.sources:
            written = write_sources(args.path, args.sources, args.fps, args.seconds, args.format,
                                    args.storage, args.start_sec)
        else:
            written = write_bag(args.path, args.cameras or 4, args.fps, args.seconds or 10.0,
                                args.width, args.height, args.encoding, args.storage,
                                args.start_sec)
    except SourceError as error:
        if not existed and os.path.isdir(args.path):
            shutil.rmtree(args.path, ignore_errors=True)
        print(f's3dnn-make-bag: error: {error}', file=sys.stderr)
        return 2
    except (WriterError, OSError, KeyboardInterrupt) as error:
        if not existed and os.path.isdir(args.path):
            # no partial bag left to make a re-run say 'exists'
            shutil.rmtree(args.path, ignore_errors=True)
        if isinstance(error, KeyboardInterrupt):
            print(f's3dnn-make-bag: stopped by Ctrl-C; the partial bag {args.path!r} was removed',
                  file=sys.stderr)
            return 130
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        print(f's3dnn-make-bag: error: cannot write {args.path!r}: {reason}', file=sys.stderr)
        return 2
    total = sum(written.values())
    what = (f'{args.format} from {", ".join(where for _, where in args.sources)}' if args.sources
            else f'{args.width}x{args.height} {args.encoding}')
    print(f'{args.path}: {total} images, {len(written)} cameras ({", ".join(written)}), '
          f'{what} at {args.fps:g} FPS, {args.storage}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
