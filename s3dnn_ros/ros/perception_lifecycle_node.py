"""
perception_lifecycle_node: the perception node as a ROS 2 lifecycle node (managed).

It is meant for systems that bring their nodes up in order (nav2's lifecycle manager, ``ros2
lifecycle set``). The same parameters, topics and diagnostics as ``perception_node``; the work is
split over the transitions:

* made (unconfigured): parameters declared and checked (a bad one stops the program with one line,
  exit 2, as ``perception_node`` does);
* configure: start the scheduler worker (load the weights, compile the kernels, calibrate or load
  the cost table) and make the publishers; a worker that cannot start fails the transition with the
  reason logged;
* activate: subscribe to the cameras: frames flow;
* deactivate: unsubscribe: no new frames, so the GPU runs nothing; frames already with the worker
  finish and are published; the worker, its compiled kernels and every counter are kept, so
  activating again is immediate;
* cleanup: stop the worker (it frees the GPU) and remove the publishers: back to unconfigured;
* shutdown: the same from any state.
"""
from __future__ import annotations

import sys

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from .config import ConfigError, NODE_NAME
from .perception_node import PerceptionCore
from .spin import run_node
from ..worker.client import WorkerError


class PerceptionLifecycleNode(PerceptionCore, LifecycleNode):
    """The perception node, configured, activated and deactivated through lifecycle transitions."""

    def __init__(self, **node_options):
        LifecycleNode.__init__(self, NODE_NAME, **node_options)
        try:
            self._check_params_files([*(node_options.get('cli_args') or []), *sys.argv])
            self.config = self._read_parameters()
            self.add_on_set_parameters_callback(self._on_set_parameters)
        except ConfigError:
            self.destroy_node()
            raise

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except (ConfigError, WorkerError) as error:
            self.get_logger().error(f'configure failed: {error}')
            self._teardown()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._subscribe()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    on_shutdown = on_cleanup  # from any state: the same teardown

    def destroy_node(self):
        """
        Stop the worker (it frees the GPU), remove the frame slots, then the ROS entities.

        rclpy's LifecycleNode leaves its state machine, which holds the node, to the garbage
        collector: until then the node would stay on the graph (a second s3dnn_perception to anyone
        looking), so it goes here.
        """
        self._teardown()
        result = LifecycleNode.destroy_node(self)
        self._state_machine.destroy_when_not_in_use()
        return result


def main(args=None):
    return run_node(PerceptionLifecycleNode, NODE_NAME, (ConfigError,), args)


if __name__ == '__main__':
    sys.exit(main())
