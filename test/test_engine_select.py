"""engine: auto | cuda | reference, with the reason logged; made deterministic by hiding pycuda."""
import re

from gpu_helpers import hide_pycuda
from process_helpers import REPO_ROOT
import pytest
from s3dnn_ros.engine.base import EngineError
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
    with pytest.raises(ValueError, match=r"engine='tpu': allowed auto, cuda, reference"):
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
