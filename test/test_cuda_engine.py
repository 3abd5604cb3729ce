"""
The CUDA engine against the numpy reference and torchvision, on a GPU.

Skipped as a whole (with the reason) without pycuda or a CUDA device. Inputs are fresh random data
on every run (the seed is printed, so a failure can be replayed); errors are ‖out − ref‖ / ‖ref‖.
"""
import itertools
import statistics
import threading
import time

from gpu_helpers import require_cuda_device
import numpy as np
import pytest
from s3dnn_ros.engine import reference
from s3dnn_ros.engine.base import EngineError
from s3dnn_ros.engine.costs import CostTable, estimate
from s3dnn_ros.engine.cuda import compiled_kernels, CONV_TILES, CudaEngine, MAX_FRAMES
from s3dnn_ros.engine.select import make_engine
from s3dnn_ros.model import alexnet, init_weights
from s3dnn_ros.model.alexnet import Network
from s3dnn_ros.model.layers import (AdaptiveAvgPool2d, Conv2d, Flatten, Linear, MaxPool2d,
                                    Preprocess, SoftmaxTopK)
from s3dnn_ros.model.weights import load_torch_state_dict

require_cuda_device()

pytestmark = pytest.mark.gpu

LAYER_TOLERANCE = 1e-4
TORCH_TOLERANCE = 1e-3
#: two classes whose torch logits differ by less than this (relative to the largest logit) are a
#: tie: their order is below float32 rounding (untrained random weights give nearly uniform logits)
TIE_TOLERANCE = 1e-5
ENCODING_CHANNELS = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1}
_pids = itertools.count(1000)


def rel_error(out, ref):
    return float(np.linalg.norm(np.asarray(out, np.float64) - ref) / np.linalg.norm(ref))


@pytest.fixture
def rng():
    seed = np.random.SeedSequence().entropy
    print(f'random seed {seed}')
    return np.random.default_rng(seed)


@pytest.fixture(scope='module')
def network():
    return alexnet()


@pytest.fixture(scope='module')
def weights(network):
    return init_weights(network, seed=7)


@pytest.fixture(scope='module')
def engine(network, weights):
    engine = CudaEngine(network, weights)
    yield engine
    engine.close()


class Pipelines:
    """``n`` open pipelines of ``engine``, closed on exit."""

    def __init__(self, engine, n):
        self.engine = engine
        self.pids = [next(_pids) for _ in range(n)]

    def __enter__(self):
        for pid in self.pids:
            self.engine.open_pipeline(pid)
        return self.pids

    def __exit__(self, *exc):
        for pid in self.pids:
            self.engine.close_pipeline(pid)


def random_image(rng, height, width, encoding):
    return rng.integers(0, 256, (height, width, ENCODING_CHANNELS[encoding]), dtype=np.uint8)


def random_images(rng, n):
    sizes = [(480, 640), (100, 150), (224, 224), (37, 1001), (720, 1280), (300, 200)]
    encodings = list(ENCODING_CHANNELS)
    return [(random_image(rng, *sizes[i % len(sizes)], encodings[i % len(encodings)]),
             encodings[i % len(encodings)]) for i in range(n)]


def run_network(engine, pids, images, last=None, stream=0):
    """Stage ``images`` and run kernel layers 0..last (default all) fused over ``pids``."""
    for pid, (image, encoding) in zip(pids, images):
        engine.set_input(pid, image, encoding)
    last = len(engine.layers) - 1 if last is None else last
    for index in range(last + 1):
        completion = engine.launch(index, pids, stream)
    completion.wait()


# ---- preprocessing ------------------------------------------------------------------------------

@pytest.mark.parametrize('height,width,encoding',
                         [(480, 640, 'rgb8'), (100, 150, 'bgra8'), (37, 1001, 'mono8'),
                          (224, 224, 'bgr8'), (1080, 1920, 'rgba8'), (1, 1, 'rgb8')])
def test_preprocess_matches_reference(engine, rng, height, width, encoding):
    image = random_image(rng, height, width, encoding)
    with Pipelines(engine, 1) as (pid,):
        engine.set_input(pid, image, encoding)
        engine.launch(0, [pid], 0).wait()
        out = engine.layer_output(pid, 0)
    assert rel_error(out, reference.preprocess(image, encoding)) <= LAYER_TOLERANCE


def test_preprocess_padded_rows_and_views(engine, rng):
    """
    Row steps larger than the row (kept as the kernel's step) and non-contiguous views.

    The views are packed.
    """
    padded = rng.integers(0, 256, (240, 1000), dtype=np.uint8)[:, :320 * 3].reshape(240, 320, 3)
    flipped = random_image(rng, 120, 90, 'bgr8')[::-1, ::-1]
    channel_view = random_image(rng, 64, 48, 'rgba8')[:, :, :1]
    cases = [(padded, 'rgb8'), (flipped, 'bgr8'), (channel_view, 'mono8')]
    with Pipelines(engine, len(cases)) as pids:
        for pid, (image, encoding) in zip(pids, cases):
            engine.set_input(pid, image, encoding)
        engine.launch(0, pids, 0).wait()
        for pid, (image, encoding) in zip(pids, cases):
            assert rel_error(engine.layer_output(pid, 0),
                             reference.preprocess(image, encoding)) <= LAYER_TOLERANCE


