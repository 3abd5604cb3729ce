"""The numpy reference engine against naive Python-loop implementations of every op."""
import math

import numpy as np
import pytest
from s3dnn_ros.engine.base import check_image, ENCODINGS
from s3dnn_ros.engine.costs import estimate
from s3dnn_ros.engine.reference import (adaptive_avgpool2d, conv2d, forward, linear, logits,
                                        maxpool2d, preprocess, preprocess_batch, ReferenceEngine,
                                        run_layer, softmax_topk)
from s3dnn_ros.model import alexnet, init_weights
from s3dnn_ros.model.layers import AdaptiveAvgPool2d, Flatten, IMAGENET_MEAN, IMAGENET_STD, Linear

TOLERANCE = {'rtol': 1e-5, 'atol': 1e-5}
#: source coordinates are float32 (as in torch), so a tap weight may be off by half an ulp of the
#: coordinate (about 4e-6 at coordinate 57), times a pixel step of up to 1/std
PREPROCESS_TOLERANCE = {'rtol': 1e-5, 'atol': 5e-5}


def random_floats(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def random_image(rng, height, width, channels):
    return rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)


# ---- naive implementations ----------------------------------------------------------------------

def naive_conv2d(x, weight, bias, stride, padding, relu):
    n, c, h, w = x.shape
    out_channels, _, kernel, _ = weight.shape
    out_h = (h + 2 * padding - kernel) // stride + 1
    out_w = (w + 2 * padding - kernel) // stride + 1
    y = np.zeros((n, out_channels, out_h, out_w))
    for b in range(n):
        for o in range(out_channels):
            for i in range(out_h):
                for j in range(out_w):
                    total = float(bias[o])
                    for ch in range(c):
                        for ki in range(kernel):
                            for kj in range(kernel):
                                row, col = i * stride + ki - padding, j * stride + kj - padding
                                if 0 <= row < h and 0 <= col < w:
                                    total += (float(x[b, ch, row, col])
                                              * float(weight[o, ch, ki, kj]))
                    y[b, o, i, j] = max(total, 0.0) if relu else total
    return y


def naive_maxpool2d(x, kernel, stride):
    n, c, h, w = x.shape
    out_h, out_w = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    y = np.zeros((n, c, out_h, out_w), dtype=np.float32)
    for i in range(out_h):
        for j in range(out_w):
            window = x[:, :, i * stride:i * stride + kernel, j * stride:j * stride + kernel]
            y[:, :, i, j] = window.max(axis=(2, 3))
    return y


def naive_adaptive_avgpool2d(x, out):
    n, c, h, w = x.shape
    y = np.zeros((n, c, out, out))
    for i in range(out):
        for j in range(out):
            rows = range(math.floor(i * h / out), math.ceil((i + 1) * h / out))
            cols = range(math.floor(j * w / out), math.ceil((j + 1) * w / out))
            y[:, :, i, j] = np.mean([[x[:, :, r, s] for s in cols] for r in rows], axis=(0, 1))
    return y


def naive_linear(x, weight, bias, relu):
    rows = []
    for row in x.astype(np.float64):
        y = weight.astype(np.float64) @ row + bias
        rows.append(np.maximum(y, 0) if relu else y)
    return np.array(rows)


def naive_softmax_topk(x, k):
    out = np.zeros((len(x), 2, k))
    for n, row in enumerate(x.astype(np.float64)):
        exp = np.exp(row - row.max())
        probabilities = exp / exp.sum()
        ranked = sorted(range(len(row)), key=lambda c: (-probabilities[c], c))[:k]
        out[n, 0] = probabilities[ranked]
        out[n, 1] = ranked
    return out


