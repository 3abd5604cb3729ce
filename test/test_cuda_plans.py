"""
The CUDA engine's launch plans, as host arithmetic (no GPU, no pycuda).

The conv weight layout and tap table, gathered the way ``kernels/conv2d.cu`` gathers them, give
the reference convolution; every grid covers its output and reads its padded weights in bounds;
every kernel a plan names is defined in ``kernels/*.cu``; the linear kernels take 16 frames a
block row past 16; the occupancy arithmetic follows the SM's limits.
"""
from pathlib import Path
import re

import numpy as np
import pytest
from s3dnn_ros.engine.base import EngineError
from s3dnn_ros.engine.cuda.abi import MAX_FRAMES
from s3dnn_ros.engine.cuda.plans import (CONV_K_ALIGN, CONV_M_ALIGN, CONV_PADDED_KH, CONV_TILES,
                                         CONV_WIDE_TILE_COVER, launch_record, param_layout,
                                         pick_conv_tile, resident_blocks, THREADS)
from s3dnn_ros.engine.reference import conv2d, layer_params
from s3dnn_ros.model import alexnet, init_weights
from s3dnn_ros.model.layers import Linear

NETWORK = alexnet()
LAYERS = NETWORK.kernel_layers
CONVS = [layer for layer in LAYERS if layer.kind == 'conv']
KERNELS = Path(__file__).resolve().parents[1] / 'kernels'
#: an H100's SMs (132) and an H200's are the same count
SM_COUNT = 132
H100_LIMITS = {'threads': 2048, 'blocks': 32, 'registers': 65536, 'shared': 233472,
               'reserved': 1024}


@pytest.fixture(scope='module')
def weights():
    return init_weights(NETWORK, seed=3)


def device_params(layout: dict) -> dict:
    """Stand-in device addresses for a layout's arrays (distinct, non-zero), sizes as they are."""
    return {key: 0x1000 * (number + 1) if isinstance(value, np.ndarray) else value
            for number, (key, value) in enumerate(layout.items())}


def implicit_gemm(layer, layout: dict, x: np.ndarray) -> np.ndarray:
    """
    Return conv2d.cu's result for one frame, gathered through ``ktab`` as the kernel gathers it.

    B[k][oh*OW + ow] = x.flat[c*H*W + kh*W + kw + ih0*W + iw0] where (ih0 + kh, iw0 + kw) lies in
    the image, else 0 (padded rows too); C = Wt^T B + bias, ReLU.
    """
    channels, height, width = layer.in_shape
    m, out_h, out_w = layer.out_shape
    ktab = layout['ktab']
    kh, kw = ktab[:, 1] >> 16, ktab[:, 1] & 0xffff
    oh, ow = np.divmod(np.arange(out_h * out_w), out_w)
    ih = oh[None, :] * layer.stride - layer.padding + kh[:, None]
    iw = ow[None, :] * layer.stride - layer.padding + kw[:, None]
    inside = (ih >= 0) & (ih < height) & (iw >= 0) & (iw < width)
    offsets = ktab[:, 0, None] + (oh * layer.stride - layer.padding)[None, :] * width \
        + (ow * layer.stride - layer.padding)[None, :]
    columns = np.where(inside, x.reshape(-1)[np.where(inside, offsets, 0)], 0).astype(np.float32)
    out = layout['weight'][:, :m].T.astype(np.float64) @ columns + layout['bias'][:, None]
    return np.maximum(out, 0).reshape(m, out_h, out_w) if layer.relu else \
        out.reshape(m, out_h, out_w)