def test_set_inputs_stages_like_set_input(engine, rng):
    """
    A fused launch's images staged together (copied on several threads).

    They give the same preprocessing output as staging them one by one; padded rows included.
    """
    images = random_images(rng, 6)
    padded = np.zeros((48, 80, 3), np.uint8)
    padded[:, :64] = random_image(rng, 48, 64, 'rgb8')
    images.append((padded[:, :64], 'rgb8'))  # rows 240 bytes apart, 192 used
    with Pipelines(engine, len(images)) as together, Pipelines(engine, len(images)) as one_by_one:
        engine.set_inputs([(pid, image, encoding)
                           for pid, (image, encoding) in zip(together, images)])
        for pid, (image, encoding) in zip(one_by_one, images):
            engine.set_input(pid, image, encoding)
        engine.launch(0, together + one_by_one, 0).wait()
        for a, b, (image, encoding) in zip(together, one_by_one, images):
            out = engine.layer_output(a, 0)
            np.testing.assert_array_equal(out, engine.layer_output(b, 0))
            assert rel_error(out, reference.preprocess(image, encoding)) <= LAYER_TOLERANCE
        with pytest.raises(ValueError, match='repeat a pid'):
            engine.set_inputs([(together[0], images[0][0], images[0][1])] * 2)


def test_preprocess_fused_mixed_sizes(engine, rng):
    images = random_images(rng, 7)
    with Pipelines(engine, len(images)) as pids:
        for pid, (image, encoding) in zip(pids, images):
            engine.set_input(pid, image, encoding)
        engine.launch(0, pids, 3).wait()
        for pid, (image, encoding) in zip(pids, images):
            assert rel_error(engine.layer_output(pid, 0),
                             reference.preprocess(image, encoding)) <= LAYER_TOLERANCE


# ---- every kernel layer against the reference ---------------------------------------------------

def layer_cases():
    layers = alexnet().kernel_layers
    for index, layer in enumerate(layers):
        if index == 0:
            continue
        # linear: every variant, and past 16 frames the tiled kernel's second frame group
        batches = (1, 2, 3, 4, 5, 8, 9, 16, 17, 32) if layer.kind == 'linear' else (1, 3, 16, 32)
        for batch in batches:
            yield pytest.param(index, batch, id=f'{layer.name}-b{batch}')


def check_layer(engine, weights, rng, index, batch):
    layer = engine.layers[index]
    x = rng.standard_normal((batch, *engine.layers[index - 1].out_shape)).astype(np.float32)
    if layer.kind == 'softmax':
        x *= 4
    expected = reference.run_layer(layer, x,
                                   reference.layer_params(engine.network, weights, layer))
    with Pipelines(engine, batch) as pids:
        for pid, frame in zip(pids, x):
            engine.set_layer_output(pid, index - 1, frame)
        engine.launch(index, pids, index).wait()
        if layer.kind == 'softmax':
            out = np.stack([engine.result(pid).copy() for pid in pids])
            assert rel_error(out[:, 0], expected[:, 0]) <= LAYER_TOLERANCE
            np.testing.assert_array_equal(out[:, 1], expected[:, 1])
        else:
            out = np.stack([engine.layer_output(pid, index) for pid in pids])
            error = rel_error(out, expected.reshape(out.shape))
            assert error <= LAYER_TOLERANCE, \
                f'{layer.name} batch {batch}: relative error {error:.2e}'


@pytest.mark.parametrize('index,batch', list(layer_cases()))
def test_layer_matches_reference(engine, weights, rng, index, batch):
    check_layer(engine, weights, rng, index, batch)


@pytest.mark.parametrize('tile', list(CONV_TILES), ids=lambda tile: f'{tile[0]}x{tile[1]}')
def test_every_conv_tile_matches_reference(engine, weights, rng, tile):
    engine.conv_tile = tile
    try:
        for index, layer in enumerate(engine.layers):
            if layer.kind == 'conv':
                for batch in (1, 2):
                    check_layer(engine, weights, rng, index, batch)
    finally:
        engine.conv_tile = None


def test_pre_sm80_code_path_matches_reference(network, weights, rng):
    """
    The kernels as a pre-sm_80 GPU (the seed's T4, sm_75) runs them.

    PTX for compute_75, loads without cp.async, JIT-compiled for this GPU. Every conv tile, then
    every layer of a fused network run.
    """
    assert b'cp.async' in compiled_kernels('compute_80')['conv2d.cu']
    assert b'cp.async' not in compiled_kernels('compute_75')['conv2d.cu']
    engine = CudaEngine(network, weights, streams=1, kernel_arch='compute_75')
    try:
        for tile in CONV_TILES:
            engine.conv_tile = tile
            for index, layer in enumerate(engine.layers):
                if layer.kind == 'conv':
                    check_layer(engine, weights, rng, index, 2)
        engine.conv_tile = None
        images = random_images(rng, 3)
        with Pipelines(engine, len(images)) as pids:
            run_network(engine, pids, images, last=len(engine.layers) - 2)
            x = reference.preprocess_batch(images)
            for index, layer in enumerate(network.kernel_layers[1:-1], start=1):
                x = reference.run_layer(layer, x, reference.layer_params(network, weights, layer))
                out = np.stack([engine.layer_output(pid, index) for pid in pids])
                assert rel_error(out, x.reshape(out.shape)) <= LAYER_TOLERANCE, layer.name
    finally:
        engine.close()


