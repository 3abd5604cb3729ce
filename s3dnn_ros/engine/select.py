"""
Pick the engine a node asked for: ``cuda``, ``reference``, ``timed`` or ``auto``.

``auto`` is cuda when a GPU and pycuda are present, else the reference engine (never ``timed``,
which computes nothing); the choice comes with a sentence saying why, for the log.
"""
from __future__ import annotations

from .base import Engine, ENGINE_KINDS, EngineError
from .costs import CostTable
from .reference import ReferenceEngine
from .timed import TimedEngine
from ..model.alexnet import Network
from ..model.weights import Weights


def make_engine(kind: str, network: Network, weights: Weights, device_id: int = 0,
                max_batch: int | None = None, cost_table_path: str | None = None,
                streams: int = 16) -> tuple[Engine, str]:
    """
    (engine, why); EngineError when ``cuda`` was asked for and cannot run.

    ``max_batch`` is the largest fused batch (None: the CUDA engine's kernel limit, MAX_FRAMES);
    ``cost_table_path`` is the CUDA engine's measured cost table (loaded when it exists, else
    written after calibration), and the one the timed engine takes its times from (it must exist:
    CostTableError names what is wrong with it); ``streams`` the size of the CUDA engine's stream
    pool.
    """
    if kind not in ENGINE_KINDS:
        raise ValueError(f'engine={kind!r}: allowed {", ".join(ENGINE_KINDS)}')
    if kind == 'reference':
        return (ReferenceEngine(network, weights),
                'reference engine (numpy on the CPU), as configured')
    if kind == 'timed':
        if not cost_table_path:
            raise EngineError('engine=timed takes its launch times from a cost table: '
                              'give one (cost_table)')
        costs = CostTable.load(cost_table_path, network)
        return (TimedEngine(costs),
                f'timed engine: no GPU, each launch takes the time {cost_table_path} gives '
                f'({costs.gpu}), results are zeros')
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
