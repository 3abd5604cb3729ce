"""
A segment's kernels as one CUDA graph launch, their argument records in device memory.

A segment (:meth:`CudaEngine.launch_layers`) of ``count`` layers, kernel by kernel, is ``count``
driver calls plus the Python that writes each kernel's record. As a graph it is one
``cuGraphLaunch``: the graph's first kernel (``load_records``) copies the launch's records from
page-locked host memory into device memory, and each layer's kernel is its ``NAME_ref`` entry
point, which reads its record there instead of taking it by value (``kernels/common.cuh``). The
graph's kernel arguments are fixed addresses: a launch for other frames rewrites the records, never
the graph.

Graphs are kept per (first layer, layers, frames), a few *instances* each. An instance's records
are rewritten only once its last launch has finished (its page-locked records are read when the
graph runs, and an executable graph runs one launch at a time), so segments in flight side by side
each take an instance of their own. At most ``limit`` instances are made; past that a segment goes
kernel by kernel (counted in :attr:`ChainGraphs.refused`). The driver calls go through ctypes
(PyCUDA has no graph API); a failure raises EngineError naming the call and its CUresult.
"""
from __future__ import annotations

from collections import deque
import ctypes
from typing import Any, Callable

import numpy as np

from .abi import MAX_FRAMES, PREPROCESS_ARGS
from .driver import driver_api
from .plans import THREADS
from ..base import EngineError

