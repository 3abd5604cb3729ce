"""
A segment's kernels launched as one CUDA graph.

A segment (:meth:`CudaEngine.launch_layers`) of ``count`` layers over a kernel's frames is
``count`` kernel launches of about 5 µs of driver time each, plus the Python that writes each
launch's frame pointers. The same kernels as one captured graph cost one ``cuGraphLaunch``.

A graph is kept per *slot*: (stream, first layer, layers, frames). Its kernels' arguments are the
frames' buffer addresses, so a slot remembers the addresses it was last given (its *signature*:
each frame's activations, and for a segment starting at layer 0 its image buffer and geometry); a
launch with the same signature launches the graph as it is, one with another rewrites the
arguments of each kernel node (``cuGraphExecKernelNodeSetParams``) first. Addresses, not pipeline
ids, are the key: a graph that writes the buffers it names is right for whichever pipeline owns
them now, so closing a pipeline leaves nothing stale.

Why per stream: launches of one executable graph run one after another, whatever their streams;
the engine's streams run side by side. The driver calls go through ctypes (PyCUDA has no graph
API); any failure raises EngineError naming the call and its CUresult.
"""
from __future__ import annotations

from collections import OrderedDict
import ctypes
from typing import Any, Callable, Sequence

from .driver import driver_api
from ..base import EngineError

#: executable graphs an engine keeps (least recently used destroyed first)
GRAPH_SLOTS = 256
#: CU_STREAM_CAPTURE_MODE_THREAD_LOCAL: only this thread's unsafe calls break the capture
_CAPTURE_THREAD_LOCAL = 1
#: CU_GRAPH_NODE_TYPE_KERNEL
_KERNEL_NODE = 0


class KernelNodeParams(ctypes.Structure):
    """CUDA_KERNEL_NODE_PARAMS_v2 of cuda.h."""

    _fields_ = [('func', ctypes.c_void_p), ('grid', ctypes.c_uint * 3),
                ('block', ctypes.c_uint * 3), ('shared', ctypes.c_uint),
                ('kernel_params', ctypes.c_void_p), ('extra', ctypes.c_void_p),
                ('kern', ctypes.c_void_p), ('ctx', ctypes.c_void_p)]


if ctypes.sizeof(KernelNodeParams) != 72:
    raise AssertionError('KernelNodeParams must mirror the 72 bytes of CUDA_KERNEL_NODE_PARAMS_v2')

