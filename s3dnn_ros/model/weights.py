"""
Network weights: seeded untrained initialisation, .npz load/save, torchvision state-dict import.

Weights are a plain ``dict[name, float32 ndarray]`` keyed by torchvision parameter names. Every
loader checks the tensors against the network and names the offending tensor and shapes on a
mismatch.
"""
from __future__ import annotations

from math import prod, sqrt
import os
import zipfile
import zlib

import numpy as np

from .alexnet import Network

Weights = dict[str, np.ndarray]

#: the first bytes of a zip archive (an .npz) and of a single .npy array
ZIP_MAGIC, NPY_MAGIC = b'PK\x03\x04', b'\x93NUMPY'


class WeightsError(ValueError):
    """Weights that do not fit the network, or a file that cannot be read as weights."""


def init_weights(network: Network, seed: int = 0) -> Weights:
    """
    Return deterministic *untrained* weights.

    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) like torch's default init.

    They make the network produce well-scaled activations for testing and timing; the classes they
    predict mean nothing.
    """
    rng = np.random.default_rng(seed)
    weights: Weights = {}
    for name, shape in network.param_shapes().items():
        fan_in = prod(shape[1:]) if len(shape) > 1 else None
        if fan_in is None:  # a bias takes the fan-in of the weight before it
            fan_in = prod(weights[name.rsplit('.', 1)[0] + '.weight'].shape[1:])
        bound = 1.0 / sqrt(fan_in)
        weights[name] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    return weights


def check_weights(network: Network, weights: Weights, source: str) -> Weights:
    """
    Return ``weights`` as C-contiguous float32.

    Names and shapes are checked against the network first.
    """
    expected = network.param_shapes()
    missing = [name for name in expected if name not in weights]
    if missing:
        raise WeightsError(f'{source}: missing tensor {missing[0]!r} '
                           f'(expected shape {expected[missing[0]]})'
                           + (f' and {len(missing) - 1} more' if len(missing) > 1 else ''))
    extra = sorted(set(weights) - set(expected))
    if extra:
        raise WeightsError(f'{source}: unexpected tensor {extra[0]!r} (shape '
                           f'{tuple(np.shape(weights[extra[0]]))}); '
                           f'{network.name} has only {len(expected)} tensors named like '
                           f'{next(iter(expected))!r}')
    checked: Weights = {}
    for name, shape in expected.items():
        array = np.asarray(weights[name])
        if tuple(array.shape) != shape:
            raise WeightsError(f'{source}: tensor {name!r} has shape '
                               f'{tuple(array.shape)}, expected {shape}')
        if not np.issubdtype(array.dtype, np.floating):
            raise WeightsError(f'{source}: tensor {name!r} has dtype {array.dtype}, '
                               'expected a float type')
        array = np.ascontiguousarray(array, dtype=np.float32)
        if not np.isfinite(array).all():
            raise WeightsError(f'{source}: tensor {name!r} holds NaN or infinite values')
        checked[name] = array
    return checked


def save_weights(path: str | os.PathLike, weights: Weights) -> None:
    """Write weights to an uncompressed .npz (loads fast, memory-maps cleanly)."""
    np.savez(path, **weights)


def load_weights(path: str | os.PathLike, network: Network) -> Weights:
    """Read and check a .npz written by :func:`save_weights` or ``s3dnn-convert-weights``."""
    path = os.fspath(path)
    allowed = ('give a .npz from s3dnn-convert-weights, '
               'or leave weights empty for seeded untrained weights')
    if os.path.isdir(path):
        raise WeightsError(f'weights file {path!r} is a directory ({allowed})')
    if not os.path.isfile(path):
        raise WeightsError(f'weights file {path!r} does not exist ({allowed})')
    try:
        with open(path, 'rb') as file:
            start = file.read(len(NPY_MAGIC))
    except OSError as error:
        raise WeightsError(f'weights file {path!r}: cannot read it ({error.strerror})') from error
    if not start:
        raise WeightsError(f'weights file {path!r} is empty ({allowed})')
    if not start.startswith(ZIP_MAGIC):
        what = ('a single .npy array, not named tensors' if start.startswith(NPY_MAGIC)
                else 'not a .npz (zip) archive')
        raise WeightsError(f'weights file {path!r} is {what} ({allowed})')
    try:
        with np.load(path, allow_pickle=False) as archive:
            weights = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise WeightsError(f'weights file {path!r} is a damaged '
                           f'.npz archive (half copied?): {error}') from error
    return check_weights(network, weights, path)


def load_torch_state_dict(path: str | os.PathLike, network: Network) -> Weights:
    """Import a torchvision state dict (.pth); needs torch (the ``torch`` extra)."""
    try:
        import torch
    except ImportError as error:
        raise WeightsError('importing a .pth needs torch: '
                           'pip install "s3dnn_ros[torch]"') from error
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f'state dict file {path!r} does not exist')
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # torch raises several unrelated types for a bad file
        raise WeightsError(f'{path!r} is not a readable torch state dict: {error}') from error
    if not isinstance(state, dict):
        raise WeightsError(f'{path!r} holds a {type(state).__name__}, '
                           'expected a state dict (name -> tensor)')
    not_tensors = [name for name, value in state.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise WeightsError(f'{path!r}: entry {not_tensors[0]!r} is a '
                           f'{type(state[not_tensors[0]]).__name__}, '
                           'expected a tensor (save model.state_dict(), not a checkpoint wrapper)')
    weights = {name: tensor.detach().float().numpy() for name, tensor in state.items()}
    return check_weights(network, weights, path)