def test_softmax_ties_keep_lower_id_first(engine, rng):
    layer_index = len(engine.layers) - 1
    k = engine.layers[-1].k
    logits = rng.standard_normal(engine.layers[-1].in_shape).astype(np.float32)
    logits[[700, 3, 41]] = logits.max() + 1  # three equal winners, not in id order
    with Pipelines(engine, 1) as (pid,):
        engine.set_layer_output(pid, layer_index - 1, logits)
        engine.launch(layer_index, [pid], 0).wait()
        out = engine.result(pid).copy()
    expected = reference.softmax_topk(logits[None], k)[0]
    np.testing.assert_array_equal(out[1, :3], [3, 41, 700])
    np.testing.assert_array_equal(out[1], expected[1])
    assert out[0, 0] == out[0, 1] == out[0, 2]


def test_small_network_matches_reference(rng):
    """
    Shapes AlexNet does not have.

    16 output channels, adaptive pooling 27 -> 5 with overlapping bins, a 400 -> 10 linear layer,
    top 3.
    """
    layers = (Preprocess('preprocess', (120, 160, 3), (3, 224, 224)),
              Conv2d('conv', (3, 224, 224), (16, 55, 55), kernel=11, stride=4, padding=2),
              MaxPool2d('pool', (16, 55, 55), (16, 27, 27), kernel=3, stride=2),
              AdaptiveAvgPool2d('avgpool', (16, 27, 27), (16, 5, 5)),
              Flatten('flatten', (16, 5, 5), (400,)),
              Linear('fc', (400,), (10,)),
              SoftmaxTopK('softmax', (10,), (2, 3), k=3))
    network = Network('small', layers, {'conv': 'features.0', 'fc': 'classifier.0'})
    weights = init_weights(network, seed=int(rng.integers(1000)))
    images = random_images(rng, 3)
    engine = CudaEngine(network, weights, streams=1)
    try:
        with Pipelines(engine, len(images)) as pids:
            run_network(engine, pids, images)
            x = reference.preprocess_batch(images)
            for index, layer in enumerate(network.kernel_layers[1:-1], start=1):
                x = reference.run_layer(layer, x, reference.layer_params(network, weights, layer))
                out = np.stack([engine.layer_output(pid, index) for pid in pids])
                assert rel_error(out, x.reshape(out.shape)) <= LAYER_TOLERANCE, layer.name
            out = np.stack([engine.result(pid).copy() for pid in pids])
    finally:
        engine.close()
    expected = reference.forward(network, weights, images)
    assert rel_error(out[:, 0], expected[:, 0]) <= LAYER_TOLERANCE
    np.testing.assert_array_equal(out[:, 1], expected[:, 1])


# ---- fusion -------------------------------------------------------------------------------------

