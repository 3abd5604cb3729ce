"""engine: auto | cuda | reference, with the reason logged; made deterministic by hiding pycuda."""
import builtins

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
    real_import = builtins.__import__

    def without_pycuda(name, *args, **kwargs):
        if name == 'pycuda' or name.startswith('pycuda.'):
            raise ImportError(f'No module named {name!r}')
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', without_pycuda)


def test_auto_falls_back_to_the_reference_engine_and_says_why(model, no_pycuda):
    engine, why = make_engine('auto', *model)
    assert engine.name == 'reference' and engine.device_name == 'cpu'
    assert why.startswith('reference engine (numpy on the CPU): auto found no usable GPU') and 'pycuda' in why


def test_cuda_without_a_gpu_is_an_engine_error_naming_the_setting(model, no_pycuda):
    with pytest.raises(EngineError, match=r'^engine=cuda: .*pycuda'):
        make_engine('cuda', *model)


def test_reference_and_unknown_kinds(model):
    engine, why = make_engine('reference', *model)
    assert engine.name == 'reference' and 'as configured' in why
    with pytest.raises(ValueError, match=r"engine='tpu': allowed auto, cuda, reference"):
        make_engine('tpu', *model)