def naive_preprocess(image, encoding, size, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """
    Preprocess per output pixel.

    Torch's bilinear resize (align_corners=False, no antialias) of pixel/255.
    """
    in_h, in_w = image.shape[:2]
    rgb = ENCODINGS[encoding][1]

    def taps(dst, in_size):
        src = max((dst + 0.5) * in_size / size - 0.5, 0.0)
        lower = min(math.floor(src), in_size - 1)
        return lower, min(lower + 1, in_size - 1), src - lower

    y = np.zeros((3, size, size))
    for i in range(size):
        r0, r1, wr = taps(i, in_h)
        for j in range(size):
            c0, c1, wc = taps(j, in_w)
            for channel, source in enumerate(rgb):
                p = image[:, :, source].astype(np.float64) / 255
                value = ((1 - wr) * ((1 - wc) * p[r0, c0] + wc * p[r0, c1])
                         + wr * ((1 - wc) * p[r1, c0] + wc * p[r1, c1]))
                y[channel, i, j] = (value - mean[channel]) / std[channel]
    return y


def test_check_image_takes_uint8_h_w_c_of_the_encodings_channels_and_names_what_is_wrong():
    """A uint8 dtype other than numpy's own object passes too; each wrong property is named."""
    image = np.zeros((4, 5, 3), np.uint8)
    assert check_image(image, 'rgb8') == 3
    assert check_image(image.view(np.dtype(np.uint8, metadata={'camera': 1})), 'bgr8') == 3
    assert check_image(np.zeros((4, 5, 1), np.uint8), 'mono8') == 1
    for bad, encoding, message in (
            (image.astype(np.int16), 'rgb8',
             r'rgb8 image must be H x W x 3 uint8, got \(4, 5, 3\) int16'),
            (image[:, :, 0], 'rgb8', r'got \(4, 5\) uint8'),
            (image, 'rgba8', 'rgba8 image must be H x W x 4'),
            (np.zeros((0, 5, 3), np.uint8), 'rgb8', r'zero size \(0, 5\)'),
            (image, 'yuv422', "encoding 'yuv422' is not supported; allowed: rgb8, bgr8")):
        with pytest.raises(ValueError, match=message):
            check_image(bad, encoding)


# ---- ops ----------------------------------------------------------------------------------------

@pytest.mark.parametrize('n, c, size, out_channels, kernel, stride, padding, relu', [
    (2, 3, 23, 4, 11, 4, 2, True),   # conv1-like
    (2, 4, 9, 5, 5, 1, 2, True),     # conv2-like
    (3, 3, 7, 4, 3, 1, 1, True),     # conv3..5-like
    (1, 2, 8, 3, 3, 2, 0, False),
])
def test_conv2d_matches_naive(n, c, size, out_channels, kernel, stride, padding, relu):
    rng = np.random.default_rng(size * 100 + kernel)
    x = random_floats(rng, (n, c, size, size + 1))
    weight = random_floats(rng, (out_channels, c, kernel, kernel))
    bias = random_floats(rng, (out_channels,))
    y = conv2d(x, weight, bias, stride, padding, relu)
    assert y.dtype == np.float32 and y.flags.c_contiguous
    np.testing.assert_allclose(y, naive_conv2d(x, weight, bias, stride, padding, relu),
                               **TOLERANCE)


@pytest.mark.parametrize('shape', [(2, 3, 13, 13), (1, 4, 27, 27), (2, 2, 55, 55), (1, 3, 8, 9)])
def test_maxpool2d_matches_naive(shape):
    x = random_floats(np.random.default_rng(shape[2]), shape)
    y = maxpool2d(x, 3, 2)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, naive_maxpool2d(x, 3, 2))


@pytest.mark.parametrize('shape',
                         [(2, 3, 13, 13), (1, 4, 7, 7), (2, 2, 5, 5), (1, 2, 6, 6), (1, 3, 12, 9)])
def test_adaptive_avgpool2d_matches_naive(shape):
    x = random_floats(np.random.default_rng(shape[2]), shape)
    y = adaptive_avgpool2d(x, 6)
    assert y.shape == shape[:2] + (6, 6) and y.dtype == np.float32
    np.testing.assert_allclose(y, naive_adaptive_avgpool2d(x, 6), **TOLERANCE)


@pytest.mark.parametrize('relu', [True, False])
def test_linear_matches_naive(relu):
    rng = np.random.default_rng(7)
    x, weight, bias = (random_floats(rng, (3, 40)), random_floats(rng, (17, 40)),
                       random_floats(rng, (17,)))
    y = linear(x, weight, bias, relu)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, naive_linear(x, weight, bias, relu), **TOLERANCE)