@pytest.mark.parametrize('k', [2, 5, 16, 32])
def test_fused_launches_equal_unfused(engine, rng, k):
    images = random_images(rng, k)
    logits_index = len(engine.layers) - 2
    with Pipelines(engine, k) as pids:
        run_network(engine, pids, images)
        fused = [(engine.result(pid).copy(), engine.layer_output(pid, logits_index))
                 for pid in pids]
        for stream, (pid, image) in enumerate(zip(pids, images)):
            run_network(engine, [pid], [image], stream=stream)
            result, logits = engine.result(pid).copy(), engine.layer_output(pid, logits_index)
            np.testing.assert_allclose(logits, fused[stream][1], rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(result[0], fused[stream][0][0], rtol=1e-6)
            np.testing.assert_array_equal(result[1], fused[stream][0][1])


@pytest.mark.parametrize('streams', [16, 1])
def test_launch_larger_than_max_batch_is_split(network, weights, rng, streams):
    """
    10 frames at max_batch 4: kernels of 4, 4 and 2 frames, side by side on two side streams.

    The side streams are forked from and joined into the launch's stream (one after another on a
    one-stream engine). Every layer is issued back to back with no host wait, so a missing fork or
    join reads activations not yet written: with the same frames in the same kernels and with
    frames changing kernels every layer. The side streams and their events are made once.
    """
    images = random_images(rng, 10)
    expected = reference.forward(network, weights, images)
    engine = CudaEngine(network, weights, streams=streams, max_batch=4)
    try:
        with Pipelines(engine, len(images)) as pids:
            run_network(engine, pids, images, stream=3)
            out = np.stack([engine.result(pid).copy() for pid in pids])
            before = engine.allocations
            run_network(engine, pids, images, stream=3)
            again = np.stack([engine.result(pid).copy() for pid in pids])
            assert engine.allocations == before
            # frames change kernels from layer to layer
            for pid, (image, encoding) in zip(pids, images):
                engine.set_input(pid, image, encoding)
            for index in range(len(engine.layers)):
                completion = engine.launch(index, pids if index % 2 == 0 else pids[::-1], 3)
            completion.wait()
            shuffled = np.stack([engine.result(pid).copy() for pid in pids])
    finally:
        engine.close()
    assert rel_error(out[:, 0], expected[:, 0]) <= LAYER_TOLERANCE
    np.testing.assert_array_equal(out[:, 1], expected[:, 1])
    np.testing.assert_array_equal(again, out)
    np.testing.assert_array_equal(shuffled, out)


@pytest.mark.parametrize('streams', [16, 1])
def test_segments_equal_launches_one_layer_at_a_time(network, weights, rng, streams):
    """
    10 frames at max_batch 4 through the network in three segments of layers (launch_layers).

    Each kernel's layers run back to back on its own side stream inside one fork/join: a missing
    join, or a side stream not waiting for the fork, reads activations not yet written. The
    results equal the layer-by-layer launches' and the reference's; a segment makes no
    allocation once the side streams exist.
    """
    images = random_images(rng, 10)
    expected = reference.forward(network, weights, images)
    engine = CudaEngine(network, weights, streams=streams, max_batch=4)
    layers = len(engine.layers)
    try:
        with Pipelines(engine, len(images)) as pids:
            run_network(engine, pids, images, stream=3)
            by_layer = np.stack([engine.result(pid).copy() for pid in pids])
            by_segment = []
            for _ in range(2):
                for pid, (image, encoding) in zip(pids, images):
                    engine.set_input(pid, image, encoding)
                before = engine.allocations
                engine.launch_layers(0, 4, pids, 3)
                engine.launch_layers(4, layers - 5, pids, 3)
                engine.launch_layers(layers - 1, 1, pids, 3).wait()
                by_segment.append(np.stack([engine.result(pid).copy() for pid in pids]))
            # the second time (segments as graphs: made the first time)
            assert engine.allocations == before
            np.testing.assert_array_equal(by_segment[1], by_segment[0])
            by_segment = by_segment[0]
            with pytest.raises(ValueError, match='launch of 2 layers from layer 13'):
                engine.launch_layers(layers - 1, 2, pids, 3)
    finally:
        engine.close()
    np.testing.assert_array_equal(by_segment, by_layer)
    assert rel_error(by_segment[:, 0], expected[:, 0]) <= LAYER_TOLERANCE
    np.testing.assert_array_equal(by_segment[:, 1], expected[:, 1])


def test_segment_as_a_graph_equals_it_kernel_by_kernel(network, weights, rng):
    """
    Segments as CUDA graphs give the bits of the same segments launched kernel by kernel.

    Whole chains and a chain cut in two (from layer 0, with the images' metas, and from a later
    layer); then other frames through the same graphs (their records rewritten), two chains of one
    size in flight at once (a second instance of that graph), and frames past max_batch (a graph
    per kernel of the split). Nothing is refused; a second pass, over other pipelines, makes no
    graph.
    """
    layers = len(network.kernel_layers)
    images = random_images(rng, 12)
    others = random_images(rng, 12)

    def run(engine) -> tuple[list[np.ndarray], bool]:
        out, overlapped = [], True
        with Pipelines(engine, 12) as pids:
            for pid, (image, encoding) in zip(pids, images):
                engine.set_input(pid, image, encoding)
            first = engine.launch_layers(0, layers, pids[:5], 0)
            engine.launch_layers(0, 4, pids[5:], 1)
            engine.launch_layers(4, layers - 4, pids[5:], 1).wait()
            first.wait()
            out.append(np.stack([engine.result(pid).copy() for pid in pids]))
            for _ in range(2):
                for pid, (image, encoding) in zip(pids, others):
                    engine.set_input(pid, image, encoding)
                ones = engine.launch_layers(0, layers, pids[7:], 2)
                fives = engine.launch_layers(0, layers, pids[:5], 3)
                # (whether the first was still in flight: then the second needed its own graph)
                overlapped &= not ones.done()
                engine.launch_layers(0, 4, pids[5:7], 0)
                engine.launch_layers(4, layers - 4, pids[5:7], 0).wait()
                ones.wait()
                fives.wait()
                out.append(np.stack([engine.result(pid).copy() for pid in pids]))
        return out, overlapped

    plain = CudaEngine(network, weights, streams=4, segment_graphs=False)
    try:
        assert plain.graph_counts is None
        expected, _ = run(plain)
    finally:
        plain.close()
    engine = CudaEngine(network, weights, streams=4)
    split = CudaEngine(network, weights, streams=4, max_batch=4)
    try:
        assert engine.graph_counts is not None, 'the driver has the graph calls (CUDA 12+)'
        got, overlapped = run(engine)
        counts = engine.graph_counts
        again, _ = run(engine)  # other pipelines (new buffers): the same graphs
        assert engine.graph_counts['made'] == counts['made']
        with Pipelines(split, 10) as pids:
            for pid, (image, encoding) in zip(pids, images):
                split.set_input(pid, image, encoding)
            split.launch_layers(0, layers, pids, 1).wait()
            past_max_batch = np.stack([split.result(pid).copy() for pid in pids])
        split_counts = split.graph_counts
    finally:
        engine.close()
        split.close()
    for mine, theirs in zip(got + again, expected + expected):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(past_max_batch, expected[0][:10])
    assert rel_error(expected[0][:, 0], reference.forward(network, weights, images)[:, 0]) \
        <= LAYER_TOLERANCE
    # graphs (first layer, layers, frames): (0, 14, 5), (0, 4, 7), (4, 10, 7); then (0, 14, 5)
    # reused and a second one while the first is in flight, (0, 4, 2), (4, 10, 2); launches:
    # 3 + 4 + 4 per pass
    assert counts['refused'] == 0 and counts['launches'] == 11
    assert counts['made'] == counts['live'] == (6 if overlapped else 5)
    # kernels of 4, 4 and 2 frames in one launch: the two of 4 frames each have their own graph
    assert split_counts == {'made': 3, 'live': 3, 'launches': 3, 'refused': 0}


@pytest.mark.parametrize('tile', CONV_TILES)
def test_every_kernel_read_by_reference_matches_by_value(network, weights, rng, tile):
    """
    Every kernel's NAME_ref entry point (a graph's) gives the bits of its by-value one.

    Whole-network segments with each conv tile forced, at batches that take every linear variant
    (streaming 1-4, tiled 8 and 16 slots, two frame groups past 16): the logits and the results
    of the same frames launched as graphs and kernel by kernel are equal.
    """
    layers = len(network.kernel_layers)
    logits = layers - 2
    batches = (1, 3, 4, 8, 16, 20, 32)
    images = random_images(rng, max(batches))
    outputs = []
    for graphs in (False, True):
        engine = CudaEngine(network, weights, streams=2, segment_graphs=graphs)
        engine.conv_tile = tile
        try:
            with Pipelines(engine, len(images)) as pids:
                out = []
                for batch in batches:
                    for pid, (image, encoding) in zip(pids, images):
                        engine.set_input(pid, image, encoding)
                    engine.launch_layers(0, layers, pids[:batch], 1).wait()
                    out.append([(engine.layer_output(pid, logits), engine.result(pid).copy())
                                for pid in pids[:batch]])
            assert (engine.graph_counts is not None) == graphs
        finally:
            engine.close()
        outputs.append(out)
    for plain, graphed in zip(*outputs):
        for (plain_logits, plain_result), (logits_, result) in zip(plain, graphed):
            np.testing.assert_array_equal(logits_, plain_logits)
            np.testing.assert_array_equal(result, plain_result)


def test_batched_and_separate_copies_give_the_same_results(network, weights, rng):
    """
    A kernel's uploads in one cuMemcpyBatchAsync, or one copy per frame.

    The driver call exists from CUDA 13 drivers on: the engine uses it exactly there. 10 frames at
    max_batch 4 (kernels of 4, 4 and 2 frames); then frames in page-locked slots and staged
    copies of the same images in one fused launch.
    """
    import pycuda.driver as drv
    images = random_images(rng, 10)
    separate_engine = CudaEngine(network, weights, max_batch=4, batched_copies=False)
    try:
        assert not separate_engine.batched_copies
        with Pipelines(separate_engine, len(images)) as pids:
            run_network(separate_engine, pids, images, stream=2)
            separate = np.stack([separate_engine.result(pid).copy() for pid in pids])
    finally:
        separate_engine.close()
    engine = CudaEngine(network, weights, max_batch=4)
    slot = 480 * 640 * 3
    slots = engine.pin(np.zeros(3 * slot, np.uint8))
    try:
        assert engine.batched_copies == (drv.get_driver_version() >= 13000)
        with Pipelines(engine, len(images)) as pids:
            run_network(engine, pids, images, stream=2)
            batched = np.stack([engine.result(pid).copy() for pid in pids])
            # results(): the same, in one copy of its own
            gathered = engine.results(pids[::-1])
            np.testing.assert_array_equal(gathered, batched[::-1])
            gathered[...] = -1
            np.testing.assert_array_equal(engine.result(pids[0]), batched[0])
            with pytest.raises(ValueError, match="pipeline 'closed' is not open"):
                engine.results([pids[0], 'closed'])
        views = [slots[i * slot:(i + 1) * slot].reshape(480, 640, 3) for i in range(3)]
        for view in views:
            view[...] = random_image(rng, 480, 640, 'rgb8')
        with Pipelines(engine, 6) as pids:
            run_network(engine, pids, [(view, 'rgb8') for view in views]
                        + [(view.copy(), 'rgb8') for view in views])
            in_slots = np.stack([engine.result(pid).copy() for pid in pids[:3]])
            staged = np.stack([engine.result(pid).copy() for pid in pids[3:]])
    finally:
        engine.unpin(slots)
        engine.close()
    np.testing.assert_array_equal(batched, separate)
    np.testing.assert_array_equal(in_slots, staged)
    np.testing.assert_array_equal(batched[:, 1], reference.forward(network, weights, images)[:, 1])


# ---- whole network against torchvision ----------------------------------------------------------

@pytest.fixture(scope='module')
def torch_setup(network, tmp_path_factory):
    torch = pytest.importorskip('torch')
    torchvision = pytest.importorskip('torchvision')
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    model = torchvision.models.alexnet(weights=None).eval()
    path = tmp_path_factory.mktemp('torch') / 'alexnet.pth'
    torch.save(model.state_dict(), path)
    weights = load_torch_state_dict(path, network)
    engine = CudaEngine(network, weights)
    yield torch, model.cuda(), engine
    engine.close()


@pytest.mark.parametrize('batch', [1, 16, 32])
def test_alexnet_matches_torchvision(torch_setup, rng, batch):
    torch, model, engine = torch_setup
    images = [(random_image(rng, 480, 640, 'rgb8'), 'rgb8') for _ in range(batch)]
    x = torch.from_numpy(reference.preprocess_batch(images)).cuda()
    with torch.no_grad():
        expected = model(x).double().cpu().numpy()
    logits_index = len(engine.layers) - 2
    with Pipelines(engine, batch) as pids:
        run_network(engine, pids, images)
        logits = np.stack([engine.layer_output(pid, logits_index) for pid in pids])
        top = np.stack([engine.result(pid)[1].copy() for pid in pids])
    error = rel_error(logits, expected)
    assert error <= TORCH_TOLERANCE, f'relative logit error {error:.2e}'
    assert_same_top5(np.argsort(-logits, axis=1, kind='stable')[:, :5], expected)
    assert_same_top5(top.astype(np.int64), expected)


def assert_same_top5(ids, expected_logits):
    """
    Assert ``ids`` are torch's top 5 classes in order.

    Except that classes tied within TIE_TOLERANCE may swap.
    """
    expected_ids = np.argsort(-expected_logits, axis=1, kind='stable')[:, :5]
    picked = np.take_along_axis(expected_logits, ids, axis=1)
    best = np.take_along_axis(expected_logits, expected_ids, axis=1)
    tolerance = TIE_TOLERANCE * np.abs(expected_logits).max(axis=1, keepdims=True)
    assert (np.abs(picked - best) <= tolerance).all(), \
        f'top 5 {ids.tolist()} != {expected_ids.tolist()}'


# ---- threads, allocations, errors ---------------------------------------------------------------

def test_driven_from_another_thread(engine, weights, rng):
    images = random_images(rng, 3)
    expected = reference.forward(engine.network, weights, images)
    outcome = {}

    def work():
        try:
            with Pipelines(engine, len(images)) as pids:
                run_network(engine, pids, images, stream=5)
                outcome['result'] = np.stack([engine.result(pid).copy() for pid in pids])
        except Exception as error:  # reported on the main thread
            outcome['error'] = error

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    assert 'error' not in outcome, outcome.get('error')
    assert rel_error(outcome['result'][:, 0], expected[:, 0]) <= LAYER_TOLERANCE
    np.testing.assert_array_equal(outcome['result'][:, 1], expected[:, 1])
    # the thread ended with the context popped, and this thread still drives the engine
    with Pipelines(engine, 1) as pids:
        run_network(engine, pids, images[:1])
        np.testing.assert_array_equal(engine.result(pids[0])[1], expected[0, 1])


def test_engine_made_on_one_thread_used_on_another(network, weights, rng):
    made = {}
    thread = threading.Thread(
        target=lambda: made.setdefault('engine', CudaEngine(network, weights, streams=2)))
    thread.start()
    thread.join(120)
    engine = made['engine']
    try:
        images = random_images(rng, 2)
        with Pipelines(engine, 2) as pids:
            run_network(engine, pids, images)
            out = np.stack([engine.result(pid).copy() for pid in pids])
        np.testing.assert_array_equal(out[:, 1], reference.forward(network, weights, images)[:, 1])
    finally:
        engine.close()


def test_dispatcher_thread_drives_the_engine(engine, weights, rng):
    from s3dnn_ros.scheduler.dispatcher import Dispatcher, EngineBackend
    from s3dnn_ros.scheduler.policies import make_policy

    results, lock = {}, threading.Lock()

    def on_done(frame):
        with lock:
            results[(frame.pipeline.name, frame.meta)] = frame.result

    dispatcher = Dispatcher(make_policy('s3dnn', estimate(engine.network, 'h100')),
                            EngineBackend(engine), on_done=on_done)
    pipelines = [dispatcher.add_pipeline(f'cam{i}', deadline_ns=10**9, queue_depth=8)
                 for i in range(4)]
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,))
    thread.start()
    frames = {}
    try:
        for n in range(3):
            for pipeline in pipelines:
                image = random_images(rng, 1)[0]
                frames[(pipeline.name, n)] = image
                dispatcher.submit(pipeline, image[0], image[1], meta=n)
        deadline = time.monotonic() + 60
        while len(results) < len(frames) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        dispatcher.wake()
        thread.join(10)
        for pipeline in pipelines:
            engine.close_pipeline(pipeline.id)
    assert dispatcher.engine_errors == 0, dispatcher.last_error
    assert sorted(results) == sorted(frames)
    keys = sorted(frames)
    expected = reference.forward(engine.network, weights, [frames[key] for key in keys])
    out = np.stack([results[key] for key in keys])
    assert rel_error(out[:, 0], expected[:, 0]) <= LAYER_TOLERANCE
    np.testing.assert_array_equal(out[:, 1], expected[:, 1])


