"""
Real rclpy plumbing for the node tests.

A private context, a driver node that publishes images and collects what the perception node
publishes, and waiting on conditions instead of sleeping.
"""
from __future__ import annotations

import json
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from s3dnn_ros.ros.config import default_topic, detections_topic
from s3dnn_ros.ros.image_codec import array_to_image
from sensor_msgs.msg import Image
from std_msgs.msg import String


class RosSession:
    """
    One rclpy context with an executor.

    Everything created here is destroyed by :meth:`close`.
    """

    def __init__(self):
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.nodes = []

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def spin_until(self, condition, timeout_s: float = 20.0) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return condition()

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)

    def close(self):
        self.executor.shutdown()
        for node in reversed(self.nodes):
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def overrides(params: dict) -> list[Parameter]:
    return [Parameter(name, value=value) for name, value in params.items()]


class Driver(Node):
    """Publishes images on the camera topics and records detections and diagnostics."""

    def __init__(self, context, cameras: list[str], namespace: str = ''):
        super().__init__('test_driver', context=context, namespace=namespace)
        # like sensor data, deeper
        qos = QoSProfile(depth=20, reliability=QoSReliabilityPolicy.BEST_EFFORT)
        self.image_pubs = {name: self.create_publisher(Image, default_topic(name), qos)
                           for name in cameras}
        self.detections = {name: [] for name in cameras}
        self.diagnostics: list[DiagnosticArray] = []
        self.detection_subs = [
            self.create_subscription(
                String, detections_topic(name),
                lambda msg, n=name: self.detections[n].append(json.loads(msg.data)), 100)
            for name in cameras]
        self.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics.append, 100)

    def connected(self) -> bool:
        """Every image publisher has its subscriber and every detection topic its publisher."""
        return (all(pub.get_subscription_count() > 0 for pub in self.image_pubs.values())
                and all(sub.get_publisher_count() > 0 for sub in self.detection_subs))

    def send(self, camera: str, sec: int, nanosec: int = 0, frame_id: str | None = None,
             shape=(48, 64, 3), encoding: str = 'rgb8', msg: Image | None = None) -> Image:
        if msg is None:
            msg = Image()
            rng = np.random.default_rng(sec * 1000 + nanosec)
            array_to_image(rng.integers(0, 256, shape, dtype=np.uint8), encoding, msg)
        msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
        msg.header.frame_id = frame_id or f'{camera}_optical'
        self.image_pubs[camera].publish(msg)
        return msg

    def statuses(self, name: str) -> list:
        """Every status named ``name`` received so far, oldest first."""
        return [status for array in self.diagnostics for status in array.status
                if status.name == name]


def values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}
