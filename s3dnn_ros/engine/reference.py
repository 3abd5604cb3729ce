"""
The numpy reference engine: the oracle for the CUDA engine and the CPU fallback.

The fallback runs when there is no GPU.

Layouts: images are H x W x C uint8 in any of :data:`~s3dnn_ros.engine.base.ENCODINGS` (rows may be
padded, any strides); activations are NCHW float32, vectors (N, F) float32, the final output
(N, 2, k) float32. Every op works on a fused batch stacked on axis 0 and computes in float32:
convolution is im2col + one matmul, pooling uses sliding windows, adaptive pooling two small
averaging matmuls. The module-level functions are the oracle that the CUDA engine's tests compare
against; they are themselves checked against naive Python loops in ``test/test_reference.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import time
from typing import Callable, Hashable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .base import check_image, Done, ENCODINGS, Engine
from .costs import CostTable, estimate, GPUS
from ..model.alexnet import Network
from ..model.layers import IMAGENET_MEAN, IMAGENET_STD, Layer
from ..model.weights import Weights

#: host memory bandwidth assumed by :meth:`ReferenceEngine.cost_table` (bytes/s)
CPU_MEMORY_BANDWIDTH = 10e9
#: fixed per-launch overhead assumed by :meth:`ReferenceEngine.cost_table` (µs)
CPU_LAUNCH_OVERHEAD_US = 20.0

Image = tuple[np.ndarray, str]


def _bilinear_taps(in_size: int,
                   out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """
    Lower/upper source indices and their weights per output index, as torch's bilinear resize.

    src = (dst + 0.5) * in / out - 0.5, clamped below at 0; the upper neighbour is clamped to
    in - 1.
    """
    scale = np.float32(in_size) / np.float32(out_size)
    src = np.maximum((np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale
                     - np.float32(0.5), np.float32(0))
    lower = np.minimum(src.astype(np.intp), in_size - 1)
    upper = np.minimum(lower + 1, in_size - 1)
    upper_weight = np.clip(src - lower.astype(np.float32), 0, 1).astype(np.float32)
    return lower, upper, np.float32(1) - upper_weight, upper_weight


def preprocess(image: np.ndarray, encoding: str, size: int = 224,
               mean: Sequence[float] = IMAGENET_MEAN,
               std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """
    H x W x C uint8 image -> (3, size, size) float32: pixel/255, bilinear resize, (v - mean) / std.

    Output channels are always R, G, B (mono replicated, alpha ignored). Only the 4 x size x size
    taps are gathered from ``image``, so a strided view with padded rows is read in place.
    """
    check_image(image, encoding)
    channels = np.asarray(ENCODINGS[encoding][1], dtype=np.intp)
    rows0, rows1, row_w0, row_w1 = _bilinear_taps(image.shape[0], size)
    cols0, cols1, col_w0, col_w1 = _bilinear_taps(image.shape[1], size)

    def gather(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return image[rows[:, None, None], cols[None, :, None],
                     channels[None, None, :]].astype(np.float32)

    col_w0, col_w1 = col_w0[None, :, None], col_w1[None, :, None]
    top = gather(rows0, cols0) * col_w0 + gather(rows0, cols1) * col_w1
    bottom = gather(rows1, cols0) * col_w0 + gather(rows1, cols1) * col_w1
    resized = top * row_w0[:, None, None] + bottom * row_w1[:, None, None]
    values = resized.transpose(2, 0, 1) / np.float32(255)
    mean = np.asarray(mean, dtype=np.float32)[:, None, None]
    std = np.asarray(std, dtype=np.float32)[:, None, None]
    return np.ascontiguousarray((values - mean) / std, dtype=np.float32)


def preprocess_batch(images: Sequence[Image], size: int = 224,
                     mean: Sequence[float] = IMAGENET_MEAN,
                     std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """(N, 3, size, size) float32 for (image, encoding) pairs of any sizes and encodings."""
    if not images:
        raise ValueError('preprocess_batch needs at least one image')
    return np.stack([preprocess(image, encoding, size, mean, std) for image, encoding in images])


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int = 1, padding: int = 0,
           relu: bool = True) -> np.ndarray:
    """
    (N, C, H, W) -> (N, O, OH, OW): cross-correlation with (O, C, K, K) ``weight`` plus ``bias``.

    im2col builds (N, C*K*K, OH*OW) columns; ``weight @ columns`` then yields NCHW directly (this
    orientation also keeps OpenBLAS on its fast path for the small AlexNet spatial sizes).
    """
    n, c, _, _ = x.shape
    out_channels, _, kernel, _ = weight.shape
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding))) if padding else x
    windows = sliding_window_view(padded, (kernel, kernel), axis=(2, 3))[:, :, ::stride, ::stride]
    out_h, out_w = windows.shape[2:4]
    columns = windows.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kernel * kernel, out_h * out_w)
    y = np.matmul(weight.reshape(out_channels, -1), columns)
    y += bias[:, None]
    if relu:
        np.maximum(y, 0, out=y)
    return y.reshape(n, out_channels, out_h, out_w)


def maxpool2d(x: np.ndarray, kernel: int = 3, stride: int = 2) -> np.ndarray:
    """Max over kernel x kernel windows, no padding, floor mode."""
    windows = sliding_window_view(x, (kernel, kernel), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.ascontiguousarray(windows.max(axis=(4, 5)))


def _averaging_matrix(in_size: int, out_size: int) -> np.ndarray:
    """
    Return the (out, in) float32 matrix of torch's adaptive average pooling bins.

    Its row i averages torch's adaptive bin floor(i*in/out) .. ceil((i+1)*in/out)-1.
    """
    matrix = np.zeros((out_size, in_size), dtype=np.float32)
    for i in range(out_size):
        start, end = i * in_size // out_size, -(-(i + 1) * in_size // out_size)
        matrix[i, start:end] = np.float32(1) / np.float32(end - start)
    return matrix


def adaptive_avgpool2d(x: np.ndarray, out: int = 6) -> np.ndarray:
    """
    Pool (N, C, H, W) -> (N, C, out, out) with torch.nn.AdaptiveAvgPool2d's bins.

    The bins overlap when H % out != 0.
    """
    rows = _averaging_matrix(x.shape[2], out)
    cols = _averaging_matrix(x.shape[3], out)
    return np.ascontiguousarray(rows @ (x @ cols.T))


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, relu: bool = False) -> np.ndarray:
    """
    (N, F) -> (N, O): x Wᵀ + b, ReLU when ``relu``.

    Computed as (W xᵀ)ᵀ: OpenBLAS streams the large weight matrix once this way, where ``x @ W.T``
    re-reads it for batches above 1 (about 10x slower at batch 16 for fc6).
    """
    y = np.ascontiguousarray((weight @ x.T).T)
    y += bias
    if relu:
        np.maximum(y, 0, out=y)
    return y


def softmax_topk(logits: np.ndarray, k: int) -> np.ndarray:
    """
    Turn (N, C) logits into (N, 2, k).

    Row 0 holds the k largest probabilities descending, row 1 their class ids.

    The max is subtracted before exp so large logits do not overflow; equal probabilities keep the
    lower class id first (stable sort).
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted, dtype=np.float32)
    probabilities = exp / exp.sum(axis=1, keepdims=True, dtype=np.float32)
    ids = np.argsort(-probabilities, axis=1, kind='stable')[:, :k]
    top = np.take_along_axis(probabilities, ids, axis=1)
    return np.stack([top, ids.astype(np.float32)], axis=1)


