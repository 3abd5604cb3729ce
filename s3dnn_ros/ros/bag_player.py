"""
BagPlayer: publishes recorded camera images with their recorded spacing, from a thread of its own.

It takes records that are already serialised, ``(topic, log time ns, CDR bytes)``, and publishes
the bytes as they are, so large images replay at the recorded rate with no deserialisation. It
counts what it sent per topic: a replay can then tell frames lost in transport (sent − received)
from frames the perception node dropped. Reading the bag is the caller's job; this node does not
import rosbags.
"""
from __future__ import annotations

import threading
import time
from typing import Iterator, Mapping

from rclpy.node import Node

from .spin import image_qos


class BagPlayer(Node):
    """
    Replays ``records`` on ``topics`` at ``rate`` times the recorded speed.

    ``topics`` maps topic -> message type, e.g. sensor_msgs Image or CompressedImage. Playing
    starts once ``start`` is called.
    """

    def __init__(self, topics: Mapping[str, type], records: Iterator[tuple[str, int, bytes]],
                 rate: float = 1.0, reliability: str = 'best_effort', depth: int = 5,
                 name: str = 's3dnn_bag_player', **node_options):
        if not rate > 0:
            raise ValueError(f'rate={rate!r}: allowed a number > 0')
        super().__init__(name, **node_options)
        qos = image_qos(reliability, depth)
        self.publishers_by_topic = {topic: self.create_publisher(msg_type, topic, qos)
                                    for topic, msg_type in topics.items()}
        self.sent = dict.fromkeys(self.publishers_by_topic, 0)
        #: what stopped the replay early (an unreadable record), or None
        self.error: Exception | None = None
        self.finished = threading.Event()
        self._records = records
        self._rate = rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, name='s3dnn-bag-player', daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _play(self) -> None:
        try:
            first = None
            for topic, log_ns, data in self._records:
                if first is None:
                    first = time.monotonic(), log_ns
                delay = first[0] + (log_ns - first[1]) / 1e9 / self._rate - time.monotonic()
                if self._stop.wait(delay) if delay > 0 else self._stop.is_set():
                    return
                self.publishers_by_topic[topic].publish(data if isinstance(data, bytes)
                                                        else bytes(data))
                self.sent[topic] += 1
        except Exception as error:  # noqa: BLE001 - the thread's boundary:
            # the replay reports it and stops
            self.error = error
        finally:
            self.finished.set()

    def destroy_node(self):
        """Stop publishing and join the thread before the publishers go away."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        return super().destroy_node()