def test_softmax_topk_matches_naive():
    rng = np.random.default_rng(3)
    x = random_floats(rng, (4, 1000)) * 5
    y = softmax_topk(x, 5)
    assert y.shape == (4, 2, 5) and y.dtype == np.float32
    np.testing.assert_allclose(y, naive_softmax_topk(x, 5), **TOLERANCE)


def test_softmax_topk_sums_to_one_descending_and_stable():
    # large logits must not overflow
    x = random_floats(np.random.default_rng(4), (2, 1000)) * 3 + 500
    everything = softmax_topk(x, 1000)
    np.testing.assert_allclose(everything[:, 0].sum(axis=1), 1.0, rtol=1e-5)
    assert (np.diff(everything[:, 0], axis=1) <= 0).all()
    assert [sorted(row) for row in everything[:, 1]] == [list(range(1000))] * 2
    ties = softmax_topk(np.array([[1, 3, 3, 2, 3, 0]], dtype=np.float32), 4)
    assert ties[0, 1].tolist() == [1, 2, 4, 3]
    assert ties[0, 0, 0] == ties[0, 0, 1] == ties[0, 0, 2]


def test_run_layer_dispatches_and_flattens_for_linear():
    rng = np.random.default_rng(5)
    x = random_floats(rng, (2, 4, 7, 7))
    pooled = run_layer(AdaptiveAvgPool2d('avgpool', (4, 7, 7), (4, 6, 6)), x, {})
    np.testing.assert_array_equal(pooled, adaptive_avgpool2d(x, 6))
    flat = run_layer(Flatten('flatten', (4, 6, 6), (144,)), pooled, {})
    assert flat.shape == (2, 144)
    params = {'weight': random_floats(rng, (10, 144)), 'bias': random_floats(rng, (10,))}
    fc = Linear('fc', (144,), (10,), relu=True)
    np.testing.assert_array_equal(run_layer(fc, pooled, params), run_layer(fc, flat, params))
    np.testing.assert_allclose(run_layer(fc, pooled, params),
                               naive_linear(flat, params['weight'], params['bias'], True),
                               **TOLERANCE)
    with pytest.raises(ValueError, match='preprocess'):
        run_layer(alexnet().layers[0], x, {})


# ---- preprocess ---------------------------------------------------------------------------------

@pytest.mark.parametrize('encoding', list(ENCODINGS))
# upscale, downscale, same size
@pytest.mark.parametrize('height, width', [(9, 13), (40, 57), (17, 17)])
def test_preprocess_matches_naive(encoding, height, width):
    rng = np.random.default_rng(height * width)
    image = random_image(rng, height, width, ENCODINGS[encoding][0])
    y = preprocess(image, encoding, size=17)
    assert y.shape == (3, 17, 17) and y.dtype == np.float32
    np.testing.assert_allclose(y, naive_preprocess(image, encoding, 17), **PREPROCESS_TOLERANCE)


def test_preprocess_encodings_are_consistent():
    rng = np.random.default_rng(11)
    rgb = random_image(rng, 31, 45, 3)
    expected = preprocess(rgb, 'rgb8', 32)
    np.testing.assert_array_equal(preprocess(np.ascontiguousarray(rgb[:, :, ::-1]), 'bgr8', 32),
                                  expected)
    rgba = np.concatenate([rgb, random_image(rng, 31, 45, 1)], axis=2)
    np.testing.assert_array_equal(preprocess(rgba, 'rgba8', 32), expected)
    rgba[:, :, 3] = 255 - rgba[:, :, 3]
    np.testing.assert_array_equal(preprocess(rgba, 'rgba8', 32), expected)
    bgra = np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]])
    np.testing.assert_array_equal(preprocess(bgra, 'bgra8', 32), expected)
    mono = random_image(rng, 31, 45, 1)
    np.testing.assert_array_equal(preprocess(mono, 'mono8', 32),
                                  preprocess(np.repeat(mono, 3, axis=2), 'rgb8', 32))


def test_preprocess_reads_padded_rows_in_place():
    rng = np.random.default_rng(12)
    wide = random_image(rng, 30, 50, 3)
    view = wide[:, :41]
    np.testing.assert_array_equal(preprocess(view, 'bgr8', 24),
                                  preprocess(np.ascontiguousarray(view), 'bgr8', 24))
    row_bytes = 41 * 3 + 7  # a row stride that is not a whole number of pixels
    buffer = rng.integers(0, 256, size=30 * row_bytes, dtype=np.uint8)
    strided = np.lib.stride_tricks.as_strided(buffer, shape=(30, 41, 3), strides=(row_bytes, 3, 1))
    np.testing.assert_array_equal(preprocess(strided, 'rgb8', 24),
                                  preprocess(np.ascontiguousarray(strided), 'rgb8', 24))


