"""
The CUDA engine: pipelines, staging, launches and segments, completions.

See the package docstring (:mod:`s3dnn_ros.engine.cuda`) for why it is built the way it is.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
import math
import os
import time
from typing import Any, Sequence

import numpy as np

from .abi import MAX_FRAMES
from .calibration import Calibration
from .driver import CopyBatch, driver_api, import_pycuda, primary_context, thread_contexts
from .graphs import ChainGraphs, graph_api
from .kernels import compiled_kernels, KERNEL_FILES
from .plans import BLOCK, CONV_TILES, launch_record, param_layout, Plan, resident_blocks
from ..base import check_image, Completion, ENCODINGS, Engine, EngineError
from ..costs import CostTable
from ..reference import layer_params
from ...model.alexnet import Network
from ...model.weights import check_weights, Weights

#: threads that copy a fused launch's images into pinned memory (measured on an H100 host: 147 µs
#: per 640x480 rgb8 frame with one thread, 50 µs with four, no better with eight)
STAGING_THREADS = 4
#: pinned image views a pipeline remembers (the slots of a camera's ring: queue depth + 2)
PINNED_VIEWS = 8
#: re-base the GPU-to-host clock mapping once an event lies this far from the reference (ms)
REBASE_MS = 1000.0


@dataclass
class _Pipeline:
    buffer: Any                        # device block of every kernel layer's output but the last
    # device address of each kernel layer's output; the last is ``result``'s
    outputs: list[int]
    result: np.ndarray                 # page-locked (2, k), mapped: the last kernel writes it
    copied: Any                        # event after the last H2D from the staging buffer
    # own pinned uint8 image bytes, for images not in pinned memory
    staging: np.ndarray | None = None
    staging_capacity: int = 0
    image: Any = None                  # device copy of the staged image
    image_ptr: int = 0                 # its device address
    image_capacity: int = 0
    # page-locked bytes a layer-0 launch uploads (the last staged image), and their address
    upload: np.ndarray | None = None
    upload_ptr: int = 0
    # whether ``upload`` lies in ``staging`` (else in pinned caller memory)
    upload_staged: bool = False
    meta: np.ndarray | None = None     # (height, width, step, encoding code) int32
    # the pipeline's column of the engine's address table (and row of its meta table)
    column: int = -1
    # the last copy into ``image`` made ahead of a launch (:meth:`CudaEngine.upload`), until a
    # layer-0 launch has queued its wait for it; ``ahead``: that copy holds the staged image
    uploaded: 'CudaCompletion | None' = None
    ahead: bool = False
    # image views in pinned caller memory staged before (at most PINNED_VIEWS, by id): (view,
    # encoding, upload, upload_ptr, meta). Staged again, a view needs none of the checks (its
    # geometry and address never change): a camera's ring slots come round again and again
    pinned_views: dict[int, tuple] = field(default_factory=dict)


class CudaCompletion(Completion):
    """
    Events around one launch.

    Polling never blocks, and the events go back to the engine's pool. ``issued_ns`` and
    ``seen_ns`` (``time.monotonic_ns``): when the launch was issued, and when the host first saw
    it done; its GPU interval lies between them.
    """

    __slots__ = ('_engine', 'events', '_interval', 'issued_ns', 'seen_ns')

    def __init__(self, engine: 'CudaEngine', events: tuple[Any, Any], issued_ns: int):
        self._engine = engine
        self.events = events
        self._interval: tuple[int, int] | None = None
        self.issued_ns = issued_ns
        self.seen_ns: int | None = None

    def done(self) -> bool:
        if self._engine._query(self.events[1]):
            if self.seen_ns is None:
                self.seen_ns = time.monotonic_ns()
            return True
        return False

    def wait(self) -> None:
        self._engine._synchronize(self.events[1])
        if self.seen_ns is None:
            self.seen_ns = time.monotonic_ns()

    def interval(self) -> tuple[int, int]:
        """
        Return (start_ns, end_ns) of the launch on the host's ``time.monotonic_ns`` clock.

        Only once done.
        """
        if self._interval is None:
            self._interval = self._engine._host_interval(self)
        return self._interval

    def __del__(self):
        self._engine._recycle(self.events)


class CudaEngine(Calibration, Engine):
    """Runs the network's kernel layers on one GPU, fused over pipelines, on a pool of streams."""

    name = 'cuda'

    def __init__(self, network: Network, weights: Weights, device_id: int = 0, streams: int = 16,
                 max_batch: int = MAX_FRAMES, cost_table_path: str | os.PathLike | None = None,
                 kernel_arch: str | None = None, batched_copies: bool = True,
                 segment_graphs: bool = True):
        """
        ``kernel_arch`` None compiles for the device's own sm_XY.

        A virtual architecture such as 'compute_75' builds PTX that the driver JIT-compiles for
        this device: the code paths of older GPUs (no cp.async before sm_80) then run, and can be
        checked, on a newer one. ``batched_copies``: a kernel's uploads go to the driver in one
        ``cuMemcpyBatchAsync`` call where it has one (False: one PyCUDA copy per frame, as on
        drivers without it). ``segment_graphs``: a segment of several layers
        (:meth:`launch_layers`) is one CUDA graph launch where the driver has the graph calls
        (:mod:`.graphs`; False: one kernel launch per layer).
        """
        super().__init__(network)
        if not 1 <= max_batch <= MAX_FRAMES:
            raise ValueError(f'max_batch={max_batch}: '
                             f'allowed 1..{MAX_FRAMES} frames per kernel launch')
        if streams < 1:
            raise ValueError(f'streams={streams}: must be >= 1')
        self.max_batch = max_batch
        self.streams = streams
        self.cost_table_path = os.fspath(cost_table_path) if cost_table_path is not None else None
        self.allocations = 0
        self._closed = True  # until the device is set up
        self._drv = drv = import_pycuda()
        weights = check_weights(network, weights, 'weights')
        self._pipelines: dict[Any, _Pipeline] = {}
        self._plans: dict[tuple[int, int], Plan] = {}
        self._resident: dict[str, int] = {}
        self._free_events: list[tuple[Any, Any]] = []
        # stream index -> side streams, each with its join event
        self._sides: dict[int, list[tuple[Any, Any]]] = {}
        self._forks: dict[int, Any] = {}  # stream index -> the event side streams wait for
        self._staging_pool: ThreadPoolExecutor | None = None
        self._registered: dict[int, np.ndarray] = {}  # id -> array returned by pin()
        # (height, width, step, encoding) -> the kernel's image meta
        self._metas: dict[tuple, np.ndarray] = {}
        # the device addresses a kernel takes, a column per open pipeline: row 0 its image, row
        # i + 1 its output of kernel layer i (so layer i reads row i and writes row i + 1); and
        # each pipeline's image meta. A launch gathers its frames' columns once (_columns_of)
        # and every kernel copies two rows of them into its argument record.
        self._addresses = np.zeros((len(self.layers) + 1, 0), np.uint64)
        self._meta_rows = np.zeros((0, 4), np.int32)
        self._free_columns: list[int] = []
        # a kernel's frame copies in one driver call (None: one PyCUDA call per frame)
        self._copies: CopyBatch | None = None
        # segments as CUDA graphs (None: kernel by kernel)
        self._graphs: ChainGraphs | None = None
        self._device_buffers: list[Any] = []
        self._cost_table: CostTable | None = None
        self._conv_tile: tuple[int, int] | None = None
        try:
            drv.init()
            count = drv.Device.count()
            if not 0 <= device_id < count:
                raise EngineError(f'CUDA device {device_id} does not exist '
                                  f'({count} device(s) found)')
            self.device_id = device_id
            device = drv.Device(device_id)
            self._device_name = device.name()
            self._context = primary_context(device_id, device)
            self._activate()
            self._closed = False
            attribute = drv.device_attribute
            self._sm_count = device.get_attribute(attribute.MULTIPROCESSOR_COUNT)
            self._sm_limits = {
                'threads': device.get_attribute(attribute.MAX_THREADS_PER_MULTIPROCESSOR),
                'blocks': device.get_attribute(attribute.MAX_BLOCKS_PER_MULTIPROCESSOR),
                'registers': device.get_attribute(attribute.MAX_REGISTERS_PER_MULTIPROCESSOR),
                'shared': device.get_attribute(attribute.MAX_SHARED_MEMORY_PER_MULTIPROCESSOR),
                'reserved': device.get_attribute(attribute.RESERVED_SHARED_MEMORY_PER_BLOCK)}
            arch = kernel_arch or 'sm_%d%d' % device.compute_capability()
            self._modules = [drv.module_from_buffer(cubin)
                             for cubin in compiled_kernels(arch).values()]
            self._functions: dict[str, Any] = {}
            self._params = [self._upload_params(layer, layer_params(network, weights, layer))
                            for layer in self.layers]
            self._streams = [drv.Stream() for _ in range(streams)]
            # where images are uploaded ahead of their launches (:meth:`upload`)
            self._copy_stream = drv.Stream()
            self.allocations += streams + 1
            self._copies = self._probe_copies() if batched_copies else None
            calls = graph_api() if segment_graphs else None
            if calls is not None:
                self._graphs = ChainGraphs(calls, drv, self._plan, self._function, drv.Stream())
                self.allocations += 1
            self._ref_event = drv.Event()
            self.allocations += 1
            drv.Context.synchronize()
            self._ref_ns = time.monotonic_ns()
            self._ref_event.record()
            self._ref_event.synchronize()
        except drv.Error as error:
            self.close()
            raise EngineError(f'CUDA device {device_id}: {error}') from error
        except EngineError:
            self.close()
            raise

    # ----------------------------------------------------------------- device plumbing
    @property
    def device_name(self) -> str:
        return self._device_name

    @property
    def batched_copies(self) -> bool:
        """Whether a kernel's uploads go to the driver in one call."""
        return self._copies is not None

    @property
    def graph_counts(self) -> dict[str, int] | None:
        """
        How segments went as CUDA graphs: graphs made and alive, graph launches, refused ones.

        None when segments are launched kernel by kernel.
        """
        return None if self._graphs is None else self._graphs.counts()

    def _probe_copies(self) -> CopyBatch | None:
        """
        Return a copy batch if the driver has one and it copies right, else None.

        The check is a 16-byte round trip.
        """
        function = CopyBatch.function()
        if function is None:
            return None
        copies = CopyBatch(function)
        host = self._pinned(16, np.uint8)
        device = self._mem_alloc(16)
        try:
            host[:] = np.arange(1, 17, dtype=np.uint8)
            copies.dst[0], copies.src[0], copies.size[0] = int(device), host.ctypes.data, 16
            copies.issue(1, self._streams[0])
            back = np.zeros(16, np.uint8)
            self._streams[0].synchronize()
            self._drv.memcpy_dtoh(back, device)
            return copies if np.array_equal(back, host) else None
        except EngineError:
            return None
        finally:
            device.free()
            host.base.free()

    def _activate(self) -> None:
        """
        Make this engine's context the current one on this thread.

        A thread that uses one engine pushes it once; one that switches between devices pops the
        other device's context first, so the stack never grows and the current context is always
        the engine's own.
        """
        contexts = thread_contexts(self._drv)
        if contexts.current is not self._context:
            contexts.pop_all()
            contexts.push(self._context)

    def check(self) -> None:
        """
        Synchronise the context.

        A sticky error (an illegal address, a lost device) surfaces here.
        """
        self._check_open()
        self._activate()
        try:
            self._drv.Context.synchronize()
        except self._drv.Error as error:
            raise EngineError(f'CUDA device {self.device_id}: {error}') from error

    def _check_open(self) -> None:
        if self._closed:
            raise EngineError('the CUDA engine is closed')

    def _mem_alloc(self, nbytes: int):
        buffer = self._drv.mem_alloc(max(int(nbytes), 1))
        self.allocations += 1
        return buffer

    def _to_device(self, array: np.ndarray):
        buffer = self._drv.to_device(np.ascontiguousarray(array))
        self.allocations += 1
        self._device_buffers.append(buffer)
        return buffer

    def _pinned(self, shape, dtype) -> np.ndarray:
        array = self._drv.pagelocked_empty(shape, dtype)
        self.allocations += 1
        return array

    def _mapped(self, shape, dtype) -> tuple[np.ndarray, int]:
        """Return page-locked host memory the device can address, and its device address."""
        array = self._drv.pagelocked_empty(shape, dtype,
                                           mem_flags=self._drv.host_alloc_flags.DEVICEMAP)
        self.allocations += 1
        return array, array.base.get_device_pointer()

    def _function(self, name: str):
        function = self._functions.get(name)
        if function is None:
            for module in self._modules:
                try:
                    function = module.get_function(name)
                    break
                except self._drv.LogicError:  # not in this module
                    continue
            else:
                raise EngineError(f'kernel {name!r} is in none of {", ".join(KERNEL_FILES)}')
            self._functions[name] = function
        return function

    def _upload_params(self, layer, params: dict[str, np.ndarray]) -> dict[str, int]:
        """Device copies of one layer's parameters, laid out for its kernel (and their sizes)."""
        return {key: int(self._to_device(value)) if isinstance(value, np.ndarray) else value
                for key, value in param_layout(layer, params).items()}

    # ----------------------------------------------------------------- launch plans
    @property
    def conv_tile(self) -> tuple[int, int] | None:
        """
        Force one (BM, BN) conv2d tile for every conv launch (tests, benchmarks).

        None picks per launch.
        """
        return self._conv_tile

    @conv_tile.setter
    def conv_tile(self, tile: tuple[int, int] | None) -> None:
        if tile is not None and tuple(tile) not in CONV_TILES:
            raise ValueError(f'conv_tile={tile!r}: '
                             f'allowed {", ".join(map(str, CONV_TILES))} or None')
        self._conv_tile = None if tile is None else tuple(tile)
        self._plans.clear()
        if self._graphs is not None:
            self._activate()
            self._drv.Context.synchronize()
            self._graphs.clear()

    def _plan(self, index: int, frames: int) -> Plan:
        plan = self._plans.get((index, frames))
        if plan is None:
            plan = self._plans[(index, frames)] = self._make_plan(index, frames)
        return plan

    def _make_plan(self, index: int, frames: int) -> Plan:
        name, grid, shared, args = launch_record(self.layers[index], self._params[index], frames,
                                                 self._sm_count, self._conv_tile)
        return Plan(self._function(name), name, grid, shared, args)

    def _chunks(self, count: int) -> list[int]:
        """
        Return the frames of each kernel launch when ``count`` frames are fused.

        At most ``max_batch`` each.
        """
        whole, rest = divmod(count, self.max_batch)
        return [self.max_batch] * whole + ([rest] if rest else [])

    def kernel_name(self, layer_index: int, batch: int) -> str:
        """
        Return the kernel variant a launch of ``batch`` frames of the layer runs.

        ``batch`` is up to ``max_batch``.
        """
        self._check_open()
        return self._plan(layer_index, min(batch, self.max_batch)).name

    def _resident_blocks(self, plan: Plan) -> int:
        """Blocks of the plan's kernel one SM holds at once (threads, registers, shared memory)."""
        key = f'{plan.name}/{plan.shared}'
        blocks = self._resident.get(key)
        if blocks is None:
            blocks = self._resident[key] = resident_blocks(
                self._sm_limits, plan.function.num_regs, plan.function.shared_size_bytes,
                plan.shared)
        return blocks

    def tb_ratio(self, layer_index: int, batch: int) -> float:
        """
        Return the tbRatio of a launch of ``batch`` frames.

        Thread blocks launched / (SMs x blocks resident per SM).
        """
        self._check_open()
        if not 0 <= layer_index < len(self.layers):
            raise ValueError(f'layer index {layer_index!r} out of range 0..{len(self.layers) - 1}')
        if batch < 1:
            raise ValueError(f'batch={batch}: must be >= 1')
        self._activate()
        total = 0.0
        for frames in self._chunks(batch):
            plan = self._plan(layer_index, frames)
            total += plan.blocks / (self._sm_count * self._resident_blocks(plan))
        return total

    # ----------------------------------------------------------------- pipelines
    def _pipeline(self, pid) -> _Pipeline:
        try:
            return self._pipelines[pid]
        except KeyError:
            raise ValueError(f'pipeline {pid!r} is not open (open: '
                             f'{sorted(self._pipelines, key=str)})') from None

    def open_pipeline(self, pid) -> None:
        self._check_open()
        if pid in self._pipelines:
            raise ValueError(f'pipeline {pid!r} is already open')
        self._activate()
        offsets, total = [], 0
        for layer in self.layers[:-1]:
            offsets.append(total)
            total += -(-math.prod(layer.out_shape) * 4 // 256) * 256
        try:
            buffer = self._mem_alloc(total)
            # the last kernel writes each frame's result there over the bus: no download
            result, result_address = self._mapped(self.layers[-1].out_shape, np.float32)
            copied = self._drv.Event()
            self.allocations += 1
        except self._drv.Error as error:
            raise EngineError(f'pipeline {pid!r}: allocating {total / 2**20:.1f} MiB of '
                              f'activations failed: {error}') from error
        outputs = [int(buffer) + offset for offset in offsets] + [result_address]
        pipeline = _Pipeline(buffer, outputs, result, copied, column=self._take_column())
        self._addresses[1:, pipeline.column] = pipeline.outputs
        self._pipelines[pid] = pipeline

    def _take_column(self) -> int:
        """Return a free column of the address table, growing it (doubling) when none is."""
        if not self._free_columns:
            have = self._addresses.shape[1]
            grown = max(16, 2 * have)
            self._addresses = np.concatenate(
                (self._addresses, np.zeros((self._addresses.shape[0], grown - have), np.uint64)),
                axis=1)
            self._meta_rows = np.concatenate(
                (self._meta_rows, np.zeros((grown - have, 4), np.int32)))
            self._free_columns = list(range(grown - 1, have - 1, -1))
        return self._free_columns.pop()

    def _set_meta(self, pipeline: _Pipeline, meta: np.ndarray) -> None:
        if meta is not pipeline.meta:
            pipeline.meta = meta
            self._meta_rows[pipeline.column] = meta

    def _columns_of(self, chunk: list[_Pipeline]) -> tuple[np.ndarray, list[int]]:
        """Return the address table's columns of ``chunk`` (a copy), and their indices."""
        columns = [p.column for p in chunk]
        return self._addresses[:, columns], columns

    def close_pipeline(self, pid) -> None:
        pipeline = self._pipeline(pid)
        self._activate()
        pipeline.copied.synchronize()
        if pipeline.uploaded is not None:
            pipeline.uploaded.events[1].synchronize()
        del self._pipelines[pid]
        self._free_pipeline(pipeline)

    def _free_pipeline(self, pipeline: _Pipeline) -> None:
        self._addresses[:, pipeline.column] = 0
        self._free_columns.append(pipeline.column)
        pipeline.buffer.free()
        pipeline.result.base.free()
        if pipeline.staging is not None:
            pipeline.staging.base.free()
        if pipeline.image is not None:
            pipeline.image.free()

    # ----------------------------------------------------------------- inputs
    def pin(self, array: np.ndarray) -> np.ndarray:
        """
        Page-lock a contiguous 1-D uint8 host array the caller owns and return it.

        The array is registered with ``cuMemHostRegister``. Images that are views of it are
        uploaded straight from it, with no staging copy; the caller must not rewrite such an image
        until its frame's layer-0 launch has completed.

        The driver is called through ctypes: PyCUDA's ``register_host_memory`` sets the NumPy base
        of the array it returns twice, which NumPy 2 refuses.
        """
        self._check_open()
        if array.dtype != np.uint8 or array.ndim != 1 or not array.flags.c_contiguous:
            raise ValueError('pin: expected a contiguous 1-D uint8 array, '
                             f'got {array.shape} {array.dtype}')
        self._activate()
        result = driver_api().cuMemHostRegister_v2(array.ctypes.data, array.nbytes, 0)
        if result:
            raise EngineError(f'page-locking {array.nbytes / 2**20:.1f} MiB of host memory '
                              f'failed: cuMemHostRegister returned CUresult {result}')
        self._registered[id(array)] = array
        return array

    def unpin(self, array: np.ndarray) -> None:
        """Undo :meth:`pin` (after every launch reading from it has completed)."""
        if self._registered.pop(id(array), None) is not None and not self._closed:
            for pipeline in self._pipelines.values():
                views = pipeline.pinned_views
                for key in [key for key, entry in views.items() if entry[0].base is array]:
                    del views[key]
            self._activate()
            driver_api().cuMemHostUnregister(array.ctypes.data)

    def set_input(self, pid, image: np.ndarray, encoding: str) -> None:
        """
        Stage ``image`` as the pipeline's next frame.

        The copy to the device is part of the next launch of layer 0. An image in memory given to
        :meth:`pin` is uploaded from where it is; any other is first copied into the pipeline's own
        pinned buffer, keeping its row step when rows are contiguous.
        """
        copy = self._prepare_staging(pid, image, encoding)
        if copy is not None:
            np.copyto(*copy)

    def set_inputs(self, items: Sequence[tuple[Any, np.ndarray, str]]) -> None:
        """
        Do ``set_input`` for several pipelines.

        The staging copies are spread over STAGING_THREADS threads (numpy releases the GIL while it
        copies; one thread reaches about a third of the host's copy bandwidth).
        """
        pids = [pid for pid, _, _ in items]
        if len(set(pids)) != len(pids):
            raise ValueError(f'set_inputs: pipelines {pids} repeat a pid')
        copies = [copy for copy in (self._prepare_staging(pid, image, encoding)
                                    for pid, image, encoding in items) if copy is not None]
        if len(copies) < 2:
            for target, source in copies:
                np.copyto(target, source)
            return
        if self._staging_pool is None:
            self._staging_pool = ThreadPoolExecutor(STAGING_THREADS,
                                                    thread_name_prefix='s3dnn-staging')
        for _ in self._staging_pool.map(np.copyto, *zip(*copies)):
            pass  # map re-raises a copy's error here

    def _prepare_staging(self, pid, image: np.ndarray,
                         encoding: str) -> tuple[np.ndarray, np.ndarray] | None:
        """
        Do everything of ``set_input`` but the copy itself.

        That is the checks, the frame's geometry, the device buffer, and for an image outside
        pinned memory the pipeline's staging buffer (after its previous upload). Returns the
        (target, source) views of that copy, or None for a pinned image.
        """
        pipeline = self._pipeline(pid)
        pipeline.ahead = False  # a new image: no copy made so far holds it
        known = pipeline.pinned_views.get(id(image))
        if known is not None and known[0] is image and known[1] == encoding:
            pipeline.upload, pipeline.upload_ptr = known[2:4]
            self._set_meta(pipeline, known[4])
            pipeline.upload_staged = False
            return None
        channels = check_image(image, encoding)
        height, width = image.shape[:2]
        row = width * channels
        strides = image.strides
        keep_step = strides[2] == 1 and strides[1] == channels and strides[0] >= row
        step = strides[0] if keep_step else row
        nbytes = (height - 1) * step + row
        self._activate()
        if nbytes > pipeline.image_capacity:
            try:
                device = self._mem_alloc(nbytes)
            except self._drv.Error as error:
                raise EngineError(f'pipeline {pid!r}: a device buffer for a {height}x{width} '
                                  f'{encoding} image failed: {error}') from error
            if pipeline.image is not None:
                pipeline.copied.synchronize()
                pipeline.image.free()
            pipeline.image, pipeline.image_ptr, pipeline.image_capacity = (
                device, int(device), nbytes)
            self._addresses[0, pipeline.column] = pipeline.image_ptr
        geometry = (height, width, step, encoding)
        meta = self._metas.get(geometry)
        if meta is None:
            order = ENCODINGS[encoding][1]
            meta = self._metas[geometry] = np.array(
                (height, width, step, channels | order[0] << 8 | order[1] << 16 | order[2] << 24),
                np.int32)
        self._set_meta(pipeline, meta)
        registered = self._registered.get(id(image.base)) if keep_step else None
        if registered is not None and registered is image.base:
            address = image.__array_interface__['data'][0]
            pipeline.upload_ptr, pipeline.upload_staged = address, False
            if step == row:  # packed rows: the image view is the page-locked span to upload
                pipeline.upload = image
            else:
                offset = address - registered.__array_interface__['data'][0]
                pipeline.upload = registered[offset:offset + nbytes]
            views = pipeline.pinned_views
            if len(views) >= PINNED_VIEWS:
                views.clear()
            views[id(image)] = (image, encoding, pipeline.upload, address, meta)
            return None
        pipeline.copied.synchronize()  # the previous frame's upload has left the staging buffer
        if nbytes > pipeline.staging_capacity:
            try:
                staging = self._pinned(nbytes, np.uint8)
            except self._drv.Error as error:
                raise EngineError(f'pipeline {pid!r}: staging a {height}x{width} '
                                  f'{encoding} image failed: {error}') from error
            if pipeline.staging is not None:
                pipeline.staging.base.free()
            pipeline.staging, pipeline.staging_capacity = staging, nbytes
        pipeline.upload, pipeline.upload_staged = pipeline.staging[:nbytes], True
        pipeline.upload_ptr = pipeline.staging.ctypes.data
        if keep_step:
            source = np.lib.stride_tricks.as_strided(image, (height, row), (step, 1))
            target = np.lib.stride_tricks.as_strided(pipeline.staging, (height, row), (step, 1))
        else:
            source = image
            target = pipeline.staging[:nbytes].reshape(height, width, channels)
        return target, source

    # ----------------------------------------------------------------- launches
    def _take_events(self) -> tuple[Any, Any]:
        try:
            return self._free_events.pop()
        except IndexError:
            self.allocations += 2
            return self._drv.Event(), self._drv.Event()

    def _recycle(self, events: tuple[Any, Any]) -> None:
        if not self._closed:
            self._free_events.append(events)

    def _enqueue(self, index: int, chunk: tuple[np.ndarray, list[int]], stream) -> None:
        """
        Issue one kernel launch of a layer over ``chunk`` (at most ``max_batch`` frames).

        ``chunk``: the frames' address columns and their indices (:meth:`_columns_of`). The plan's
        argument record gets this launch's pointers (two rows of the columns, and the images'
        metas for layer 0) and goes to ``cuLaunchKernel`` as it is (no per-launch packing).
        """
        addresses, columns = chunk
        frames = len(columns)
        plan = self._plans.get((index, frames)) or self._plan(index, frames)
        words = plan.words
        words[:frames] = addresses[index]
        words[MAX_FRAMES:MAX_FRAMES + frames] = addresses[index + 1]
        if index == 0:
            plan.args['meta'][0, :frames] = self._meta_rows[columns]
        plan.function._launch_kernel(plan.grid, BLOCK, plan.buffer, plan.shared, stream)
        self.kernel_launches += 1

    def _split(self, stream_index: int,
               pipelines: list[_Pipeline]) -> list[tuple[Any, Any, list[_Pipeline]]]:
        """
        Return (stream, join event or None, frames) of each kernel launch of a fused launch.

        The first runs on the launch's stream, the others on side streams of that stream (made on
        first use, each with the event that joins it back), so the kernels of one fused launch run
        side by side; with a one-stream engine all run on its stream, one after another.
        """
        main = self._streams[stream_index]
        parts, start = [], 0
        for j, frames in enumerate(self._chunks(len(pipelines))):
            stream, joined = main, None
            if j and len(self._streams) > 1:
                sides = self._sides.setdefault(stream_index, [])
                while len(sides) < j:
                    sides.append((self._drv.Stream(),
                                  self._drv.Event(self._drv.event_flags.DISABLE_TIMING)))
                    self.allocations += 2
                stream, joined = sides[j - 1]
            parts.append((stream, joined, pipelines[start:start + frames]))
            start += frames
        return parts

    def launch(self, layer_index: int, pids: Sequence, stream: int) -> CudaCompletion:
        """
        Run a kernel layer for the frames of ``pids``.

        Layer 0 starts with each frame's image upload (or a wait for the copy :meth:`upload` made
        ahead); the last layer's kernel writes each frame's result into its page-locked result
        array (mapped into the device's address space), so no copy follows it. A launch of more
        than ``max_batch`` frames is several kernels, each with its frames' uploads, run side by
        side on side streams forked from and joined back into stream ``stream % streams``; the
        completion's two events on that stream enclose all of it.
        """
        return self._issue(layer_index, 1, pids, stream)

    def launch_layers(self, first: int, count: int, pids: Sequence,
                      stream: int) -> CudaCompletion:
        """
        Run layers ``first`` .. ``first + count - 1`` for ``pids``, as one launch.

        Each kernel of :meth:`launch` issues the whole segment on its stream, one layer after
        another, so one fork, one join and one pair of events enclose all of it.
        """
        return self._issue(first, count, pids, stream)

    def _issue(self, first: int, count: int, pids: Sequence, stream: int) -> CudaCompletion:
        self._check_open()
        self.check_launch(first, pids, count)
        try:
            pipelines = [self._pipelines[pid] for pid in pids]
        except KeyError:
            pipelines = [self._pipeline(pid) for pid in pids]  # raises, naming the pipeline
        self._activate()
        drv = self._drv
        stream_index = stream % len(self._streams)
        main = self._streams[stream_index]
        if first == 0:
            for pid, p in zip(pids, pipelines):
                if p.upload is None:
                    raise ValueError(f'launch of layer 0 ({self.layers[0].name}): '
                                     f'pipeline {pid!r} has no staged input')
        parts = (self._split(stream_index, pipelines) if len(pipelines) > self.max_batch
                 else [(main, None, pipelines)])
        layers = range(first, first + count)
        graphs = self._graphs if count > 1 else None
        graphed, made = [], graphs.made if graphs is not None else 0
        events = self._take_events()
        issued = time.monotonic_ns()
        try:
            events[0].record(main)
            if len(parts) > 1 and parts[1][1] is not None:
                fork = self._forks.get(stream_index)
                if fork is None:
                    fork = self._forks[stream_index] = drv.Event(drv.event_flags.DISABLE_TIMING)
                    self.allocations += 1
                fork.record(main)
            for target, joined, chunk in parts:
                if joined is not None:
                    target.wait_for_event(fork)
                columns = self._columns_of(chunk)
                instance = None
                if graphs is not None:
                    if first == 0:
                        self._receive(chunk, target)
                    instance = graphs.launch(first, count, columns[0],
                                             self._meta_rows[columns[1]] if first == 0 else None,
                                             target)
                if instance is not None:
                    graphed.append(instance)
                    self.kernel_launches += count
                else:
                    for layer_index in layers:
                        if layer_index == 0 and graphs is None:
                            self._receive(chunk, target)
                        self._enqueue(layer_index, columns, target)
                if joined is not None:
                    joined.record(target)
                    main.wait_for_event(joined)
            events[1].record(main)
        except (drv.Error, EngineError) as error:
            self._free_events.append(events)
            names = ', '.join(f'{i} ({self.layers[i].name})' for i in layers)
            raise EngineError(f'launch of layer {names} '
                              f'for pipelines {list(pids)} failed: {error}') from error
        completion = CudaCompletion(self, events, issued)
        for instance in graphed:
            instance.last = completion
        if graphs is not None and graphs.made != made:
            # each graph made: the graph, its records on the host and on the device
            self.allocations += 3 * (graphs.made - made)
        return completion

    def upload(self, pids: Sequence) -> CudaCompletion | None:
        """
        Start copying the staged images of ``pids`` to the device, ahead of their layer 0.

        The copies go to the engine's copy stream (one driver call per ``MAX_FRAMES`` images), so
        they run while the host is still deciding what to launch; each pipeline's next layer-0
        launch waits for its copy instead of making it. Returns the copies' completion (its
        interval is GPU busy time), None for no pids.
        """
        self._check_open()
        pipelines = [self._pipeline(pid) for pid in pids]
        for pid, p in zip(pids, pipelines):
            if p.upload is None:
                raise ValueError(f'upload: pipeline {pid!r} has no staged input')
        if not pipelines:
            return None
        self._activate()
        stream = self._copy_stream
        events = self._take_events()
        issued = time.monotonic_ns()
        try:
            events[0].record(stream)
            for start in range(0, len(pipelines), MAX_FRAMES):
                self._upload(pipelines[start:start + MAX_FRAMES], stream)
            events[1].record(stream)
        except (self._drv.Error, EngineError) as error:
            self._free_events.append(events)
            raise EngineError(f'uploading the images of pipelines {list(pids)} '
                              f'failed: {error}') from error
        completion = CudaCompletion(self, events, issued)
        for p in pipelines:
            p.uploaded, p.ahead = completion, True
        return completion

    def _receive(self, chunk: list[_Pipeline], stream) -> None:
        """
        Queue what brings ``chunk``'s staged images to the device before layer 0 on ``stream``.

        A wait for the copies made ahead (:meth:`upload`; a copy ahead of an image staged again
        since is still waited for, so that the new copy lands after it), the copies of the rest.
        """
        waited, copy = None, []
        for p in chunk:
            uploaded = p.uploaded
            if uploaded is not None:
                if uploaded is not waited:  # a batch's pipelines share one copy, usually in a row
                    stream.wait_for_event(uploaded.events[1])
                    waited = uploaded
                p.uploaded = None
            if p.ahead:
                p.ahead = False
            else:
                copy.append(p)
        if copy:
            self._upload(copy, stream)

    def _upload(self, chunk: list[_Pipeline], stream) -> None:
        """Queue the copies of ``chunk``'s staged images to the device on ``stream``."""
        copies = self._copies
        if copies is not None and len(chunk) > 1:
            count = len(chunk)
            copies.dst[:count] = [p.image_ptr for p in chunk]
            copies.src[:count] = [p.upload_ptr for p in chunk]
            copies.size[:count] = [p.upload.nbytes for p in chunk]
            copies.issue(count, stream)
        else:
            for p in chunk:
                self._drv.memcpy_htod_async(p.image, p.upload, stream)
        for p in chunk:
            if p.upload_staged:
                p.copied.record(stream)

    def _query(self, event) -> bool:
        self._activate()
        try:
            return event.query()
        except self._drv.Error as error:
            raise EngineError(f'GPU failure: {error}') from error

    def _synchronize(self, event) -> None:
        self._activate()
        try:
            event.synchronize()
        except self._drv.Error as error:
            raise EngineError(f'GPU failure: {error}') from error

    def _host_interval(self, completion: CudaCompletion) -> tuple[int, int]:
        start, end = completion.events
        self._activate()
        try:
            offset_ms = start.time_since(self._ref_event)
            duration_ms = end.time_since(start)
        except self._drv.Error as error:
            raise EngineError(f'reading launch events failed (not done yet?): {error}') from error
        start_ns = self._ref_ns + round(offset_ms * 1e6)
        end_ns = start_ns + round(duration_ms * 1e6)
        # the GPU's clock and the host's drift apart (0.1 ms within seconds on one H200 host): the
        # mapping moves to keep each launch between its issue and the host seeing it done
        seen = completion.seen_ns
        shift = (seen - end_ns if seen is not None and end_ns > seen
                 else max(0, completion.issued_ns - start_ns))
        if shift:
            self._ref_ns += shift
            start_ns += shift
            end_ns += shift
        if offset_ms > REBASE_MS:  # float32 ms lose precision far from the reference: move it here
            completion.events = (self._ref_event, end)  # the old reference goes back to the pool
            self._ref_event, self._ref_ns = start, start_ns
        return start_ns, end_ns

    def result(self, pid) -> np.ndarray:
        """
        Return the page-locked (2, k) result of the pipeline's last frame.

        The last layer's kernel writes it in place: read it once that launch is done, and copy it
        before the pipeline's next frame reaches the last layer.
        """
        return self._pipeline(pid).result

    # ------------------------------------------------------- host access for tests and calibration
    def layer_output(self, pid, layer_index: int) -> np.ndarray:
        """
        Return a host copy of the pipeline's output of kernel layer ``layer_index``.

        This synchronises the device.
        """
        pipeline = self._pipeline(pid)
        self._activate()
        self._drv.Context.synchronize()
        out = np.empty(self.layers[layer_index].out_shape, np.float32)
        self._drv.memcpy_dtoh(out, pipeline.outputs[layer_index])
        return out

    def set_layer_output(self, pid, layer_index: int, value: np.ndarray) -> None:
        """
        Overwrite the pipeline's output of kernel layer ``layer_index``.

        That output is the next layer's input.
        """
        pipeline = self._pipeline(pid)
        shape = self.layers[layer_index].out_shape
        value = np.ascontiguousarray(value, dtype=np.float32)
        if value.shape != shape:
            raise ValueError(f'layer {layer_index} output has shape {shape}, got {value.shape}')
        self._activate()
        self._drv.Context.synchronize()
        self._drv.memcpy_htod(pipeline.outputs[layer_index], value)

    # ----------------------------------------------------------------- shutdown
    def close(self) -> None:
        """Free every buffer; the engine is unusable afterwards."""
        if self._closed:
            return
        self._closed = True
        if self._staging_pool is not None:
            self._staging_pool.shutdown()
            self._staging_pool = None
        drv = self._drv
        try:
            self._activate()
            drv.Context.synchronize()
            if self._graphs is not None:
                self._graphs.clear()
            for pipeline in self._pipelines.values():
                self._free_pipeline(pipeline)
            for registered in self._registered.values():
                driver_api().cuMemHostUnregister(registered.ctypes.data)
            for buffer in self._device_buffers:
                buffer.free()
        except drv.Error:
            pass  # a failed context cannot free anything; the driver reclaims it with the process
        self._pipelines.clear()
        self._registered.clear()
        self._device_buffers.clear()
        self._free_events.clear()
        self._sides.clear()
        self._forks.clear()
        self._plans.clear()
        self._functions = {}
        self._modules = []
