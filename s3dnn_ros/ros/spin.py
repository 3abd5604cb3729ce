"""
What the programs of this package share.

ROS start-up with Python's own SIGINT/SIGTERM handling (``init_ros``), the spin loop of a one-node
program (``run_node``), waiting for subscribers (``unmatched_topics``) and the QoS profile of
camera images.

rclpy's signal handlers are not installed. On a signal they shut the context down from rclpy's own
thread while the main thread, woken by the same signal, is already destroying nodes: that race
killed a node with SIGSEGV on Ctrl-C now and then. Here a signal only sets an event; the main
thread spins in short slices, sees the event and cleans up alone.
"""
from __future__ import annotations

import atexit
import signal
import threading
import time
from typing import Callable, Mapping

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

#: longest time between a stop signal and the spin loop noticing it
SPIN_SLICE_S = 0.1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _ignore_stop_signals() -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def init_ros(args=None) -> threading.Event:
    """
    ``rclpy.init`` without rclpy's signal handlers; returns the event SIGINT and SIGTERM set.

    A signal recorded before (by the entry point's :class:`s3dnn_ros.programs.EarlyStop`, while the
    program was still importing) sets the event at once. A repeated signal (a terminal's Ctrl-C
    reaches the whole process group and ``ros2 launch`` forwards it too) only sets the event again,
    so it cannot break a cleanup half-way. Once the program has returned, both are ignored:
    Python's finalization restores the default action of signals that have a Python handler, and a
    late Ctrl-C would turn a clean exit into status 130.
    """
    stop = threading.Event()
    for signum in STOP_SIGNALS:
        previous = signal.signal(signum, lambda *_: stop.set())
        # s3dnn_ros.programs.EarlyStop got one first
        if getattr(previous, 'received', None) is not None:
            stop.set()
    atexit.register(_ignore_stop_signals)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    return stop


def spin_until(executor, stop: threading.Event, done: Callable[[], bool] = lambda: False) -> None:
    """Spin ``executor`` until a stop signal, ``done()``, or the context shutting down."""
    try:
        while not stop.is_set() and rclpy.ok() and not done():
            executor.spin_once(timeout_sec=SPIN_SLICE_S)
    except ExternalShutdownException:
        pass


def run_node(make_node: Callable[[], Node], name: str, startup_errors: tuple[type[Exception], ...],
             args=None) -> int:
    """
    Run one node and return the exit status.

    0 after a clean stop, 2 when ``make_node`` raised one of ``startup_errors`` (logged as FATAL
    under ``name``, with no traceback).
    """
    stop = init_ros(args)
    executor = SingleThreadedExecutor()
    node = None
    try:
        node = make_node()
        executor.add_node(node)
        spin_until(executor, stop)
    except startup_errors as error:
        rclpy.logging.get_logger(name).fatal(str(error))
        return 2
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def unmatched_topics(publishers: Mapping[str, object], timeout_s: float) -> list[str]:
    """
    Wait until every publisher of ``{topic: publisher}`` has a subscriber.

    Its first messages are then not published to nobody. Returns the topics that still have none
    after ``timeout_s``. Discovery runs in the middleware's threads: nothing needs to spin
    meanwhile.
    """
    end = time.monotonic() + timeout_s
    while True:
        missing = [topic for topic, publisher in publishers.items()
                   if publisher.get_subscription_count() == 0]
        if not missing or time.monotonic() >= end:
            return missing
        time.sleep(0.02)


def image_qos(reliability: str, depth: int) -> QoSProfile:
    """Keep-last ``depth`` with ``reliability`` 'best_effort' (sensor data) or 'reliable'."""
    return QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=(QoSReliabilityPolicy.BEST_EFFORT if reliability == 'best_effort'
                                   else QoSReliabilityPolicy.RELIABLE))