@pytest.mark.parametrize('layer', CONVS, ids=lambda layer: layer.name)
def test_conv_layout_gathered_like_the_kernel_gives_the_reference_convolution(layer, weights):
    params = layer_params(NETWORK, weights, layer)
    layout = param_layout(layer, params)
    x = np.random.default_rng(7).standard_normal(layer.in_shape, dtype=np.float32)
    expected = conv2d(x[None], params['weight'], params['bias'], layer.stride, layer.padding,
                      layer.relu)[0]
    np.testing.assert_allclose(implicit_gemm(layer, layout, x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('layer', CONVS, ids=lambda layer: layer.name)
def test_conv_layout_pads_k_and_m_with_zeros_and_out_of_image_taps(layer, weights):
    params = layer_params(NETWORK, weights, layer)
    layout = param_layout(layer, params)
    m, c, k, _ = params['weight'].shape
    depth = c * k * k
    assert layout['Kp'] % CONV_K_ALIGN == 0 and depth <= layout['Kp'] < depth + CONV_K_ALIGN
    assert layout['Mp'] % CONV_M_ALIGN == 0 and m <= layout['Mp'] < m + CONV_M_ALIGN
    assert layout['weight'].shape == (layout['Kp'], layout['Mp'])
    assert layout['ktab'].shape == (layout['Kp'], 2) and layout['ktab'].dtype == np.int32
    assert not layout['weight'][depth:].any() and not layout['weight'][:, m:].any()
    assert (layout['ktab'][depth:, 1] >> 16 == CONV_PADDED_KH).all()


@pytest.mark.parametrize('tile', CONV_TILES, ids=lambda tile: f'{tile[0]}x{tile[1]}')
@pytest.mark.parametrize('frames', [1, 5, MAX_FRAMES])
def test_conv_grid_covers_the_output_and_reads_weights_in_bounds(tile, frames, weights):
    for layer in CONVS:
        params = layer_params(NETWORK, weights, layer)
        layout = param_layout(layer, params)
        name, grid, shared, args = launch_record(layer, device_params(layout), frames, SM_COUNT,
                                                 tile)
        m, out_h, out_w = layer.out_shape
        columns = frames * out_h * out_w
        assert name == f'conv2d_{tile[0]}x{tile[1]}' and shared == 0
        assert (grid[0] - 1) * tile[1] < columns <= grid[0] * tile[1], layer.name
        assert (grid[1] - 1) * tile[0] < m <= grid[1] * tile[0], layer.name
        assert grid[1] * tile[0] <= layout['Mp'], layer.name  # every tile row of Wt exists
        record = args[0]
        assert (int(record['frames']), int(record['M']), int(record['Kp'])) == \
            (frames, m, layout['Kp'])
        assert (int(record['stride']), int(record['pad'])) == (layer.stride, layer.padding)
        assert not record['in'].any() and not record['out'].any()


def test_conv_tile_is_128x64_only_for_m_a_multiple_of_128_covering_the_sms():
    # conv3 (M = 384) over 32 frames of 13x13: 3 x 85 tiles of 128x64, far past 60% of the SMs
    assert pick_conv_tile(384, 32 * 169, SM_COUNT) == (128, 64)
    # one frame: 3 x 3 tiles cover too few SMs
    assert pick_conv_tile(384, 169, SM_COUNT) == (64, 64)
    # M = 192 is no multiple of 128, however many tiles
    assert pick_conv_tile(192, 32 * 729, SM_COUNT) == (64, 64)
    # exactly at the cover: 2 x ceil(n / 64) tiles against 0.6 x 100 SMs
    needed = -(-int(CONV_WIDE_TILE_COVER * 100) // 2) * 64
    assert pick_conv_tile(256, needed, 100) == (128, 64)
    assert pick_conv_tile(256, needed - 64, 100) == (64, 64)


def defined_kernels() -> set[str]:
    """
    Return the extern "C" kernels of kernels/*.cu.

    Plain definitions, and the instances of the LINEAR_KERNEL and CONV_KERNEL macros, each of
    which defines a kernel and its ``_ref`` variant.
    """
    names = set()
    for path in KERNELS.glob('*.cu'):
        text = path.read_text(encoding='utf-8')
        names.update(re.findall(r'extern "C" __global__ void __launch_bounds__\([^)]*\)\s+(\w+)\(',
                                text))
        instances = [f'linear_{kind}_nb{nb}_r{r}' for kind, nb, r in
                     re.findall(r'^LINEAR_KERNEL\((\w+), (\d+), (\d+)\)', text, re.M)]
        instances += [f'conv2d_{bm}x{bn}' for bm, bn in
                      re.findall(r'^CONV_KERNEL\((\d+), (\d+),', text, re.M)]
        names.update(instances)
        names.update(f'{name}_ref' for name in instances)
    return names


@pytest.mark.parametrize('sm_count', [16, 40, SM_COUNT])
def test_every_kernel_a_plan_names_is_defined_with_its_ref_variant(sm_count, weights):
    defined = defined_kernels()
    named = set()
    for layer in LAYERS:
        params = layer_params(NETWORK, weights, layer)
        layout = device_params(param_layout(layer, params))
        tiles = CONV_TILES if layer.kind == 'conv' else (None,)
        for frames in range(1, MAX_FRAMES + 1):
            for tile in tiles:
                named.add(launch_record(layer, layout, frames, sm_count, tile)[0])
    assert named - defined == set()
    assert {f'{name}_ref' for name in named} - defined == set()


def test_linear_plans_take_16_frames_a_block_row_past_16():
    """Streaming kernels up to 4 frames, tiled ones of 8 or 16 slots, then grid.y frame groups."""
    fc6 = next(layer for layer in LAYERS if layer.kind == 'linear')
    params = {'weight': 0x1000, 'bias': 0x2000}
    plans = {frames: launch_record(fc6, params, frames, SM_COUNT)
             for frames in range(1, MAX_FRAMES + 1)}
    blocks_x = plans[16][1][0]
    for frames, (name, grid, _, args) in plans.items():
        assert int(args['frames'][0]) == frames
        assert (int(args['weight'][0]), int(args['bias'][0])) == (0x1000, 0x2000)
        if frames <= 4:
            assert name.startswith(f'linear_stream_nb{frames}_') and grid[1] == 1
            continue
        slots = 8 if frames <= 8 else 16
        assert name.startswith(f'linear_tiled_nb{slots}_'), (frames, name)
        assert grid == (blocks_x if slots == 16 else grid[0], 1 if frames <= 16 else 2)
    assert plans[17][0] == plans[32][0] == plans[16][0]


def test_linear_rows_per_warp_grow_while_the_blocks_still_cover_the_sms():
    """4 rows a warp while the blocks stay >= 0.9 x the SMs, else 2, else 1 (tiled kernels)."""
    fc6 = next(layer for layer in LAYERS if layer.name == 'fc6')  # 4096 rows
    fc8 = next(layer for layer in LAYERS if layer.name == 'fc8')  # 1000 rows
    params = {'weight': 1, 'bias': 2}
    assert launch_record(fc6, params, 8, SM_COUNT)[:2] == ('linear_tiled_nb8_r4', (128, 1))
    assert launch_record(fc6, params, 8, 200)[:2] == ('linear_tiled_nb8_r2', (256, 1))
    assert launch_record(fc8, params, 8, SM_COUNT)[:2] == ('linear_tiled_nb8_r1', (125, 1))


def test_pointwise_and_softmax_grids_cover_every_output_of_every_frame():
    for layer in LAYERS:
        if layer.kind not in ('preprocess', 'maxpool', 'avgpool', 'softmax'):
            continue
        name, grid, shared, args = launch_record(layer, {}, 7, SM_COUNT)
        if layer.kind == 'softmax':
            assert (name, grid, shared) == ('softmax_topk', (7, 1), 4 * layer.in_shape[0])
            assert (int(args['classes'][0]), int(args['k'][0])) == (layer.in_shape[0], layer.k)
            continue
        per_frame = (layer.out_shape[1] * layer.out_shape[2] if layer.kind == 'preprocess'
                     else int(np.prod(layer.out_shape)))
        assert grid[1] == 7 and (grid[0] - 1) * THREADS < per_frame <= grid[0] * THREADS
        assert shared == 0


def test_a_layer_kind_without_a_kernel_and_unaligned_linear_rows_are_refused():
    flatten = next(layer for layer in NETWORK.layers if layer.kind == 'flatten')
    with pytest.raises(EngineError, match=r"layer 'flatten': no CUDA kernel for kind 'flatten'"):
        launch_record(flatten, {}, 1, SM_COUNT)
    odd = Linear('odd', (10,), (4,))
    with pytest.raises(EngineError, match=r'^odd: in_features=10 must be a multiple of 4'):
        param_layout(odd, {'weight': np.zeros((4, 10), np.float32),
                           'bias': np.zeros(4, np.float32)})


@pytest.mark.parametrize('registers, static, dynamic, blocks', [
    (32, 0, 0, 8),            # threads: 2048 / 256
    (64, 0, 0, 4),            # registers: 65536 / (64 x 256)
    (40, 0, 0, 6),            # 40 x 32 = 1280 -> 1280 per warp, 10240 per block: 6
    (32, 48 * 1024, 0, 4),    # shared: 233472 // (49152 + 1024)
    (32, 0, 4000, 8),         # 4000 + 1024 rounded to 5120: 45 fit, threads limit 8
    (255, 100 * 1024, 0, 1),  # registers allow 1: never below 1
])
def test_resident_blocks_is_the_tightest_sm_limit(registers, static, dynamic, blocks):
    assert resident_blocks(H100_LIMITS, registers, static, dynamic) == blocks
