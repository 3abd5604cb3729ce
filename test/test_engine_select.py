"""engine: auto | cuda | reference, with the reason logged; made deterministic by hiding pycuda."""
from gpu_helpers import hide_pycuda
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
    assert cuda.PREPROCESS_ARGS.itemsize == 544 and cuda.CONV_ARGS.itemsize == 328
    assert cuda.LINEAR_ARGS.fields['in'][1] == 0
