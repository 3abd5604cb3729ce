"""
PyCUDA and the raw driver calls the engine makes, and which context is current on which thread.

pycuda is imported only when an engine is made (:func:`import_pycuda`), so the package imports on
machines without it.
"""
from __future__ import annotations

import atexit
import ctypes
import functools
import threading
from typing import Any

import numpy as np

from .abi import COPY_ATTRIBUTES, COPY_ORDER_STREAM, MAX_FRAMES
from ..base import EngineError


def import_pycuda():
    try:
        import pycuda.driver as driver
    except ImportError as error:
        raise EngineError(f'the CUDA engine needs pycuda, which cannot be imported ({error}): '
                          'pip install "s3dnn_ros[gpu]", or use engine: reference') from error
    return driver


@functools.cache
def driver_api():
    """
    Return the CUDA driver library.

    It is used for the two calls PyCUDA cannot make under NumPy 2 (see ``pin``).
    """
    library = ctypes.CDLL('libcuda.so.1')
    library.cuMemHostRegister_v2.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint]
    library.cuMemHostRegister_v2.restype = ctypes.c_int
    library.cuMemHostUnregister.argtypes = [ctypes.c_void_p]
    library.cuMemHostUnregister.restype = ctypes.c_int
    return library


class CopyBatch:
    """
    The copies of one kernel's frames (their image uploads) in one driver call.

    ``cuMemcpyBatchAsync`` (CUDA 13 drivers) takes arrays of destinations, sources and sizes; the
    caller fills the first ``count`` entries and calls :meth:`issue`. The driver reads the arrays
    during the call, so they are reused at once. A fused kernel's frames (up to MAX_FRAMES) then
    cost one call instead of one PyCUDA copy each (about 4 µs of host each).
    """

    def __init__(self, function):
        self._function = function
        self.dst = np.zeros(MAX_FRAMES, np.uint64)
        self.src = np.zeros(MAX_FRAMES, np.uint64)
        self.size = np.zeros(MAX_FRAMES, np.uint64)
        self._attributes = np.zeros(1, COPY_ATTRIBUTES)
        self._attributes['order'] = COPY_ORDER_STREAM
        self._first = np.zeros(1, np.uint64)  # the attributes apply from copy 0 on
        self._arrays = (self.dst.ctypes.data, self.src.ctypes.data, self.size.ctypes.data)
        self._tail = (self._attributes.ctypes.data, self._first.ctypes.data, 1)

    @staticmethod
    def function() -> Any:
        """Return the driver's ``cuMemcpyBatchAsync_v2``, or None when the driver has none."""
        try:
            function = driver_api().cuMemcpyBatchAsync_v2
        except AttributeError:
            return None
        function.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_size_t, ctypes.c_void_p,
                                                     ctypes.c_void_p, ctypes.c_size_t,
                                                     ctypes.c_void_p]
        function.restype = ctypes.c_int
        return function

    def issue(self, count: int, stream) -> None:
        """Copy the first ``count`` entries on ``stream``; EngineError naming the CUresult."""
        result = self._function(*self._arrays, count, *self._tail, stream.handle)
        if result:
            raise EngineError(f'cuMemcpyBatchAsync of {count} copies returned CUresult {result}')


class _ThreadContexts:
    """
    The contexts this thread pushed.

    They are popped when the thread ends (its thread-local value is released on that thread) or,
    for the main thread, at exit.
    """

    def __init__(self, driver):
        self.driver = driver
        self.pushed: list[Any] = []

    @property
    def current(self) -> Any:
        """Return the context this thread made current last (None before any)."""
        return self.pushed[-1] if self.pushed else None

    def push(self, context) -> None:
        context.push()
        self.pushed.append(context)

    def pop_all(self) -> None:
        while self.pushed:
            self.pushed.pop()
            self.driver.Context.pop()

    def __del__(self):
        self.pop_all()


_THREAD = threading.local()
#: one context object per device for the whole process: PyCUDA frees an object (memory, event,
#: module) on a thread only while the very object it was made under is current there, so engines
#: share it
_PRIMARY_CONTEXTS: dict[int, Any] = {}
_PRIMARY_CONTEXTS_LOCK = threading.Lock()


def primary_context(device_id: int, device) -> Any:
    with _PRIMARY_CONTEXTS_LOCK:
        context = _PRIMARY_CONTEXTS.get(device_id)
        if context is None:
            context = _PRIMARY_CONTEXTS[device_id] = device.retain_primary_context()
        return context


def thread_contexts(driver) -> _ThreadContexts:
    contexts = getattr(_THREAD, 'contexts', None)
    if contexts is None:
        contexts = _THREAD.contexts = _ThreadContexts(driver)
        if threading.current_thread() is threading.main_thread():
            atexit.register(contexts.pop_all)
    return contexts
