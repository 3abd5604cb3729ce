"""
Launch plans: how each kernel layer runs, as host arithmetic.

A layer's parameters laid out for its kernel (:func:`param_layout`), the kernel variant, grid,
dynamic shared memory and argument record of one launch over a number of frames
(:func:`launch_record`), and how many of a kernel's blocks one SM holds (:func:`resident_blocks`,
which gives the tbRatio). Nothing here calls the driver, so all of it is checked on machines
without a GPU (``test/test_cuda_plans.py``); the engine (:mod:`.engine`) uploads the layouts,
resolves kernel names to functions and keeps one :class:`Plan` per (layer, frames).

Per kind (``Layer.kind``): ``preprocess`` one thread per output pixel, a grid row per frame;
``conv`` an implicit GEMM over C[M][frames*OH*OW] in (BM, BN) tiles (``kernels/conv2d.cu``);
``maxpool`` / ``avgpool`` one thread per output element, a grid row per frame; ``linear`` the
weight-streaming kernels up to LINEAR_STREAM_MAX frames, tiled ones of 8 or 16 frame slots beyond
(``kernels/linear.cu``); ``softmax`` one block per frame, the logits in shared memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .abi import CONV_ARGS, LINEAR_ARGS, POOL_ARGS, PREPROCESS_ARGS, SOFTMAX_ARGS
from ..base import EngineError
from ...model.layers import Layer

#: (BM, BN) output tiles of the conv2d kernels
CONV_TILES = ((128, 128), (128, 64), (64, 128), (64, 64))
#: 128x64 tiles are picked when they cover at least this share of the SMs (and M is a multiple of
#: 128)
CONV_WIDE_TILE_COVER = 0.6
#: the weights are padded to this many output channels so every tile reads in bounds
CONV_M_ALIGN = 128
#: K (channels x kernel taps) is padded to a multiple of the kernels' K slice
CONV_K_ALIGN = 16
#: a padded K row's tap: kh this far outside any image, so it always reads 0
CONV_PADDED_KH = 0x4000
#: threads per block of every kernel
THREADS = 256
BLOCK = (THREADS, 1, 1)
#: rows of W per block of the linear kernels, per rows-per-warp R (8 warps a block)
LINEAR_WARPS = 8
#: largest batch the weight-streaming linear kernels take; larger ones use the tiled kernels, whose
#: variants hold 8 or 16 frames per block (past 16, one row of blocks per 16 frames: grid.y)
LINEAR_STREAM_MAX = 4
LINEAR_TILED_FRAMES = (8, 16)


@dataclass
class Plan:
    """
    One kernel launch of a layer over a given number of frames.

    Its argument record is half filled: the static fields are set, the per-frame pointers are
    written by each launch.
    """

    function: Any
    name: str
    grid: tuple[int, int]
    shared: int
    # one record; static fields set, per-frame pointers set per launch
    args: np.ndarray
    # the record as uint64: in/image at [0:MAX_FRAMES], out at [MAX_FRAMES:2 * MAX_FRAMES]
    words: np.ndarray = field(init=False)
    buffer: np.ndarray = field(init=False)  # the record's bytes, what cuLaunchKernel copies

    def __post_init__(self):
        self.words = self.args.view(np.uint64)
        self.buffer = self.args.view(np.uint8)

    @property
    def blocks(self) -> int:
        return self.grid[0] * self.grid[1]


def _conv_layout(layer: Layer, params: dict[str, np.ndarray]) -> dict[str, np.ndarray | int]:
    m, c, k, _ = params['weight'].shape
    _, height, width = layer.in_shape
    depth = c * k * k
    kp = -(-depth // CONV_K_ALIGN) * CONV_K_ALIGN
    mp = -(-m // CONV_M_ALIGN) * CONV_M_ALIGN
    transposed = np.zeros((kp, mp), np.float32)
    transposed[:depth, :m] = params['weight'].reshape(m, depth).T
    channel, rest = np.divmod(np.arange(depth), k * k)
    kh, kw = np.divmod(rest, k)
    ktab = np.empty((kp, 2), np.int32)
    ktab[:depth, 0] = channel * height * width + kh * width + kw
    ktab[:depth, 1] = (kh << 16) | kw
    ktab[depth:] = (0, CONV_PADDED_KH << 16)
    return {'weight': transposed, 'bias': params['bias'], 'ktab': ktab, 'Kp': kp, 'Mp': mp}


def _linear_layout(layer: Layer, params: dict[str, np.ndarray]) -> dict[str, np.ndarray | int]:
    if layer.in_features % 4:
        raise EngineError(f'{layer.name}: in_features={layer.in_features} must be a '
                          'multiple of 4 (rows are read in 16-byte loads)')
    return {'weight': params['weight'], 'bias': params['bias']}


#: the parameter layout of each layer kind that has parameters (:func:`param_layout`)
PARAM_LAYOUTS: dict[str, Callable[[Layer, dict[str, np.ndarray]], dict[str, np.ndarray | int]]] = {
    'conv': _conv_layout,
    'linear': _linear_layout,
}


def param_layout(layer: Layer, params: dict[str, np.ndarray]) -> dict[str, np.ndarray | int]:
    """
    Return one layer's parameters as its kernel reads them: host arrays to upload, and sizes.

    conv: ``weight`` transposed and zero-padded to Wt[Kp][Mp] (K = channels x kernel x kernel,
    padded to CONV_K_ALIGN; M = output channels, padded to CONV_M_ALIGN), ``bias``, and the tap
    table ``ktab`` [Kp][2] int32: row k = c*K*K + kh*K + kw holds {c*H*W + kh*W + kw, kh << 16 |
    kw}, padded rows {0, CONV_PADDED_KH << 16}; ``Kp``, ``Mp``. linear: ``weight`` [out][in] and
    ``bias`` as they are (``in_features`` must be a multiple of 4: rows are read in 16-byte loads).
    Other kinds have none.
    """
    layout = PARAM_LAYOUTS.get(layer.kind)
    return {} if layout is None else layout(layer, params)


def pick_conv_tile(m: int, n: int, sm_count: int) -> tuple[int, int]:
    """
    Pick the (BM, BN) tile of a conv launch of C[m][n] on a GPU of ``sm_count`` SMs.

    64x64 tiles keep the most blocks and warps in flight, which wins at AlexNet's sizes on an
    H200 (bench/notes-gpu.md); 128x64 tiles read half as much shared memory per FMA and win
    once M is a multiple of 128 and their blocks still cover most SMs.
    """
    wide_blocks = -(-m // 128) * -(-n // 64)
    if m % 128 == 0 and wide_blocks >= CONV_WIDE_TILE_COVER * sm_count:
        return 128, 64
    return 64, 64


#: what a launch record function returns: kernel name, grid, dynamic shared bytes, the record
Record = tuple[str, tuple[int, int], int, np.ndarray]


def _fill(args: np.ndarray, values: dict) -> np.ndarray:
    for key, value in values.items():
        args[key] = value
    return args


def _preprocess_record(layer: Layer, params: dict[str, int], frames: int, sm_count: int,
                       conv_tile: tuple[int, int] | None) -> Record:
    size = layer.out_shape[1]
    args = _fill(np.zeros(1, PREPROCESS_ARGS),
                 {'mean': layer.mean, 'std': layer.std, 'size': size})
    return 'preprocess', (-(-size * size // THREADS), frames), 0, args


def _conv_record(layer: Layer, params: dict[str, int], frames: int, sm_count: int,
                 conv_tile: tuple[int, int] | None) -> Record:
    channels, height, width = layer.in_shape
    m, out_h, out_w = layer.out_shape
    tile = conv_tile or pick_conv_tile(m, frames * out_h * out_w, sm_count)
    grid = (-(-frames * out_h * out_w // tile[1]), -(-m // tile[0]))
    args = _fill(np.zeros(1, CONV_ARGS), {
        'weight': params['weight'], 'bias': params['bias'], 'ktab': params['ktab'],
        'frames': frames, 'channels': channels, 'height': height, 'width': width, 'M': m,
        'Mp': params['Mp'], 'Kp': params['Kp'], 'out_h': out_h, 'out_w': out_w,
        'stride': layer.stride, 'pad': layer.padding, 'relu': int(layer.relu)})
    return f'conv2d_{tile[0]}x{tile[1]}', grid, 0, args


def _pool_record(layer: Layer, params: dict[str, int], frames: int, sm_count: int,
                 conv_tile: tuple[int, int] | None) -> Record:
    channels, height, width = layer.in_shape
    _, out_h, out_w = layer.out_shape
    name = 'maxpool2d' if layer.kind == 'maxpool' else 'adaptive_avgpool2d'
    args = _fill(np.zeros(1, POOL_ARGS), {
        'channels': channels, 'height': height, 'width': width, 'out_h': out_h, 'out_w': out_w,
        'kernel': getattr(layer, 'kernel', 0), 'stride': getattr(layer, 'stride', 0),
        'frames': frames})
    return name, (-(-channels * out_h * out_w // THREADS), frames), 0, args


def _linear_record(layer: Layer, params: dict[str, int], frames: int, sm_count: int,
                   conv_tile: tuple[int, int] | None) -> Record:
    rows = layer.out_features
    if frames <= LINEAR_STREAM_MAX:
        per_warp = 2 if -(-rows // (2 * LINEAR_WARPS)) >= 0.9 * sm_count else 1
        name = f'linear_stream_nb{frames}_r{per_warp}'
    else:
        per_warp = next((r for r in (4, 2)
                         if -(-rows // (r * LINEAR_WARPS)) >= 0.9 * sm_count), 1)
        slots = next((n for n in LINEAR_TILED_FRAMES if frames <= n), LINEAR_TILED_FRAMES[-1])
        name = f'linear_tiled_nb{slots}_r{per_warp}'
    groups = 1 if frames <= LINEAR_STREAM_MAX else -(-frames // LINEAR_TILED_FRAMES[-1])
    args = _fill(np.zeros(1, LINEAR_ARGS), {
        'weight': params['weight'], 'bias': params['bias'], 'frames': frames,
        'in_features': layer.in_features, 'out_features': rows, 'relu': int(layer.relu)})
    return name, (-(-rows // (per_warp * LINEAR_WARPS)), groups), 0, args


def _softmax_record(layer: Layer, params: dict[str, int], frames: int, sm_count: int,
                    conv_tile: tuple[int, int] | None) -> Record:
    classes = layer.in_shape[0]
    args = _fill(np.zeros(1, SOFTMAX_ARGS), {'classes': classes, 'k': layer.k})
    return 'softmax_topk', (frames, 1), classes * 4, args


#: the launch record function of each kernel layer kind (:func:`launch_record`)
LAUNCH_RECORDS: dict[str, Callable[..., Record]] = {
    'preprocess': _preprocess_record,
    'conv': _conv_record,
    'maxpool': _pool_record,
    'avgpool': _pool_record,
    'linear': _linear_record,
    'softmax': _softmax_record,
}


def launch_record(layer: Layer, params: dict[str, int], frames: int, sm_count: int,
                  conv_tile: tuple[int, int] | None = None) -> Record:
    """
    Return the kernel name, grid, dynamic shared bytes and argument record of one launch.

    ``params``: the device addresses and sizes of the layer's :func:`param_layout`. The record's
    per-frame pointers are left zero. ``conv_tile`` forces a conv tile (None:
    :func:`pick_conv_tile`).
    """
    record = LAUNCH_RECORDS.get(layer.kind)
    if record is None:
        raise EngineError(f'layer {layer.name!r}: no CUDA kernel for kind {layer.kind!r}')
    return record(layer, params, frames, sm_count, conv_tile)


def resident_blocks(limits: dict[str, int], registers_per_thread: int, static_shared: int,
                    dynamic_shared: int) -> int:
    """
    Return how many blocks of a THREADS-thread kernel one SM holds at once (at least 1).

    ``limits``: the SM's ``threads``, ``blocks``, ``registers`` and ``shared`` bytes, and the
    shared bytes the driver ``reserved`` per block. Registers are allocated per warp in units of
    256, shared memory per block in units of 128 bytes.
    """
    warps = THREADS // 32
    registers = -(-registers_per_thread * 32 // 256) * 256 * warps
    shared = -(-(static_shared + dynamic_shared + limits['reserved']) // 128) * 128
    return max(1, min(limits['blocks'], limits['threads'] // THREADS,
                      limits['registers'] // registers, limits['shared'] // shared))