def test_steady_state_frames_allocate_nothing(engine, rng):
    images = random_images(rng, 3)
    with Pipelines(engine, len(images)) as pids:
        def frame(frame_images):
            for pid, (image, encoding) in zip(pids, frame_images):
                engine.set_input(pid, image, encoding)
            for index in range(len(engine.layers)):
                completion = engine.launch(index, pids, index % 2)
                while not completion.done():
                    pass
                completion.interval()
            return [engine.result(pid).copy() for pid in pids]

        frame(images)
        frame(images)
        before = engine.allocations
        for _ in range(10):
            frame([(random_image(rng, *image.shape[:2], encoding), encoding)
                   for image, encoding in images])
        assert engine.allocations == before
        bigger = [(random_image(rng, 1080, 1920, 'rgb8'), 'rgb8')] + images[1:]
        frame(bigger)
        assert engine.allocations == before + 2  # one pinned staging buffer and its device copy
        frame(images)
        assert engine.allocations == before + 2


def test_images_in_pinned_caller_memory_are_uploaded_where_they_lie(engine, rng):
    """
    A frame slot the caller page-locked with pin(): the engine uploads straight from it.

    No staging buffer is allocated, only the device copy, and it computes what it computes from a
    staged copy.
    """
    slots = engine.pin(np.zeros(3 * 4096 * 240, np.uint8))
    image = random_image(rng, 480, 640, 'bgr8')
    in_slot = slots[4096 * 240:4096 * 240 + image.nbytes].reshape(image.shape)
    in_slot[...] = image
    try:
        with Pipelines(engine, 2) as (pinned, staged):
            before = engine.allocations
            run_network(engine, [pinned], [(in_slot, 'bgr8')])
            # the device copy of the image, no pinned staging buffer
            assert engine.allocations == before + 1
            run_network(engine, [staged], [(image, 'bgr8')])
            assert engine.allocations == before + 3  # a staging buffer and a device copy
            np.testing.assert_array_equal(engine.result(pinned), engine.result(staged))
            following = random_image(rng, 480, 640, 'bgr8')
            in_slot[...] = following  # the next frame in the same slot
            run_network(engine, [pinned], [(in_slot, 'bgr8')])
            run_network(engine, [staged], [(following, 'bgr8')])
            np.testing.assert_array_equal(engine.result(pinned), engine.result(staged))
            assert engine.allocations == before + 3
    finally:
        engine.unpin(slots)


