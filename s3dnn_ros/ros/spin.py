"""The ``main`` every node of this package shares: start, spin until Ctrl-C or shutdown, clean up."""
from __future__ import annotations

import signal
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


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
