"""
engine: auto | cuda | reference | timed, with the reason logged.

Made deterministic by hiding pycuda.
"""
import re
import time
import weakref

from gpu_helpers import hide_pycuda
import numpy as np
from process_helpers import REPO_ROOT
import pytest
from s3dnn_ros.engine.base import EngineError
from s3dnn_ros.engine.costs import CostTableError, estimate
from s3dnn_ros.engine.select import make_engine
from s3dnn_ros.model import alexnet, init_weights


@pytest.fixture(scope='module')
def model():
    network = alexnet()
    return network, init_weights(network)


@pytest.fixture
def no_pycuda(monkeypatch):
    hide_pycuda(monkeypatch)


def test_auto_falls_back_to_the_reference_engine_and_says_why(model, no_pycuda):
    engine, why = make_engine('auto', *model)
    assert engine.name == 'reference' and engine.device_name == 'cpu'
    assert why.startswith('reference engine (numpy on the CPU): auto found no usable GPU') \
        and 'pycuda' in why


def test_cuda_without_a_gpu_is_an_engine_error_naming_the_setting(model, no_pycuda):
    with pytest.raises(EngineError, match=r'^engine=cuda: .*pycuda'):
        make_engine('cuda', *model)


def test_reference_and_unknown_kinds(model):
    engine, why = make_engine('reference', *model)
    assert engine.name == 'reference' and 'as configured' in why
    with pytest.raises(ValueError,
                       match=r"engine='tpu': allowed auto, cuda, reference, timed"):
        make_engine('tpu', *model)


def test_the_cuda_module_imports_without_pycuda_and_the_engine_names_it(model, no_pycuda):
    from s3dnn_ros.engine import cuda
    with pytest.raises(EngineError, match='pycuda'):
        cuda.CudaEngine(*model)
    # the argument structs mirror the kernels' (static_assert sizes in kernels/*.cu)
    sizes = {}
    for source in (REPO_ROOT / 'kernels').glob('*.cu'):
        sizes.update((name, int(size)) for name, size in re.findall(
            r'static_assert\(sizeof\((\w+)Args\) == (\d+)', source.read_text()))
    assert sizes == {'Preprocess': cuda.PREPROCESS_ARGS.itemsize, 'Conv': cuda.CONV_ARGS.itemsize,
                     'Pool': cuda.POOL_ARGS.itemsize, 'Linear': cuda.LINEAR_ARGS.itemsize,
                     'Softmax': cuda.SOFTMAX_ARGS.itemsize}
    # one pointer per frame slot, inputs first
    assert cuda.LINEAR_ARGS.fields['in'][1] == 0
    assert cuda.LINEAR_ARGS.fields['out'][1] == 8 * cuda.MAX_FRAMES
    assert re.search(rf'#define S3DNN_MAX_FRAMES {cuda.MAX_FRAMES}\b',
                     (REPO_ROOT / 'kernels' / 'common.cuh').read_text())


@pytest.fixture
def t4_table(tmp_path, model):
    """Return a cost table file (the T4 estimate) and the table."""
    table = estimate(model[0], 't4')
    path = tmp_path / 'costs.json'
    table.save(path)
    return str(path), table


def test_timed_needs_a_cost_table_that_exists(model, tmp_path):
    with pytest.raises(EngineError, match=r'^engine=timed .*cost table: give one \(cost_table\)'):
        make_engine('timed', *model)
    with pytest.raises(CostTableError, match='does not exist'):
        make_engine('timed', *model, cost_table_path=str(tmp_path / 'missing.json'))


def test_timed_launches_take_the_tables_time_one_after_another(model, t4_table):
    path, table = t4_table
    engine, why = make_engine('timed', *model, cost_table_path=path)
    assert engine.name == 'timed' and engine.device_name == f'timed ({table.gpu})'
    assert why.startswith('timed engine: no GPU') and path in why
    assert engine.cost_table().to_json() == table.to_json()
    for pid in ('a', 'b'):
        engine.open_pipeline(pid)
    with pytest.raises(ValueError, match="pipeline 'a' has no staged input"):
        engine.launch(0, ['a'], 0)
    with pytest.raises(ValueError, match=r'rgb8 image must be H x W x 3 uint8, got \(48, 64\)'):
        engine.set_input('a', np.zeros((48, 64), np.uint8), 'rgb8')
    image = np.zeros((48, 64, 3), np.uint8)
    engine.set_inputs([('a', image, 'rgb8'), ('b', image, 'rgb8')])
    issued = time.monotonic_ns()
    first = engine.launch_layers(0, 3, ['a', 'b'], 0)
    second = engine.launch(3, ['a'], 5)  # another stream: still after the first
    start, end = first.interval()
    assert start >= issued
    assert end - start == sum(table.cost_ns(i, 2) for i in range(3))
    assert second.interval() == (end, end + table.cost_ns(3, 1))
    assert engine.kernel_launches == 4
    second.wait()
    assert first.done() and second.done() and time.monotonic_ns() >= second.interval()[1]
    result = engine.result('a')
    assert result.shape == (2, engine.layers[-1].k) and not result.any()
    with pytest.raises(ValueError, match="pipeline 'c' is not open"):
        engine.launch(1, ['c'], 0)


def test_timed_counts_a_kernel_per_largest_batch_of_the_table(model, t4_table):
    path, table = t4_table
    engine, _ = make_engine('timed', *model, cost_table_path=path)
    largest = table.kernel_batch(1)
    pids = list(range(largest + 1))
    for pid in pids:
        engine.open_pipeline(pid)
    engine.launch(1, pids, 0)  # one frame past the largest batch: two kernels, as the CUDA engine
    assert engine.kernel_launches == 2


def test_timed_close_lets_go_of_the_images_it_checked(model, t4_table):
    # the images are views of frame slots: a worker unmaps their segment once the engine is closed
    engine, _ = make_engine('timed', *model, cost_table_path=t4_table[0])
    engine.open_pipeline('a')
    image = np.zeros((48, 64, 3), np.uint8)
    engine.set_input('a', image, 'rgb8')
    held = weakref.ref(image)
    del image
    assert held() is not None  # kept, so that the same view is not checked again
    engine.close()
    assert held() is None