def test_images_uploaded_ahead_give_what_an_upload_at_the_launch_gives(engine, rng):
    """
    upload(): the staged images go to the device on the copy stream before their layer 0.

    Their layer-0 launch waits for that copy instead of making it: the results equal those of
    pipelines whose launch copies (a page-locked slot and a staged copy; layer 0 on another stream
    than the upload). An image staged again after its upload (and not uploaded) is the one
    computed; a second layer-0 launch of the same staged image copies it itself again. The
    upload's completion lies on the host clock.
    """
    slots = engine.pin(np.zeros(2 * 4096 * 240, np.uint8))
    images = [random_image(rng, 480, 640, 'rgb8') for _ in range(2)]
    in_slot = slots[:images[0].nbytes].reshape(images[0].shape)
    in_slot[...] = images[0]
    try:
        with Pipelines(engine, 4) as (slot_ahead, copy_ahead, slot_inline, copy_inline):
            ahead = [slot_ahead, copy_ahead]
            staged = [(in_slot, 'rgb8'), (images[1], 'rgb8')]
            for pid, (image, encoding) in zip(ahead, staged):
                engine.set_input(pid, image, encoding)
            before = time.monotonic_ns()
            upload = engine.upload(ahead)
            for index in range(len(engine.layers)):
                completion = engine.launch(index, ahead, 3)
            completion.wait()
            upload.wait()
            assert before - 1_000_000 <= upload.interval()[0] <= upload.interval()[1] \
                <= time.monotonic_ns() + 1_000_000
            run_network(engine, [slot_inline, copy_inline], staged, stream=1)
            expected = [engine.result(pid).copy() for pid in (slot_inline, copy_inline)]
            np.testing.assert_array_equal([engine.result(pid) for pid in ahead], expected)

            # uploaded, then staged again: the launch computes the later image
            engine.set_input(copy_ahead, images[0], 'rgb8')
            engine.upload([copy_ahead])
            engine.set_input(copy_ahead, images[1], 'rgb8')
            run_network(engine, [copy_ahead], [(images[1], 'rgb8')], stream=2)
            np.testing.assert_array_equal(engine.result(copy_ahead), expected[1])

            # the launch after the one that took the copy ahead copies again
            engine.set_input(slot_ahead, in_slot, 'rgb8')
            engine.upload([slot_ahead])
            engine.launch(0, [slot_ahead], 0)
            in_slot[...] = images[1]
            for index in range(len(engine.layers)):
                completion = engine.launch(index, [slot_ahead], 0)
            completion.wait()
            np.testing.assert_array_equal(engine.result(slot_ahead), expected[1])

            assert engine.upload([]) is None
            with Pipelines(engine, 1) as (empty,):
                with pytest.raises(ValueError, match='no staged input'):
                    engine.upload([empty])
    finally:
        engine.unpin(slots)


