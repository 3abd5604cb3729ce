"""
What a scheduler worker is built from: its cameras and settings, plain values.

A :class:`WorkerSpec` crosses into the worker process pickled, so it lives here, interpreted, apart
from the compiled core (mypyc's native classes do not unpickle frozen dataclasses).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..scheduler.policies import DEFAULT_MAX_BATCH


@dataclass(frozen=True)
class CameraSpec:
    name: str
    deadline_ns: int
    queue_depth: int = 1


@dataclass(frozen=True)
class WorkerSpec:
    """
    Everything a worker needs to build itself.

    Plain values, so it crosses into a new process.
    """

    cameras: tuple[CameraSpec, ...]
    policy: str = 's3dnn'
    engine: str = 'auto'
    device_id: int = 0
    weights: str = ''
    cost_table: str = ''
    top_k: int = 5
    max_batch: int = DEFAULT_MAX_BATCH
    max_inflight: int = 2
    firm_deadlines: bool = False
    stats_period_s: float = 0.25
    #: share of the GPU this worker's scheduler may take: 1 / the workers on its GPU (rule 6)
    gpu_share: float = 1.0
    #: 'module:function' making the engine from (network, weights) instead of ``engine`` (a plug-in
    #: seam; the tests use it to run a failing engine inside a real worker process)
    engine_factory: str = ''
