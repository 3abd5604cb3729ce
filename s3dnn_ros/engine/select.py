"""
Pick the engine a node asked for: ``cuda``, ``reference``, or ``auto``.

``auto`` is cuda when a GPU and pycuda are present, else the reference engine; the choice comes
with a sentence saying why, for the log.
"""
from __future__ import annotations

from .base import Engine, ENGINE_KINDS, EngineError
from .reference import ReferenceEngine
from ..model.alexnet import Network
from ..model.weights import Weights


def make_engine(kind: str, network: Network, weights: Weights, device_id: int = 0,
                max_batch: int | None = None, cost_table_path: str | None = None,
                streams: int = 16) -> tuple[Engine, str]:
    """
    (engine, why); EngineError when ``cuda`` was asked for and cannot run.

    ``max_batch`` is the largest fused batch (None: the CUDA engine's kernel limit, MAX_FRAMES);
    ``cost_table_path`` is the CUDA engine's measured cost table (loaded when it exists, else
    written after calibration); ``streams`` the size of its stream pool.
    """
    if kind not in ENGINE_KINDS:
        raise ValueError(f'engine={kind!r}: allowed {", ".join(ENGINE_KINDS)}')
    if kind == 'reference':
        return (ReferenceEngine(network, weights),
                'reference engine (numpy on the CPU), as configured')
    try:
        from .cuda import MAX_FRAMES, CudaEngine
        # a larger fused batch runs as several kernel launches of at most MAX_FRAMES frames
        kernel_batch = MAX_FRAMES if max_batch is None else min(max_batch, MAX_FRAMES)
        engine = CudaEngine(network, weights, device_id=device_id,
                            max_batch=kernel_batch, cost_table_path=cost_table_path,
                            streams=streams)
    except ImportError as error:
        problem = f'the CUDA engine cannot be imported ({error})'
    except EngineError as error:
        problem = str(error)
    else:
        return (engine,
                f'CUDA engine on {engine.device_name} (device {device_id}, {streams} stream(s))')
    if kind == 'cuda':
        raise EngineError(f'engine=cuda: {problem}')
    return (ReferenceEngine(network, weights),
            f'reference engine (numpy on the CPU): auto found no usable GPU: {problem}')
