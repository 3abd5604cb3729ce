"""Hand-built cost tables and queues for the policy, dispatcher and simulator tests."""
from __future__ import annotations

from s3dnn_ros.engine.costs import CostTable
from s3dnn_ros.model.alexnet import alexnet
from s3dnn_ros.scheduler.job import Frame, Launch, Pipeline

NETWORK = alexnet()
NUM_LAYERS = len(NETWORK.kernel_layers)
MS = 1_000_000


def uniform_costs(cost_us: float = 100.0, tb: float | dict[int, float] = 1.0,
                  fused_growth: float = 0.25, batches: int = 16) -> CostTable:
    """
    Return a cost table where every layer costs ``cost_us`` at batch 1.

    A launch costs cost_us * (1 + fused_growth * (b - 1)) fused over b frames; tbRatio ``tb`` (or
    per layer index) at batch 1, growing linearly with the batch.
    """
    entries = {}
    for index, layer in enumerate(NETWORK.kernel_layers):
        ratio = tb[index] if isinstance(tb, dict) else tb
        entries[layer.name] = {b: (cost_us * (1 + fused_growth * (b - 1)), ratio * b)
                               for b in range(1, batches + 1)}
    return CostTable(NETWORK, entries, 'test gpu', 'test')


def pipelines(count: int, deadline_ms: float = 10.0) -> list[Pipeline]:
    return [Pipeline(i, f'cam{i}', round(deadline_ms * MS)) for i in range(count)]


def ready_frame(pipeline: Pipeline, layer: int, release_ms: float = 0.0,
                deadline_ms: float | None = None) -> Frame:
    """Return a frame of ``pipeline`` whose first ``layer`` kernels have completed."""
    frame = pipeline.new_frame(round(release_ms * MS))
    if deadline_ms is not None:
        frame.deadline_ns = round(deadline_ms * MS)
    frame.next_layer = frame.done_layers = layer
    pipeline.current = frame
    return frame


def inflight_launch(frames: list[Frame], layer: int, stream: int, costs: CostTable) -> Launch:
    """Return a launch of ``layer`` already on the GPU (its frames' next layer is layer + 1)."""
    for frame in frames:
        frame.done_layers = layer
        frame.next_layer = layer + 1
        frame.stream = stream
    return Launch(layer, frames, stream, costs.cost_ns(layer, len(frames)),
                  costs.tb_ratio(layer, len(frames)))
