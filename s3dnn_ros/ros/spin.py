"""What the nodes of this package share: ``run_node`` (start, spin until Ctrl-C or shutdown, clean up) and
the QoS profile of camera images."""
from __future__ import annotations

import signal
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy


def run_node(make_node: Callable[[], Node], name: str, startup_errors: tuple[type[Exception], ...],
             args=None) -> int:
    """Exit status 0 after a clean stop, 2 when ``make_node`` raised one of ``startup_errors`` (logged as
    FATAL under ``name``, with no traceback)."""
    rclpy.init(args=args)
    executor = SingleThreadedExecutor()  # before the node: a Ctrl-C right after start-up finds it built
    node = None
    try:
        node = make_node()
        executor.add_node(node)
        executor.spin()
    except startup_errors as error:
        rclpy.logging.get_logger(name).fatal(str(error))
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # Ctrl-C reaches this process twice (the terminal signals the whole process group and
        # ros2 launch forwards SIGINT): the second must not break the cleanup with a KeyboardInterrupt
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def image_qos(reliability: str, depth: int) -> QoSProfile:
    """Keep-last ``depth`` with ``reliability`` 'best_effort' (sensor data) or 'reliable'."""
    return QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=(QoSReliabilityPolicy.BEST_EFFORT if reliability == 'best_effort'
                                   else QoSReliabilityPolicy.RELIABLE))
