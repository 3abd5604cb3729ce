"""
The console programs' entry points: a stop signal counts from the program's first instant.

A console script imports its program's module before it calls the program's ``main``, and those
imports (numpy, rclpy, the message types) take a few hundred milliseconds, during which Python's
default handlers would turn Ctrl-C into a KeyboardInterrupt traceback and SIGTERM into death by
signal. Each entry point here first installs :class:`EarlyStop`, which only records SIGINT and
SIGTERM, and imports the program after:

* The ROS programs (perception_node, perception_lifecycle_node, camera_sim, s3dnn-perception,
  s3dnn-replay) keep it until ``s3dnn_ros.ros.spin.init_ros`` installs their own handlers;
  ``init_ros`` takes over a signal it recorded, so such a program sees the stop as soon as it spins
  and ends with its usual clean stop (status 0).
* The other tools (s3dnn-sim, s3dnn-bench, s3dnn-make-bag, s3dnn-convert-weights) run with Python's
  default handlers once imported. A stop signal before that ends them with one line and the shell's
  status for the signal (130 for SIGINT, 143 for SIGTERM): nothing was done and there is no result.
  A Ctrl-C that escapes a tool's own handling ends it the same way, with one line instead of a
  traceback.

This module imports nothing of the package at import time, so it is light enough to be the first
thing a program runs. (``python -m s3dnn_ros...`` runs a program's module directly, without it.)
"""
from __future__ import annotations

import importlib
import signal
import sys
from typing import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class EarlyStop:
    """
    A signal handler that records the first stop signal it gets.

    It keeps that signal in ``received`` (None until then).
    """

    def __init__(self):
        self.received: int | None = None

    def __call__(self, signum, frame) -> None:
        if self.received is None:
            self.received = signum


def catch_early() -> EarlyStop:
    """Install one :class:`EarlyStop` for SIGINT and SIGTERM and return it."""
    early = EarlyStop()
    for signum in STOP_SIGNALS:
        signal.signal(signum, early)
    return early


def _ros_program(module: str) -> Callable[[], int]:
    def main() -> int:
        catch_early()
        return importlib.import_module(module).main()
    return main


def _tool(module: str, name: str) -> Callable[[], int]:
    def main() -> int:
        early = catch_early()
        run = importlib.import_module(module).main
        if early.received is None:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            if early.received is None:  # none landed before the defaults were back
                try:
                    return run()
                except KeyboardInterrupt:
                    print(f'{name}: stopped by Ctrl-C before it finished; no result',
                          file=sys.stderr)
                    return 128 + signal.SIGINT
        print(f'{name}: stopped by {signal.Signals(early.received).name} before it started',
              file=sys.stderr)
        return 128 + early.received
    return main


perception_node = _ros_program('s3dnn_ros.ros.perception_node')
perception_lifecycle_node = _ros_program('s3dnn_ros.ros.perception_lifecycle_node')
camera_sim = _ros_program('s3dnn_ros.ros.camera_sim')
perception = _ros_program('s3dnn_ros.tools.perception')
replay = _ros_program('s3dnn_ros.tools.replay')
evaluate = _ros_program('s3dnn_ros.tools.evaluate')
sim = _tool('s3dnn_ros.tools.sim', 's3dnn-sim')
bench = _tool('s3dnn_ros.tools.bench', 's3dnn-bench')
make_bag = _tool('s3dnn_ros.tools.make_bag', 's3dnn-make-bag')
convert_weights = _tool('s3dnn_ros.tools.convert_weights', 's3dnn-convert-weights')
