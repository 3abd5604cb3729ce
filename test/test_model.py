"""AlexNet layer specs against torchvision's published architecture and figures."""
from math import prod

import pytest

from s3dnn_ros.model import alexnet, Network
from s3dnn_ros.model.layers import FLOAT_BYTES

#: torchvision.models.alexnet().state_dict(): names and shapes, in order
TORCHVISION_STATE_DICT_LAYOUT = [
    ('features.0.weight', (64, 3, 11, 11)),
    ('features.0.bias', (64,)),
    ('features.3.weight', (192, 64, 5, 5)),
    ('features.3.bias', (192,)),
    ('features.6.weight', (384, 192, 3, 3)),
    ('features.6.bias', (384,)),
    ('features.8.weight', (256, 384, 3, 3)),
    ('features.8.bias', (256,)),
    ('features.10.weight', (256, 256, 3, 3)),
    ('features.10.bias', (256,)),
    ('classifier.1.weight', (4096, 9216)),
    ('classifier.1.bias', (4096,)),
    ('classifier.4.weight', (4096, 4096)),
    ('classifier.4.bias', (4096,)),
    ('classifier.6.weight', (1000, 4096)),
    ('classifier.6.bias', (1000,)),
]
TORCHVISION_PARAMETERS = 61_100_840
TORCHVISION_MACS_224 = 714_188_480

#: per-frame output shape of every layer at 224x224, as in torchvision's forward pass
OUTPUT_SHAPES = {
    'preprocess': (3, 224, 224),
    'conv1': (64, 55, 55),
    'pool1': (64, 27, 27),
    'conv2': (192, 27, 27),
    'pool2': (192, 13, 13),
    'conv3': (384, 13, 13),
    'conv4': (256, 13, 13),
    'conv5': (256, 13, 13),
    'pool5': (256, 6, 6),
    'avgpool': (256, 6, 6),
    'flatten': (9216,),
    'fc6': (4096,),
    'fc7': (4096,),
    'fc8': (1000,),
    'softmax': (2, 5),
}
KERNEL_LAYER_NAMES = ['preprocess', 'conv1', 'pool1', 'conv2', 'pool2', 'conv3', 'conv4', 'conv5',
                      'pool5', 'avgpool', 'fc6', 'fc7', 'fc8', 'softmax']


@pytest.fixture(scope='module')
def network():
    return alexnet()


def test_parameter_count_matches_torchvision(network):
    assert network.num_params == TORCHVISION_PARAMETERS
    assert sum(prod(shape) for shape in network.param_shapes().values()) == TORCHVISION_PARAMETERS


def test_macs_at_224_match_torchvision(network):
    assert network.macs == TORCHVISION_MACS_224


def test_default_network_has_1000_classes_and_top5(network):
    assert network.num_classes == 1000
    assert network.top_k == 5


def test_state_dict_names_and_shapes_in_torchvision_order(network):
    assert list(network.param_shapes().items()) == TORCHVISION_STATE_DICT_LAYOUT


def test_layer_params_map_each_layer_to_its_torchvision_prefix(network):
    by_name = {layer.name: layer for layer in network.layers}
    expected_prefix = {'conv1': 'features.0', 'conv2': 'features.3', 'conv3': 'features.6',
                       'conv4': 'features.8', 'conv5': 'features.10', 'fc6': 'classifier.1',
                       'fc7': 'classifier.4',
                       'fc8': 'classifier.6'}
    for name, prefix in expected_prefix.items():
        assert network.layer_params(by_name[name]) == {'weight': f'{prefix}.weight',
                                                       'bias': f'{prefix}.bias'}
    for layer in network.layers:
        if layer.name not in expected_prefix:
            assert layer.param_shapes == {}
            assert layer.num_params == 0


def test_output_shapes_match_torchvision_forward(network):
    assert {layer.name: layer.out_shape for layer in network.layers} == OUTPUT_SHAPES


def test_each_layer_input_is_the_previous_layer_output(network):
    for before, after in zip(network.layers, network.layers[1:]):
        assert after.in_shape == before.out_shape, (before.name, after.name)


def test_preprocess_takes_the_nominal_camera_image(network):
    preprocess = network.layers[0]
    assert preprocess.in_shape == (480, 640, 3)
    assert preprocess.in_bytes == 480 * 640 * 3


def test_flatten_is_a_view_that_keeps_the_element_count(network):
    flatten = next(layer for layer in network.layers if layer.kind == 'flatten')
    assert flatten.is_view
    assert prod(flatten.in_shape) == prod(flatten.out_shape)
    assert flatten.macs == 0
    assert flatten.num_params == 0
    assert flatten.dram_bytes(1) == 0
    assert flatten.dram_bytes(16) == 0


def test_kernel_layers_are_every_layer_but_flatten(network):
    assert [layer.name for layer in network.kernel_layers] == KERNEL_LAYER_NAMES
    assert len(network.kernel_layers) == 14
    assert not any(layer.is_view for layer in network.kernel_layers)


@pytest.mark.parametrize('top_k', [0, -1, 1001])
def test_top_k_out_of_range_names_value_and_allowed_range(top_k):
    with pytest.raises(ValueError, match=rf'^top_k={top_k}: allowed 1\.\.1000$'):
        alexnet(top_k=top_k)