def test_bad_device_id_raises_engine_error(network, weights):
    import pycuda.driver as drv

    with pytest.raises(EngineError, match='device'):
        make_engine('cuda', network, weights, device_id=drv.Device.count() + 3)


def test_failed_launch_raises_engine_error(engine, rng):
    with Pipelines(engine, 1) as pids:
        engine.set_layer_output(pids[0], 1,
                                rng.standard_normal(engine.layers[1].out_shape).astype(np.float32))
        plan = engine._plan(2, 1)
        grid, plan.grid = plan.grid, (0, 1)  # an invalid launch configuration: refused, not sticky
        try:
            with pytest.raises(EngineError, match='pool1'):
                engine.launch(2, pids, 0)
        finally:
            plan.grid = grid
        engine.launch(2, pids, 0).wait()


def test_interval_is_on_the_host_clock(engine, rng):
    with Pipelines(engine, 2) as pids:
        before = time.monotonic_ns()
        run_network(engine, pids, random_images(rng, 2), last=3)
        completion = engine.launch(4, pids, 1)
        completion.wait()
        after = time.monotonic_ns()
        assert completion.done()
        start, end = completion.interval()
    assert before - 1_000_000 <= start <= end <= after + 1_000_000


# ---- costs --------------------------------------------------------------------------------------

