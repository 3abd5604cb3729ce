"""An engine for tests that run it inside a real scheduler worker process (``WorkerSpec.engine_factory``):
the reference engine, except that the first launch of conv2 fails as a GPU fault would."""
from s3dnn_ros.engine.base import EngineError
from s3dnn_ros.engine.reference import ReferenceEngine


class FirstFrameFails(ReferenceEngine):
    failed = False

    def launch(self, layer_index, pids, stream):
        if layer_index == 3 and not self.failed:
            self.failed = True
            raise EngineError('illegal memory access in conv2')
        return super().launch(layer_index, pids, stream)


def first_frame_fails(network, weights):
    return FirstFrameFails(network, weights)