_P = ctypes.c_void_p
_SIGNATURES = {
    'cuStreamBeginCapture_v2': [_P, ctypes.c_int],
    'cuStreamEndCapture': [_P, _P],
    'cuGraphInstantiateWithFlags': [_P, _P, ctypes.c_ulonglong],
    'cuGraphGetRootNodes': [_P, _P, _P],
    'cuGraphNodeGetDependentNodes_v2': [_P, _P, _P, _P],
    'cuGraphNodeGetType': [_P, _P],
    'cuGraphKernelNodeGetParams_v2': [_P, _P],
    'cuGraphExecKernelNodeSetParams_v2': [_P, _P, _P],
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


class _Slot:
    """One executable graph: its kernel nodes in layer order, and the signature it holds."""

    __slots__ = ('graph', 'exec', 'nodes', 'params', 'signature')

    def __init__(self, graph, exec_, nodes, params, signature):
        self.graph = graph
        self.exec = exec_
        self.nodes = nodes
        self.params = params          # a KernelNodeParams per node, kernel_params re-aimed per set
        self.signature = signature


class SegmentGraphs:
    """
    The executable graphs of one engine's segments, per (stream, first, layers, frames).

    ``fill(index, chunk)`` writes a layer's frame pointers into its plan and returns the plan
    (``function``, ``grid``, ``shared``, ``buffer``); ``launch_plan(plan, stream)`` launches it as
    the engine does. Call with the engine's context current.
    """

    def __init__(self, calls: dict[str, Any], fill: Callable, launch_plan: Callable,
                 slots: int = GRAPH_SLOTS):
        self._calls = calls
        self._fill = fill
        self._launch_plan = launch_plan
        self._max_slots = slots
        self._slots: OrderedDict[tuple, _Slot] = OrderedDict()
        self._argument = (ctypes.c_void_p * 1)()  # kernelParams: the one struct argument
        self._argument_ptr = ctypes.addressof(self._argument)
        self.captured = 0      # graphs made
        self.launches = 0      # graph launches
        self.rewrites = 0      # launches that rewrote the kernels' arguments first

    def _call(self, name: str, *args) -> None:
        result = self._calls[name](*args)
        if result:
            raise EngineError(f'{name} returned CUresult {result}')

    @staticmethod
    def signature(first: int, chunk: Sequence) -> tuple:
        """Return the buffers a segment's kernels name: activations, images with geometry."""
        if first == 0:
            return tuple([(p.outputs[0], p.image_ptr, id(p.meta)) for p in chunk])
        return tuple([p.outputs[0] for p in chunk])

    def launch(self, first: int, count: int, chunk: Sequence, stream) -> bool:
        """
        Queue layers ``first`` .. ``first + count - 1`` for ``chunk`` on ``stream``.

        Returns whether a graph was made for it (an allocation).
        """
        key = (stream.handle, first, count, len(chunk))
        signature = self.signature(first, chunk)
        slot = self._slots.get(key)
        made = slot is None
        if made:
            slot = self._capture(first, count, chunk, stream, signature)
            self._slots[key] = slot
            if len(self._slots) > self._max_slots:
                self._destroy(self._slots.popitem(last=False)[1])
        else:
            self._slots.move_to_end(key)
            if slot.signature != signature:
                self._rewrite(slot, first, chunk)
                slot.signature = signature
                self.rewrites += 1
        self._call('cuGraphLaunch', slot.exec, stream.handle)
        self.launches += 1
        return made

    def _rewrite(self, slot: _Slot, first: int, chunk: Sequence) -> None:
        for offset, (node, params) in enumerate(zip(slot.nodes, slot.params)):
            plan = self._fill(first + offset, chunk)
            self._argument[0] = plan.buffer.ctypes.data
            self._call('cuGraphExecKernelNodeSetParams_v2', slot.exec, node,
                       ctypes.byref(params))

    def _capture(self, first: int, count: int, chunk: Sequence, stream,
                 signature: tuple) -> _Slot:
        # every layer's pointers are written before the capture: each layer has its own plan
        plans = [self._fill(index, chunk) for index in range(first, first + count)]
        graph = ctypes.c_void_p()
        self._call('cuStreamBeginCapture_v2', stream.handle, _CAPTURE_THREAD_LOCAL)
        failed = True
        try:
            for plan in plans:
                self._launch_plan(plan, stream)
            failed = False
        finally:
            ended = self._calls['cuStreamEndCapture'](stream.handle, ctypes.byref(graph))
            if (ended or failed) and graph.value:
                self._calls['cuGraphDestroy'](graph)
        if ended:
            raise EngineError(f'cuStreamEndCapture returned CUresult {ended}')
        try:
            exec_ = ctypes.c_void_p()
            self._call('cuGraphInstantiateWithFlags', ctypes.byref(exec_), graph, 0)
        except EngineError:
            self._calls['cuGraphDestroy'](graph)
            raise
        slot = _Slot(graph, exec_, [], [], signature)
        try:
            slot.nodes = self._chain(graph, count)
            for node in slot.nodes:
                params = KernelNodeParams()
                self._call('cuGraphKernelNodeGetParams_v2', node, ctypes.byref(params))
                params.kernel_params, params.extra = self._argument_ptr, None
                slot.params.append(params)
        except EngineError:
            self._destroy(slot)
            raise
        self.captured += 1
        return slot

    def _chain(self, graph, count: int) -> list:
        """Return the graph's nodes from its root on: a kernel node per layer, in order."""
        nodes = []
        node, found = ctypes.c_void_p(), ctypes.c_size_t(1)
        self._call('cuGraphGetRootNodes', graph, ctypes.byref(node), ctypes.byref(found))
        while found.value == 1:
            kind = ctypes.c_int(-1)
            self._call('cuGraphNodeGetType', node, ctypes.byref(kind))
            if kind.value != _KERNEL_NODE or len(nodes) == count:
                break
            nodes.append(node)
            node, found = ctypes.c_void_p(), ctypes.c_size_t(1)
            self._call('cuGraphNodeGetDependentNodes_v2', nodes[-1], ctypes.byref(node), None,
                       ctypes.byref(found))
        if len(nodes) != count or found.value:
            raise EngineError(f'a captured segment of {count} layers is not a chain of {count} '
                              f'kernels ({len(nodes)} found)')
        return nodes

    def _destroy(self, slot: _Slot) -> None:
        """Free a slot's graphs; a launch still in flight finishes first (the driver waits)."""
        self._calls['cuGraphExecDestroy'](slot.exec)
        self._calls['cuGraphDestroy'](slot.graph)

    def clear(self) -> None:
        """Destroy every graph (plans changed, or the engine closes)."""
        while self._slots:
            self._destroy(self._slots.popitem()[1])
