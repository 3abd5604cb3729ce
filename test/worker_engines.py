"""
Engines for tests that run them inside a real scheduler worker process.

See ``WorkerSpec.engine_factory``.
"""
import time

from s3dnn_ros.engine.base import EngineError
from s3dnn_ros.engine.reference import ReferenceEngine


class FirstFrameFails(ReferenceEngine):
    """The reference engine, except that the first launch of conv2 fails as a GPU fault would."""

    failed = False

    def launch(self, layer_index, pids, stream):
        if layer_index == 3 and not self.failed:
            self.failed = True
            raise EngineError('illegal memory access in conv2')
        return super().launch(layer_index, pids, stream)


class Slow(ReferenceEngine):
    """
    The reference engine taking a second over its first launch.

    The worker is then busy and reads nothing.
    """

    def launch(self, layer_index, pids, stream):
        if layer_index == 0:
            time.sleep(1.0)
        return super().launch(layer_index, pids, stream)


def first_frame_fails(network, weights):
    return FirstFrameFails(network, weights)


def slow(network, weights):
    return Slow(network, weights)