#: executable graphs an engine makes at most
GRAPH_INSTANCES = 256
#: words of one record: the largest argument struct (PREPROCESS_ARGS, 1056 bytes)
RECORD_WORDS = PREPROCESS_ARGS.itemsize // 8
#: CU_STREAM_CAPTURE_MODE_THREAD_LOCAL: only this thread's unsafe calls break the capture
_CAPTURE_THREAD_LOCAL = 1
#: where layer 0's record (PREPROCESS_ARGS) holds the images' metas, in int32 words
META_WORDS = slice(PREPROCESS_ARGS.fields['meta'][1] // 4,
                   PREPROCESS_ARGS.fields['meta'][1] // 4 + MAX_FRAMES * 4)

_P = ctypes.c_void_p
_SIGNATURES = {
    'cuStreamBeginCapture_v2': [_P, ctypes.c_int],
    'cuStreamEndCapture': [_P, _P],
    'cuGraphInstantiateWithFlags': [_P, _P, ctypes.c_ulonglong],
    'cuGraphLaunch': [_P, _P],
    'cuGraphExecDestroy': [_P],
    'cuGraphDestroy': [_P],
}


def graph_api() -> dict[str, Any] | None:
    """Return the driver's graph calls by name, or None when the driver lacks one of them."""
    library = driver_api()
    calls = {}
    for name, argtypes in _SIGNATURES.items():
        try:
            function = getattr(library, name)
        except AttributeError:
            return None
        function.argtypes = argtypes
        function.restype = ctypes.c_int
        calls[name] = function
    return calls


def fill_records(words: np.ndarray, meta: np.ndarray | None, addresses: np.ndarray, first: int,
                 metas: np.ndarray | None) -> None:
    """
    Write a launch's frame pointers into its records.

    ``words``: (layers, RECORD_WORDS) uint64, a record per layer of the segment; ``addresses``:
    the frames' columns of the engine's address table (row 0 the images, row i + 1 the outputs of
    layer i), so layer i's record reads row i and writes row i + 1. For a segment from layer 0,
    ``meta`` (MAX_FRAMES, 4) int32, layer 0's image metas, gets ``metas``.
    """
    count, frames = len(words), addresses.shape[1]
    words[:, :frames] = addresses[first:first + count]
    words[:, MAX_FRAMES:MAX_FRAMES + frames] = addresses[first + 1:first + count + 1]
    if meta is not None:
        meta[:frames] = metas


class _Pending:
    """An instance's ``last`` from its launch until the launch's completion exists: busy."""

    @staticmethod
    def done() -> bool:
        return False


PENDING = _Pending()


class _Instance:
    """One executable graph of a segment, with its records on the host and on the device."""

    __slots__ = ('graph', 'exec', 'words', 'meta', 'device', 'last')

    def __init__(self, graph, exec_, words: np.ndarray, meta: np.ndarray | None, device):
        self.graph = graph
        self.exec = exec_
        self.words = words    # page-locked, mapped: the records the graph's first kernel reads
        self.meta = meta      # layer 0's image metas inside ``words`` (segments from layer 0)
        self.device = device  # the device block the layers' kernels read
        self.last = None      # the completion of its last launch (PENDING while it is issued)


class ChainGraphs:
    """
    One engine's segment graphs, per (first layer, layers, frames).

    ``plan(index, frames)`` returns the engine's plan of a layer (``name``, ``grid``, ``shared``,
    ``buffer``: its record with the static fields set); ``function(name)`` a kernel; ``drv``
    PyCUDA's driver; ``stream`` a stream the graphs are captured on. Call with the engine's
    context current.
    """

    def __init__(self, calls: dict[str, Any], drv, plan: Callable, function: Callable, stream,
                 limit: int = GRAPH_INSTANCES):
        self._calls = calls
        self._drv = drv
        self._plan = plan
        self._function = function
        self._stream = stream
        self.limit = limit
        self._pools: dict[tuple[int, int, int], deque[_Instance]] = {}
        self.live = 0       # instances alive
        self.made = 0       # instances made (graphs captured)
        self.launches = 0   # segments launched as graphs
        self.refused = 0    # segments launched kernel by kernel: every instance busy, none left

    def _call(self, name: str, *args) -> None:
        result = self._calls[name](*args)
        if result:
            raise EngineError(f'{name} returned CUresult {result}')

    def launch(self, first: int, count: int, addresses: np.ndarray, metas: np.ndarray | None,
               stream) -> _Instance | None:
        """
        Queue layers ``first`` .. ``first + count - 1`` over a kernel's frames on ``stream``.

        ``addresses``: the frames' columns of the address table (``CudaEngine._columns_of``);
        ``metas``: their image metas (segments from layer 0). Returns the instance launched, whose
        ``last`` the caller sets to the launch's completion; None when no instance was free and
        none may be made (the caller goes kernel by kernel).
        """
        key = (first, count, addresses.shape[1])
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = deque()
        if pool and (pool[0].last is None or pool[0].last.done()):
            instance = pool.popleft()
        elif self.live < self.limit:
            instance = self._make(first, count, addresses.shape[1])
        else:
            self.refused += 1
            return None
        pool.append(instance)
        instance.last = PENDING  # not free for another kernel of this launch
        fill_records(instance.words, instance.meta, addresses, first, metas)
        self._call('cuGraphLaunch', instance.exec, stream.handle)
        self.launches += 1
        return instance

    def _make(self, first: int, count: int, frames: int) -> _Instance:
        drv = self._drv
        plans = [self._plan(index, frames) for index in range(first, first + count)]
        words = drv.pagelocked_empty((count, RECORD_WORDS), np.uint64,
                                     mem_flags=drv.host_alloc_flags.DEVICEMAP)
        for row, plan in zip(words, plans):  # the static fields; the pointers are set per launch
            row.view(np.uint8)[:plan.buffer.nbytes] = plan.buffer
        meta = words[0].view(np.int32)[META_WORDS].reshape(MAX_FRAMES, 4) if first == 0 else None
        device = drv.mem_alloc(words.nbytes)
        source, target = words.base.get_device_pointer(), int(device)
        loader = np.array([source, target, words.size], np.uint64).view(np.uint8)
        pointers = [np.array([target + k * RECORD_WORDS * 8], np.uint64).view(np.uint8)
                    for k in range(count)]
        stream = self._stream
        graph = ctypes.c_void_p()
        self._call('cuStreamBeginCapture_v2', stream.handle, _CAPTURE_THREAD_LOCAL)
        failed = True
        try:
            self._function('load_records')._launch_kernel(
                (-(-words.size // THREADS), 1), (THREADS, 1, 1), loader, 0, stream)
            for plan, pointer in zip(plans, pointers):
                self._function(plan.name + '_ref')._launch_kernel(
                    plan.grid, (THREADS, 1, 1), pointer, plan.shared, stream)
            failed = False
        finally:
            ended = self._calls['cuStreamEndCapture'](stream.handle, ctypes.byref(graph))
            if (ended or failed) and graph.value:
                self._calls['cuGraphDestroy'](graph)
        if ended:
            raise EngineError(f'cuStreamEndCapture returned CUresult {ended}')
        exec_ = ctypes.c_void_p()
        try:
            self._call('cuGraphInstantiateWithFlags', ctypes.byref(exec_), graph, 0)
        except EngineError:
            self._calls['cuGraphDestroy'](graph)
            raise
        self.made += 1
        self.live += 1
        return _Instance(graph, exec_, words, meta, device)

    def counts(self) -> dict[str, int]:
        """Graphs made and alive, segments launched as graphs, and those refused one."""
        return {'made': self.made, 'live': self.live, 'launches': self.launches,
                'refused': self.refused}

    def clear(self) -> None:
        """Destroy every graph (the plans changed, or the engine closes); the GPU must be idle."""
        for pool in self._pools.values():
            for instance in pool:
                self._calls['cuGraphExecDestroy'](instance.exec)
                self._calls['cuGraphDestroy'](instance.graph)
                instance.device.free()
        self._pools.clear()
        self.live = 0
