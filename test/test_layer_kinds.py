"""
Every layer kind the model defines runs everywhere: numpy reference, CUDA plans, estimate.

A kind is added in four places (its spec in ``model/layers.py``, its op in
``reference.LAYER_OPS``, its kernel in ``cuda/plans.LAUNCH_RECORDS`` and, with parameters,
``PARAM_LAYOUTS``, its nominal geometry in ``costs.NOMINAL_GEOMETRY``); these tests fail when one
is missing or names a kind the model does not have.
"""
from s3dnn_ros.engine.costs import NOMINAL_GEOMETRY
from s3dnn_ros.engine.cuda.plans import LAUNCH_RECORDS, PARAM_LAYOUTS
from s3dnn_ros.engine.reference import LAYER_OPS
from s3dnn_ros.model import alexnet
from s3dnn_ros.model.layers import Layer


def layer_classes() -> list[type[Layer]]:
    found, pending = [], [Layer]
    while pending:
        for sub in pending.pop().__subclasses__():
            found.append(sub)
            pending.append(sub)
    return found


CLASSES = layer_classes()
KINDS = {cls.kind for cls in CLASSES}
KERNEL_KINDS = {cls.kind for cls in CLASSES if not cls.is_view}
#: kinds whose layers have parameters (their class says which)
PARAMETER_KINDS = {cls.kind for cls in CLASSES if cls.param_shapes is not Layer.param_shapes}


def test_the_model_defines_each_kind_once():
    assert len(KINDS) == len(CLASSES)
    assert {'preprocess', 'conv', 'maxpool', 'avgpool', 'flatten', 'linear', 'softmax'} <= KINDS


def test_every_kind_but_preprocess_has_a_reference_op():
    assert set(LAYER_OPS) == KINDS - {'preprocess'}


def test_every_kernel_kind_has_a_cuda_launch_and_a_nominal_geometry():
    assert set(LAUNCH_RECORDS) == KERNEL_KINDS
    assert set(NOMINAL_GEOMETRY) == KERNEL_KINDS


def test_every_kind_with_parameters_has_a_cuda_layout():
    assert set(PARAM_LAYOUTS) == PARAMETER_KINDS
    assert PARAMETER_KINDS == {layer.kind for layer in alexnet().layers if layer.param_shapes}