def test_preprocess_is_plain_normalisation_at_input_size():
    image = random_image(np.random.default_rng(13), 224, 224, 3)
    mean = np.array(IMAGENET_MEAN, dtype=np.float32)[:, None, None]
    std = np.array(IMAGENET_STD, dtype=np.float32)[:, None, None]
    expected = (image.transpose(2, 0, 1).astype(np.float32) / np.float32(255) - mean) / std
    np.testing.assert_allclose(preprocess(image, 'rgb8'), expected, rtol=1e-6, atol=1e-6)


def test_preprocess_batch_stacks_mixed_images():
    rng = np.random.default_rng(14)
    images = [(random_image(rng, 20, 30, 3), 'rgb8'), (random_image(rng, 50, 40, 1), 'mono8'),
              (random_image(rng, 10, 10, 4), 'bgra8')]
    batch = preprocess_batch(images, size=16)
    assert batch.shape == (3, 3, 16, 16)
    for frame, (image, encoding) in zip(batch, images):
        np.testing.assert_array_equal(frame, preprocess(image, encoding, 16))
    with pytest.raises(ValueError, match='yuv422'):
        preprocess(images[0][0], 'yuv422')


# ---- engine -------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def network():
    return alexnet()


@pytest.fixture(scope='module')
def weights(network):
    return init_weights(network, seed=1)


@pytest.fixture(scope='module')
def camera_images():
    rng = np.random.default_rng(21)
    return [(random_image(rng, 240, 320, 3), 'bgr8'), (random_image(rng, 200, 180, 1), 'mono8'),
            (random_image(rng, 300, 400, 4)[:, :350], 'rgba8')]


def assert_same_topk(actual, expected):
    """
    Assert scores equal within float32 rounding.

    Class ids equal except where their scores tie within it.
    """
    np.testing.assert_allclose(actual[..., 0, :], expected[..., 0, :], rtol=1e-4, atol=1e-7)
    differ = actual[..., 1, :] != expected[..., 1, :]
    near_tie = np.isclose(actual[..., 0, :], np.roll(actual[..., 0, :], 1, axis=-1), rtol=1e-4) | \
        np.isclose(actual[..., 0, :], np.roll(actual[..., 0, :], -1, axis=-1), rtol=1e-4)
    assert not (differ & ~near_tie).any()


def run_whole_network(engine, pids):
    for layer_index in range(len(engine.layers)):
        assert engine.launch(layer_index, pids, stream=layer_index % 2).done()
    return np.stack([engine.result(pid) for pid in pids])


def test_fused_launches_equal_separate_pipelines_and_forward(network, weights, camera_images):
    fused = ReferenceEngine(network, weights)
    for pid, (image, encoding) in enumerate(camera_images):
        fused.open_pipeline(pid)
        fused.set_input(pid, image, encoding)
    fused_results = run_whole_network(fused, [0, 1, 2])
    assert fused_results.shape == (3, 2, network.top_k) and fused_results.dtype == np.float32
    gathered = fused.results([2, 0])  # a copy of the results in that order
    np.testing.assert_array_equal(gathered, fused_results[[2, 0]])
    gathered[...] = -1
    np.testing.assert_array_equal(fused.result(0), fused_results[0])

    alone = ReferenceEngine(network, weights)
    alone_results = []
    for pid, (image, encoding) in enumerate(camera_images):
        alone.open_pipeline(pid)
        alone.set_input(pid, image, encoding)
        alone_results.append(run_whole_network(alone, [pid])[0])
    assert_same_topk(fused_results, np.array(alone_results))

    reference = forward(network, weights, camera_images)
    assert_same_topk(fused_results, reference)
    assert_same_topk(reference,
                     softmax_topk(logits(network, weights, camera_images), network.top_k))