def test_top_k_range_follows_num_classes():
    with pytest.raises(ValueError, match=r'^top_k=11: allowed 1\.\.10$'):
        alexnet(num_classes=10, top_k=11)
    small = alexnet(num_classes=10, top_k=10)
    assert small.num_classes == 10
    assert small.top_k == 10
    assert small.layers[-1].out_shape == (2, 10)
    assert small.param_shapes()['classifier.6.weight'] == (10, 4096)


def test_flops_are_twice_the_macs_for_conv_and_linear(network):
    multiplying = [layer for layer in network.layers if layer.kind in ('conv', 'linear')]
    assert [layer.name for layer in multiplying] == ['conv1', 'conv2', 'conv3', 'conv4', 'conv5',
                                                     'fc6', 'fc7', 'fc8']
    for layer in multiplying:
        assert layer.macs > 0
        assert layer.flops == 2 * layer.macs, layer.name


def test_conv_and_linear_macs_follow_their_shapes(network):
    by_name = {layer.name: layer for layer in network.layers}
    assert by_name['conv1'].macs == 64 * 55 * 55 * 3 * 11 * 11
    assert by_name['conv2'].macs == 192 * 27 * 27 * 64 * 5 * 5
    assert by_name['fc6'].macs == 9216 * 4096
    assert by_name['fc8'].macs == 4096 * 1000


def test_layers_without_multiplies_have_no_macs_but_positive_flops(network):
    for layer in network.kernel_layers:
        if layer.kind not in ('conv', 'linear'):
            assert layer.macs == 0, layer.name
            assert layer.flops > 0, layer.name


@pytest.mark.parametrize('batch', [1, 2, 7, 64])
def test_bytes_count_weights_once_and_activations_per_frame(network, batch):
    for layer in network.kernel_layers:
        expected = layer.num_params * FLOAT_BYTES + batch * (layer.in_bytes + layer.out_bytes)
        assert layer.dram_bytes(batch) == expected, layer.name


def test_bytes_grow_with_batch(network):
    for layer in network.kernel_layers:
        sizes = [layer.dram_bytes(batch) for batch in range(1, 17)]
        assert all(smaller < larger for smaller, larger in zip(sizes, sizes[1:])), layer.name


def test_fused_batch_moves_fewer_bytes_than_separate_launches_when_a_layer_has_weights(network):
    for layer in network.kernel_layers:
        if layer.num_params:
            assert layer.dram_bytes(8) == \
                8 * layer.dram_bytes(1) - 7 * layer.num_params * FLOAT_BYTES, layer.name
        else:
            assert layer.dram_bytes(8) == 8 * layer.dram_bytes(1), layer.name


# ---- signature: what a cost table records of the network ---------------------------------------

def test_signature_names_every_kernel_layer_with_its_kind_and_shapes(network):
    signature = network.signature()
    assert signature['name'] == 'alexnet'
    assert list(signature['layers']) == [layer.name for layer in network.kernel_layers]
    assert signature['layers']['conv1'] == 'conv 11x11/4 pad 2 3x224x224 -> 64x55x55'
    assert signature['layers']['pool2'] == 'maxpool 3x3/2 192x27x27 -> 192x13x13'
    assert signature['layers']['fc6'] == 'linear 9216 -> 4096'
    assert signature['layers']['preprocess'] == 'preprocess -> 3x224x224'
    assert signature['layers']['softmax'] == 'softmax 1000'


def test_signature_ignores_the_nominal_camera_shape_and_top_k(network):
    assert alexnet(top_k=3, camera_shape=(240, 320, 3)).signature() == network.signature()


def test_signature_follows_the_classes_and_a_conv_window(network):
    ten = alexnet(num_classes=10).signature()['layers']
    assert ten['fc8'] == 'linear 4096 -> 10' and ten['softmax'] == 'softmax 10'
    conv3 = next(layer for layer in network.layers if layer.name == 'conv3')
    wider = type(conv3)(conv3.name, conv3.in_shape, conv3.out_shape, kernel=5, stride=1,
                        padding=2)
    assert wider.signature != conv3.signature


# ---- a network is a chain ----------------------------------------------------------------------

def test_a_network_whose_layer_does_not_read_its_predecessor_is_refused(network):
    layers = list(network.layers)
    index = next(i for i, layer in enumerate(layers) if layer.name == 'conv2')
    conv2 = layers[index]
    layers[index] = type(conv2)(conv2.name, (64, 28, 28), conv2.out_shape, kernel=conv2.kernel,
                                stride=conv2.stride, padding=conv2.padding)
    with pytest.raises(ValueError) as error:
        Network('broken', tuple(layers), network.param_prefix)
    assert str(error.value) == ("network 'broken': layer 'conv2' in_shape=(64, 28, 28): must be "
                                "the output of 'pool1' (64, 27, 27) (a chain)")


def test_a_network_with_a_repeated_layer_name_is_refused(network):
    layers = network.layers[:3] + (network.layers[2],)
    with pytest.raises(ValueError, match=r"^network 'twice': layer name 'pool1' repeats$"):
        Network('twice', layers, network.param_prefix)


def test_a_layer_with_parameters_needs_a_param_prefix(network):
    prefix = {name: value for name, value in network.param_prefix.items() if name != 'fc7'}
    with pytest.raises(ValueError, match=r"layer 'fc7' has parameters but no param_prefix"):
        Network('unnamed', network.layers, prefix)


def test_a_network_without_layers_is_refused():
    with pytest.raises(ValueError, match=r"^network 'empty': no layers$"):
        Network('empty', (), {})
