"""
Layer specifications: what each layer computes, its shapes, FLOPs and bytes.

A layer spec holds no device state and no weights. Shapes are per frame (the batch dimension is the
fused batch chosen at run time): images are HWC uint8, activations CHW float32, vectors (N,).
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

FLOAT_BYTES = 4

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Layer:
    """Base of all layer specs; ``kind`` names the kernel family that runs it."""

    name: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    kind = 'layer'
    #: a view (Flatten) reinterprets its input and launches no kernel
    is_view = False

    @property
    def macs(self) -> int:
        """Multiply-accumulates per frame (0 for layers that do not multiply)."""
        return 0

    @property
    def flops(self) -> int:
        """Floating-point operations per frame."""
        return 2 * self.macs

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter tensors by their suffix ('weight', 'bias')."""
        return {}

    @property
    def num_params(self) -> int:
        return sum(prod(s) for s in self.param_shapes.values())

    @property
    def in_bytes(self) -> int:
        return prod(self.in_shape) * FLOAT_BYTES

    @property
    def out_bytes(self) -> int:
        return prod(self.out_shape) * FLOAT_BYTES

    def dram_bytes(self, batch: int = 1) -> int:
        """
        DRAM bytes moved by one launch over ``batch`` frames.

        Weights once, activations per frame.
        """
        return self.num_params * FLOAT_BYTES + batch * (self.in_bytes + self.out_bytes)

    @property
    def signature(self) -> str:
        """
        Return what a launch's cost depends on, as text: the kind, its window, the shapes.

        For example 'conv 11x11/4 pad 2 3x224x224 -> 64x55x55'. Cost tables record it per layer
        and refuse a network whose layers differ.
        """
        return f'{self.kind}{self._window} {_dims(self.in_shape)} -> {_dims(self.out_shape)}'

    @property
    def _window(self) -> str:
        """Return a sliding window's size, stride and padding for :attr:`signature` ('': none)."""
        return ''


@dataclass(frozen=True)
class Preprocess(Layer):
    """
    uint8 HWC image of any size -> bilinear resize -> float32 CHW normalised by mean/std.

    ``in_shape`` is the nominal camera image used for byte estimates; the kernels accept any size.
    The resize samples pixel centres (half-pixel offsets, no antialiasing), like OpenCV's
    INTER_LINEAR and torch's ``interpolate(mode='bilinear', align_corners=False)``.
    """

    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    kind = 'preprocess'

    @property
    def flops(self) -> int:
        # 4 taps (3 lerps = 6 flops) plus normalisation (2 flops) per output element
        return 8 * prod(self.out_shape)

    @property
    def in_bytes(self) -> int:
        return prod(self.in_shape)  # uint8

    @property
    def signature(self) -> str:
        """Return the kind and the output shape: the kernels take any image size."""
        return f'{self.kind} -> {_dims(self.out_shape)}'


@dataclass(frozen=True)
class Conv2d(Layer):
    """2-D convolution with bias, ReLU fused when ``relu`` (torch.nn.Conv2d + ReLU)."""

    kernel: int = 3
    stride: int = 1
    padding: int = 0
    relu: bool = True

    kind = 'conv'

    @property
    def _window(self) -> str:
        return f' {self.kernel}x{self.kernel}/{self.stride} pad {self.padding}'

    @property
    def in_channels(self) -> int:
        return self.in_shape[0]

    @property
    def out_channels(self) -> int:
        return self.out_shape[0]

    @property
    def macs(self) -> int:
        return prod(self.out_shape) * self.in_channels * self.kernel * self.kernel

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {'weight': (self.out_channels, self.in_channels, self.kernel, self.kernel),
                'bias': (self.out_channels,)}


@dataclass(frozen=True)
class MaxPool2d(Layer):
    """Max pooling without padding (floor mode), per channel."""

    kernel: int = 3
    stride: int = 2

    kind = 'maxpool'

    @property
    def _window(self) -> str:
        return f' {self.kernel}x{self.kernel}/{self.stride}'

    @property
    def flops(self) -> int:
        return prod(self.out_shape) * (self.kernel * self.kernel - 1)


@dataclass(frozen=True)
class AdaptiveAvgPool2d(Layer):
    """torch.nn.AdaptiveAvgPool2d: output cell i covers rows floor(i*H/O) .. ceil((i+1)*H/O)-1."""

    kind = 'avgpool'

    @property
    def flops(self) -> int:
        c, h, w = self.in_shape
        oh, ow = self.out_shape[1:]
        # each output cell averages at most ceil(H/O)+1 x ceil(W/O)+1 inputs
        return c * oh * ow * (-(-h // oh) + 1) * (-(-w // ow) + 1)


@dataclass(frozen=True)
class Flatten(Layer):
    """CHW -> (C*H*W,): the same memory read as a vector; no kernel runs."""

    kind = 'flatten'
    is_view = True

    def dram_bytes(self, batch: int = 1) -> int:
        return 0


@dataclass(frozen=True)
class Linear(Layer):
    """
    Fully connected layer y = W x + b, ReLU fused when ``relu``.

    Dropout before it is identity.
    """

    relu: bool = False

    kind = 'linear'

    @property
    def in_features(self) -> int:
        return self.in_shape[0]

    @property
    def out_features(self) -> int:
        return self.out_shape[0]

    @property
    def macs(self) -> int:
        return self.in_features * self.out_features

    @property
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {'weight': (self.out_features, self.in_features), 'bias': (self.out_features,)}


@dataclass(frozen=True)
class SoftmaxTopK(Layer):
    """
    Softmax over the logits, then the k best classes.

    Output per frame is a (2, k) float32 array: row 0 the probabilities in descending order,
    row 1 the class ids (exact integers stored as float32). Ties keep the lower class id first.
    """

    k: int = 5

    kind = 'softmax'

    @property
    def flops(self) -> int:
        return 4 * self.in_shape[0]

    @property
    def signature(self) -> str:
        """Return the kind and the classes: ``k`` (chosen per node) does not change the cost."""
        return f'{self.kind} {_dims(self.in_shape)}'


def _dims(shape: tuple[int, ...]) -> str:
    return 'x'.join(map(str, shape))


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Spatial output size of a convolution or pooling window (floor mode)."""
    return (size + 2 * padding - kernel) // stride + 1