def test_partial_fusion_in_a_different_order(network, weights, camera_images):
    engine = ReferenceEngine(network, weights)
    for pid, (image, encoding) in zip((5, 7), camera_images):
        engine.open_pipeline(pid)
        engine.set_input(pid, image, encoding)
    engine.launch(0, [7, 5], stream=0)
    engine.launch(1, [5], stream=0)
    engine.launch(1, [7], stream=1)
    for layer_index in range(2, len(engine.layers)):
        engine.launch(layer_index, [7, 5], stream=0)
    assert_same_topk(np.stack([engine.result(5), engine.result(7)]),
                     forward(network, weights, camera_images[:2]))


def test_a_segment_of_layers_runs_as_its_layers_one_by_one(network, weights, camera_images):
    """launch_layers issues a segment's layers in order; one past the last layer is refused."""
    engine = ReferenceEngine(network, weights)
    layers = len(engine.layers)
    for pid, (image, encoding) in enumerate(camera_images):
        engine.open_pipeline(pid)
        engine.set_input(pid, image, encoding)
    assert engine.launch_layers(0, 5, [0, 1, 2], stream=0).done()
    engine.launch_layers(5, layers - 5, [2, 0, 1], stream=0)
    assert_same_topk(np.stack([engine.result(pid) for pid in range(3)]),
                     forward(network, weights, camera_images))
    with pytest.raises(ValueError, match=f'launch of 2 layers from layer {layers - 1}: '
                                         'allowed 1..1'):
        engine.launch_layers(layers - 1, 2, [0], stream=0)
    with pytest.raises(ValueError, match='launch of 0 layers'):
        engine.launch_layers(0, 0, [0], stream=0)


def test_engine_errors_name_the_value(network, weights, camera_images):
    engine = ReferenceEngine(network, weights)
    assert engine.name == 'reference' and engine.device_name == 'cpu'
    engine.open_pipeline(3)
    with pytest.raises(ValueError, match='pipeline 3 is already open'):
        engine.open_pipeline(3)
    image, encoding = camera_images[0]
    for call in (lambda: engine.set_input(9, image, encoding), lambda: engine.launch(0, [3, 9], 0),
                 lambda: engine.result(9), lambda: engine.close_pipeline(9)):
        with pytest.raises(ValueError, match='pipeline 9 is not open'):
            call()
    with pytest.raises(ValueError, match='layer 0 .*pipeline 3 has no staged input'):
        engine.launch(0, [3], 0)
    with pytest.raises(ValueError, match='bgr8 image must be'):
        engine.set_input(3, image[:, :, :1], encoding)
    engine.set_input(3, image, encoding)
    with pytest.raises(ValueError, match='layer 2 .*pipeline 3 has no output of layer 1'):
        engine.launch(2, [3], 0)
    for index in (-1, len(engine.layers)):
        with pytest.raises(ValueError, match=f'layer index {index} out of range'):
            engine.launch(index, [3], 0)
    with pytest.raises(ValueError, match='no pipelines'):
        engine.launch(0, [], 0)
    with pytest.raises(ValueError, match='repeat'):
        engine.launch(0, [3, 3], 0)
    with pytest.raises(ValueError, match='pipeline 3 has no result'):
        engine.result(3)
    engine.close_pipeline(3)
    engine.open_pipeline(3)
    engine.close()
    with pytest.raises(ValueError, match='pipeline 3 is not open'):
        engine.launch(0, [3], 0)
    with pytest.raises(ValueError, match="nominal_gpu='a100'"):
        ReferenceEngine(network, weights, nominal_gpu='a100')


def test_cost_table_uses_nominal_tb_ratios_and_cpu_costs(network, weights):
    table = ReferenceEngine(network, weights, nominal_gpu='h100').cost_table()
    nominal = estimate(network, 'h100')
    assert set(table.entries) == {layer.name for layer in network.kernel_layers}
    for index, layer in enumerate(network.kernel_layers):
        costs = [table.cost_ns(index, batch) for batch in range(1, 65)]
        assert costs[0] > 0 and all(a <= b for a, b in zip(costs, costs[1:])), layer.name
        assert [table.tb_ratio(index, b) for b in range(1, 65)] == [nominal.tb_ratio(index, b)
                                                                    for b in range(1, 65)]
    assert table.frame_cost_ns > 0
