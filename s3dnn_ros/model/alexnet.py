"""
AlexNet exactly as torchvision's ``alexnet()``, as a chain of layer specs.

Parameter names and shapes match torchvision's state dict (``features.0.weight`` ...
``classifier.6.bias``), so weights convert one to one. ReLU is fused into the conv/linear layer
before it and Dropout is identity at inference, so neither is a layer of its own here.
"""
from __future__ import annotations

from dataclasses import dataclass

from .layers import (AdaptiveAvgPool2d, Conv2d, conv_output_size, Flatten, Layer, Linear,
                     MaxPool2d, Preprocess, SoftmaxTopK)

INPUT_SIZE = 224
NOMINAL_CAMERA_SHAPE = (480, 640, 3)


@dataclass(frozen=True)
class Network:
    """
    A chain of layers: each reads the output of the one before it, the first reads the image.

    ``param_prefix`` maps a layer name to its torchvision parameter prefix. The engines and the
    scheduler rely on the chain (a layer's input is its predecessor's output, by index), so a
    network that is not one is refused when it is made.
    """

    name: str
    layers: tuple[Layer, ...]
    param_prefix: dict[str, str]

    def __post_init__(self):
        if not self.layers:
            raise ValueError(f'network {self.name!r}: no layers')
        seen = set()
        for before, layer in zip((None, *self.layers), self.layers):
            if layer.name in seen:
                raise ValueError(f'network {self.name!r}: layer name {layer.name!r} repeats')
            seen.add(layer.name)
            if before is not None and layer.in_shape != before.out_shape:
                raise ValueError(f'network {self.name!r}: layer {layer.name!r} in_shape='
                                 f'{layer.in_shape}: must be the output of {before.name!r} '
                                 f'{before.out_shape} (a chain)')
            if layer.param_shapes and layer.name not in self.param_prefix:
                raise ValueError(f'network {self.name!r}: layer {layer.name!r} has parameters '
                                 'but no param_prefix entry')

    @property
    def kernel_layers(self) -> tuple[Layer, ...]:
        """Return the layers that launch a kernel, in order: the unit of scheduling."""
        return tuple(layer for layer in self.layers if not layer.is_view)

    @property
    def num_classes(self) -> int:
        return self.layers[-1].in_shape[0]

    @property
    def top_k(self) -> int:
        return self.layers[-1].k

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every parameter tensor under its torchvision name, in state-dict order."""
        shapes = {}
        for layer in self.layers:
            for suffix, shape in layer.param_shapes.items():
                shapes[f'{self.param_prefix[layer.name]}.{suffix}'] = shape
        return shapes

    def layer_params(self, layer: Layer) -> dict[str, str]:
        """Suffix ('weight', 'bias') -> full parameter name for one layer."""
        return {suffix: f'{self.param_prefix[layer.name]}.{suffix}'
                for suffix in layer.param_shapes}

    @property
    def num_params(self) -> int:
        return sum(layer.num_params for layer in self.layers)

    def signature(self) -> dict:
        """
        Return the network's name and each kernel layer's :attr:`Layer.signature` by name.

        Two networks with equal signatures cost the same per launch: a cost table records it.
        """
        return {'name': self.name,
                'layers': {layer.name: layer.signature for layer in self.kernel_layers}}

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)


def alexnet(num_classes: int = 1000, top_k: int = 5,
            camera_shape: tuple[int, int, int] = NOMINAL_CAMERA_SHAPE) -> Network:
    """
    Return torchvision's AlexNet at 224x224.

    With preprocessing in front and softmax/top-k behind.
    """
    if not 1 <= top_k <= num_classes:
        raise ValueError(f'top_k={top_k!r}: allowed 1..{num_classes}')
    layers: list[Layer] = []
    prefix: dict[str, str] = {}
    shape = (3, INPUT_SIZE, INPUT_SIZE)
    layers.append(Preprocess('preprocess', tuple(camera_shape), shape))

    def conv(name, torch_index, out_ch, kernel, stride, padding):
        nonlocal shape
        size = conv_output_size(shape[1], kernel, stride, padding)
        out = (out_ch, size, size)
        layers.append(Conv2d(name, shape, out, kernel=kernel, stride=stride, padding=padding))
        prefix[name] = f'features.{torch_index}'
        shape = out

    def pool(name):
        nonlocal shape
        size = conv_output_size(shape[1], 3, 2, 0)
        out = (shape[0], size, size)
        layers.append(MaxPool2d(name, shape, out, kernel=3, stride=2))
        shape = out

    conv('conv1', 0, 64, 11, 4, 2)
    pool('pool1')
    conv('conv2', 3, 192, 5, 1, 2)
    pool('pool2')
    conv('conv3', 6, 384, 3, 1, 1)
    conv('conv4', 8, 256, 3, 1, 1)
    conv('conv5', 10, 256, 3, 1, 1)
    pool('pool5')
    layers.append(AdaptiveAvgPool2d('avgpool', shape, (shape[0], 6, 6)))
    flat = (shape[0] * 36,)
    layers.append(Flatten('flatten', (shape[0], 6, 6), flat))
    layers.append(Linear('fc6', flat, (4096,), relu=True))
    layers.append(Linear('fc7', (4096,), (4096,), relu=True))
    layers.append(Linear('fc8', (4096,), (num_classes,), relu=False))
    prefix.update({'fc6': 'classifier.1', 'fc7': 'classifier.4', 'fc8': 'classifier.6'})
    layers.append(SoftmaxTopK('softmax', (num_classes,), (2, top_k), k=top_k))
    return Network('alexnet', tuple(layers), prefix)