#: the numpy op of each layer kind that takes a batch of activations: (layer, x, params) -> y.
#: A new layer kind adds its op here, its kernel to ``cuda/plans.py`` and its nominal geometry to
#: ``costs.py`` (``test/test_layer_kinds.py`` checks that every kind has all three).
LAYER_OPS: dict[str, Callable[[Layer, np.ndarray, dict[str, np.ndarray]], np.ndarray]] = {
    'conv': lambda layer, x, p: conv2d(x, p['weight'], p['bias'], layer.stride, layer.padding,
                                       layer.relu),
    'maxpool': lambda layer, x, p: maxpool2d(x, layer.kernel, layer.stride),
    'avgpool': lambda layer, x, p: adaptive_avgpool2d(x, layer.out_shape[1]),
    'flatten': lambda layer, x, p: x.reshape(x.shape[0], -1),
    # a linear layer flattens an (N, C, H, W) input itself
    'linear': lambda layer, x, p: linear(x.reshape(x.shape[0], -1), p['weight'], p['bias'],
                                         layer.relu),
    'softmax': lambda layer, x, p: softmax_topk(x, layer.k),
}


def run_layer(layer: Layer, x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    """Run one layer on a batch (every kind of :data:`LAYER_OPS`; preprocess takes images)."""
    op = LAYER_OPS.get(layer.kind)
    if op is not None:
        return op(layer, x, params)
    if layer.kind == 'preprocess':
        raise ValueError(f'layer {layer.name!r} takes images: '
                         'call preprocess/preprocess_batch instead')
    raise ValueError(f'layer {layer.name!r} has unknown kind {layer.kind!r}')


def layer_params(network: Network, weights: Weights, layer: Layer) -> dict[str, np.ndarray]:
    """``layer``'s tensors keyed by suffix ('weight', 'bias')."""
    return {suffix: weights[name] for suffix, name in network.layer_params(layer).items()}


def _preprocess_layer(layer: Layer, images: Sequence[Image]) -> np.ndarray:
    return preprocess_batch(images, layer.out_shape[1], layer.mean, layer.std)


def logits(network: Network, weights: Weights, images: Sequence[Image]) -> np.ndarray:
    """(N, num_classes) float32 logits of the whole network (everything before the softmax)."""
    x = _preprocess_layer(network.layers[0], images)
    for layer in network.layers[1:-1]:
        x = run_layer(layer, x, layer_params(network, weights, layer))
    return x


def forward(network: Network, weights: Weights, images: Sequence[Image]) -> np.ndarray:
    """(N, 2, k) top-k probabilities and class ids of the whole network for a batch of images."""
    last = network.layers[-1]
    return run_layer(last, logits(network, weights, images), layer_params(network, weights, last))


@dataclass
class _Pipeline:
    """One camera's staged frame and the latest output of every kernel layer (per-frame views)."""

    image: np.ndarray | None = None
    encoding: str = ''
    outputs: list[np.ndarray | None] = field(default_factory=list)


def measure_matmul_flops(size: int = 512, repeats: int = 5) -> float:
    """
    Measure this CPU's float32 matmul rate (FLOP/s).

    Best of ``repeats`` size x size products (~50 ms).
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / max(best, 1e-9)


class ReferenceEngine(Engine):
    """Runs every launch synchronously on the CPU with the numpy ops of this module."""

    name = 'reference'

    def __init__(self, network: Network, weights: Weights, nominal_gpu: str = 'h100'):
        super().__init__(network)
        if nominal_gpu not in GPUS:
            raise ValueError(f'nominal_gpu={nominal_gpu!r}: allowed {", ".join(GPUS)}')
        self.weights = weights
        self.nominal_gpu = nominal_gpu
        self._params = [layer_params(network, weights, layer) for layer in self.layers]
        self._pipelines: dict[int, _Pipeline] = {}
        self._matmul_flops: float | None = None

    @property
    def device_name(self) -> str:
        return 'cpu'

    def _pipeline(self, pid: Hashable) -> _Pipeline:
        try:
            return self._pipelines[pid]
        except KeyError:
            raise ValueError(f'pipeline {pid!r} is not open (open: '
                             f'{sorted(self._pipelines)})') from None

    def open_pipeline(self, pid: Hashable) -> None:
        if pid in self._pipelines:
            raise ValueError(f'pipeline {pid!r} is already open')
        self._pipelines[pid] = _Pipeline(outputs=[None] * len(self.layers))

    def close_pipeline(self, pid: Hashable) -> None:
        self._pipeline(pid)
        del self._pipelines[pid]

    def set_input(self, pid: Hashable, image: np.ndarray, encoding: str) -> None:
        pipeline = self._pipeline(pid)
        check_image(image, encoding)
        pipeline.image, pipeline.encoding = image, encoding

    def launch(self, layer_index: int, pids: Sequence[Hashable], stream: int) -> Done:
        """Run the layer now for all ``pids`` as one batch; ``stream`` is irrelevant on the CPU."""
        self.check_launch(layer_index, pids)
        pipelines = [self._pipeline(pid) for pid in pids]
        layer = self.layers[layer_index]
        self.kernel_launches += 1
        if layer_index == 0:
            missing = [pid for pid, p in zip(pids, pipelines) if p.image is None]
            if missing:
                raise ValueError(f'launch of layer 0 ({layer.name}): '
                                 f'pipeline {missing[0]!r} has no staged input')
            y = _preprocess_layer(layer, [(p.image, p.encoding) for p in pipelines])
        else:
            missing = [pid for pid, p in zip(pids, pipelines)
                       if p.outputs[layer_index - 1] is None]
            if missing:
                raise ValueError(f'launch of layer {layer_index} ({layer.name}): '
                                 f'pipeline {missing[0]!r} has no output of layer '
                                 f'{layer_index - 1} ({self.layers[layer_index - 1].name})')
            x = np.stack([p.outputs[layer_index - 1] for p in pipelines])
            y = run_layer(layer, x, self._params[layer_index])
        for frame, pipeline in enumerate(pipelines):
            pipeline.outputs[layer_index] = y[frame]
        return Done()

    def result(self, pid: Hashable) -> np.ndarray:
        output = self._pipeline(pid).outputs[-1]
        if output is None:
            raise ValueError(f'pipeline {pid!r} has no result yet (its last layer has not run)')
        return output

    def cost_table(self) -> CostTable:
        """
        Return the tbRatios of the nominal GPU's estimate and the durations of this CPU.

        Keeping the nominal tbRatios makes the scheduling policies take the decisions they would
        take on that GPU. Each launch costs batch x FLOPs / (measured float32 matmul rate) + bytes
        / 10 GB/s + 20 µs.
        """
        if self._matmul_flops is None:
            self._matmul_flops = measure_matmul_flops()
        nominal = estimate(self.network, self.nominal_gpu)
        entries = {}
        for layer in self.layers:
            entries[layer.name] = {
                batch: (batch * layer.flops / self._matmul_flops * 1e6
                        + layer.dram_bytes(batch) / CPU_MEMORY_BANDWIDTH * 1e6
                        + CPU_LAUNCH_OVERHEAD_US, tb_ratio)
                for batch, (_, tb_ratio) in nominal.entries[layer.name].items()}
        return CostTable(self.network, entries, f'cpu (tbRatios of {nominal.gpu})',
                         'reference estimate')

    def close(self) -> None:
        self._pipelines.clear()
        self._params = []
