"""
BagRecorder: writes what arrives on some topics into a ROS 2 bag, as the bytes arrived.

Its subscriptions take messages serialised (``raw=True``), so recording costs no deserialisation,
and rosbags writes them with the receive time as log time: ``ros2 bag info`` and ``ros2 bag play``
read the bag. A type that rosbags' typestore does not know (vision_msgs on a ROS distribution newer
than its store) is registered from the ``.msg`` files of its installed package.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from rclpy.node import Node
from rclpy.qos import QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

#: messages a subscription keeps while the executor is busy (detections are small)
DEPTH = 1000


class RecorderError(ValueError):
    """A bag that cannot be written, or a type it cannot hold; the message names it."""


def type_name(msg_type: type) -> str:
    """Return the ROS name of a message class, e.g. ``std_msgs/msg/String``."""
    return f'{msg_type.__module__.split(".")[0]}/msg/{msg_type.__name__}'


def _typestore(names: list[str]):
    """
    Return rosbags' typestore of the ROS 2 release it knows, with ``names`` added.

    Names it lacks are registered from their packages' installed ``msg`` folders.
    """
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    typestore = get_typestore(Stores.ROS2_KILTED)
    for name in names:
        if name in typestore.types:
            continue
        package = name.split('/')[0]
        try:
            from ament_index_python.packages import get_package_share_directory
            folder = Path(get_package_share_directory(package)) / 'msg'
            definitions = {}
            for path in sorted(folder.glob('*.msg')):
                definitions.update(get_types_from_msg(path.read_text(),
                                                      f'{package}/msg/{path.stem}'))
            typestore.register(definitions)
        # ament index, file and parser errors alike
        except Exception as error:  # noqa: BLE001
            raise RecorderError(f'cannot record {name}: its definition was not found in the '
                                f'installed {package} package ({error})') from error
    return typestore


class BagRecorder(Node):
    """Record ``topics`` (topic -> message class) into a new bag at ``path`` until ``close``."""

    def __init__(self, path: str, topics: Mapping[str, type],
                 name: str = 's3dnn_bag_recorder', **node_options):
        from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
        super().__init__(name, **node_options)
        typestore = _typestore(sorted({type_name(msg_type) for msg_type in topics.values()}))
        try:
            self._writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
            self._writer.open()
        except (WriterError, OSError) as error:
            raise RecorderError(f'cannot write bag {path!r}: {error}') from error
        qos = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=DEPTH,
                         reliability=QoSReliabilityPolicy.RELIABLE)
        #: messages written per topic
        self.written = dict.fromkeys(topics, 0)
        for topic, msg_type in topics.items():
            connection = self._writer.add_connection(topic, type_name(msg_type),
                                                     typestore=typestore)
            self.create_subscription(msg_type, topic, self._writer_of(topic, connection), qos,
                                     raw=True)

    def _writer_of(self, topic: str, connection):
        def write(data: bytes) -> None:
            self._writer.write(connection, self.get_clock().now().nanoseconds, data)
            self.written[topic] += 1
        return write

    def close(self) -> None:
        """Finish the bag (its metadata) and destroy the node."""
        self._writer.close()
        self.destroy_node()