def test_tb_ratio(engine):
    for index, layer in enumerate(engine.layers):
        ratios = [engine.tb_ratio(index, batch) for batch in range(1, MAX_FRAMES + 1)]
        assert all(0 < ratio < float('inf') for ratio in ratios), (layer.name, ratios)
        if layer.kind == 'conv':
            assert ratios[31] > ratios[3] and ratios[15] > ratios[3] > ratios[0], \
                (layer.name, ratios)
        # past the kernel limit, a launch is several kernels
        assert engine.tb_ratio(index, 2 * MAX_FRAMES) == pytest.approx(2 * ratios[-1])


def test_calibrate_returns_a_cost_table(engine, network):
    with pytest.raises(ValueError, match='need batch sizes >= 1'):
        engine.calibrate(batches=())  # not the default batches
    table = engine.calibrate(batches=(1, 4, 16), repeats=5)
    assert isinstance(table, CostTable)
    assert table.source == 'measured' and table.gpu == engine.device_name and table.date
    again = CostTable.from_json(table.to_json(), network)
    for index in range(len(engine.layers)):
        assert again.cost_ns(index, 1) > 0
        assert again.tb_ratio(index, 16) == pytest.approx(engine.tb_ratio(index, 16), abs=1e-5)
    # the images' copies, measured apart: part of layer 0, more of them for more images
    assert sorted(again.copies) == [1, 4, 16]
    assert all(0 < again.copy_ns(b) < again.cost_ns(0, b) for b in (1, 4, 16))
    assert again.copy_ns(16) > 2 * again.copy_ns(1)


def test_time_side_by_side_gives_each_launch_its_begin_and_end(engine, rng):
    """
    Launches started together on their own streams: (begin, end) after the run's start, each.

    Two groups' copies share the way to the device: together they take longer than one alone.
    Beyond the engine's streams is refused, naming the count.
    """
    with Pipelines(engine, 8) as pids:
        images = [(random_image(rng, 480, 640, 'rgb8'), 'rgb8')] * 4
        run_network(engine, pids[:4], images, last=1)
        run_network(engine, pids[4:], images, last=1)
        for layer in (None, 1):
            runs = engine.time_side_by_side(layer, [pids[:4], pids[4:]], warmup=1, repeats=5)
            assert len(runs) == 5 and all(len(run) == 2 for run in runs)
            assert all(0 <= begin < end for run in runs for begin, end in run)
        alone = engine.time_side_by_side(None, [pids[:4]], warmup=1, repeats=5)
        together = engine.time_side_by_side(None, [pids[:4], pids[4:]], warmup=1, repeats=5)
        assert statistics.median(max(end for _, end in run) for run in together) \
            > 1.5 * statistics.median(run[0][1] for run in alone)
        with pytest.raises(ValueError, match=f'{engine.streams + 1} launches side by side'):
            engine.time_side_by_side(1, [pids[:1]] * (engine.streams + 1))


def test_cost_table_is_saved_and_reloaded(network, weights, tmp_path):
    path = tmp_path / 'costs.json'
    first = CudaEngine(network, weights, streams=1, cost_table_path=path)
    try:
        table = first.cost_table()
        assert first.cost_table() is table
    finally:
        first.close()
    assert path.is_file()
    saved = path.read_text()
    second = CudaEngine(network, weights, streams=1, cost_table_path=path)
    try:
        loaded = second.cost_table()
    finally:
        second.close()
    assert path.read_text() == saved
    assert loaded.gpu == table.gpu and loaded.source == 'measured'
    assert loaded.cost_ns(3, 16) == table.cost_ns(3, 16)
