"""
The CUDA engine's launches and frame copies, on a stand-in driver (no GPU needed).

A kernel's uploads go to the driver as one batch of copies when the engine has one, else as one
PyCUDA copy per frame; the batch hands the driver the arrays it filled, with one set of attributes
(sources read in stream order). No copy follows the last kernel: it writes the results into
page-locked memory mapped into the device's address space. A segment of layers is each kernel's
layers back to back on its stream, inside one fork/join and one pair of events; up to
MAX_FRAMES frames (the dispatcher's largest fused batch) it is one kernel per layer (the plans
themselves: test_cuda_plans.py).
"""
import ctypes
from types import SimpleNamespace

import numpy as np
import pytest
from s3dnn_ros.engine.base import EngineError
from s3dnn_ros.engine.cuda import CudaEngine, MAX_FRAMES
from s3dnn_ros.engine.cuda.abi import COPY_ATTRIBUTES, COPY_ORDER_STREAM
from s3dnn_ros.engine.cuda.driver import CopyBatch
from s3dnn_ros.scheduler.policies import DEFAULT_MAX_BATCH

STREAM = SimpleNamespace(handle=0x5000)


def _words(address: int, count: int) -> list[int]:
    return list((ctypes.c_uint64 * count).from_address(address))


class _BatchCall:
    """Stands in for ``cuMemcpyBatchAsync_v2``: records what the driver would read."""

    def __init__(self, result: int = 0):
        self.result = result
        self.calls = []

    def __call__(self, dst, src, size, count, attributes, first, attribute_count, stream):
        raw = (ctypes.c_char * (attribute_count * COPY_ATTRIBUTES.itemsize)).from_address(
            attributes)
        self.calls.append({'dst': _words(dst, count), 'src': _words(src, count),
                           'size': _words(size, count), 'first': _words(first, attribute_count),
                           'attributes': np.frombuffer(bytes(raw), COPY_ATTRIBUTES).copy(),
                           'stream': stream})
        return self.result


class _Engine:
    """The engine's copy methods over a stand-in driver."""

    _upload = CudaEngine._upload

    def __init__(self, copies):
        self._copies = copies
        self.log = []
        log = self.log
        self._drv = SimpleNamespace(
            memcpy_htod_async=lambda dst, src, stream: log.append(('htod', dst, src.nbytes)))


def _pipelines(log, count=3, staged=(1,)):
    pipelines = []
    for i in range(count):
        upload = np.zeros(100 + i, np.uint8)
        pipelines.append(SimpleNamespace(
            image=f'image{i}', image_ptr=0x1000 + i, upload=upload, upload_ptr=0x2000 + i,
            upload_staged=i in staged,
            copied=SimpleNamespace(record=lambda stream, i=i: log.append(('copied', i))),
            uploaded=None, ahead=False))
    return pipelines


def test_a_kernels_uploads_are_one_batch_of_copies():
    call = _BatchCall()
    engine = _Engine(CopyBatch(call))
    chunk = _pipelines(engine.log)
    engine._upload(chunk, STREAM)
    (upload,) = call.calls
    assert upload['dst'] == [0x1000, 0x1001, 0x1002] and upload['src'] == [0x2000, 0x2001, 0x2002]
    assert upload['size'] == [100, 101, 102]
    assert upload['stream'] == STREAM.handle and upload['first'] == [0]
    assert upload['attributes']['order'].tolist() == [COPY_ORDER_STREAM]
    # no copy frame by frame; the staged image's buffer is free again once its upload has run
    assert engine.log == [('copied', 1)]


def test_one_frame_or_no_batch_is_copied_frame_by_frame():
    call = _BatchCall()
    alone = _Engine(CopyBatch(call))
    (pipeline,) = _pipelines(alone.log, count=1, staged=())
    alone._upload([pipeline], STREAM)
    assert call.calls == [] and alone.log == [('htod', 'image0', 100)]
    without = _Engine(None)
    chunk = _pipelines(without.log, count=2, staged=(0, 1))
    without._upload(chunk, STREAM)
    assert without.log == [('htod', 'image0', 100), ('htod', 'image1', 101), ('copied', 0),
                           ('copied', 1)]


def test_a_failed_batch_is_an_engine_error_naming_the_result():
    engine = _Engine(CopyBatch(_BatchCall(result=1)))
    with pytest.raises(EngineError, match='cuMemcpyBatchAsync of 3 copies returned CUresult 1'):
        engine._upload(_pipelines(engine.log), STREAM)


def test_copy_attributes_mirror_cuda_h():
    # CUmemcpyAttributes: srcAccessOrder (enum), srcLocHint and dstLocHint (CUmemLocation: type
    # enum, id int), flags (unsigned int)
    assert COPY_ATTRIBUTES.itemsize == 24
    assert [COPY_ATTRIBUTES.fields[name][1] for name in COPY_ATTRIBUTES.names] == [0, 4, 12, 20]


class _Recorder:
    """Streams and events of a stand-in driver that log what is queued on what."""

    def __init__(self):
        self.log = []
        self.made = 0
        recorder = self

        class Event:
            def __init__(self, flags=0):
                recorder.made += 1
                self.name = f'event{recorder.made}'

            def record(self, stream):
                recorder.log.append(('record', self.name, stream.name))

        class Stream:
            def __init__(self, name=None):
                recorder.made += 1
                self.name = name or f'side{recorder.made}'

            def wait_for_event(self, event):
                recorder.log.append(('wait', self.name, event.name))

        def upload(dst, src, stream):
            recorder.log.append(('upload', dst, stream.name))

        def download(dst, src, stream):
            recorder.log.append(('download', dst, stream.name))

        self.Event, self.Stream = Event, Stream
        # a download would be logged: the engine makes none (the last kernel writes the results)
        self.driver = SimpleNamespace(Error=RuntimeError, Event=Event, Stream=Stream,
                                      event_flags=SimpleNamespace(DISABLE_TIMING=2),
                                      memcpy_htod_async=upload, memcpy_dtoh_async=download)


def _segment_engine(frames: int, max_batch: int):
    """Return a CudaEngine on the stand-in driver, with ``frames`` open pipelines, and its log."""
    from s3dnn_ros.model import alexnet
    recorder = _Recorder()
    engine = object.__new__(CudaEngine)
    engine.layers = alexnet().kernel_layers
    engine._closed, engine.max_batch, engine.allocations = False, max_batch, 0
    # kernel by kernel (a segment as a CUDA graph runs on a GPU: test_cuda_engine.py)
    engine._drv, engine._copies, engine._graphs = recorder.driver, None, None
    engine._streams = [recorder.Stream('main0'), recorder.Stream('main1')]
    engine._sides, engine._forks, engine._free_events = {}, {}, []
    engine._activate = lambda: None
    engine._enqueue = lambda index, chunk, stream: recorder.log.append(
        ('kernel', index, [f'image{column}' for column in chunk[1]], stream.name))
    engine._addresses = np.zeros((len(engine.layers) + 1, frames), np.uint64)
    engine._pipelines = {pid: SimpleNamespace(image=f'image{pid}', upload=np.zeros(8, np.uint8),
                                              upload_staged=False,
                                              outputs=[0] * len(engine.layers),
                                              uploaded=None, ahead=False, column=pid)
                         for pid in range(frames)}
    return engine, recorder.log


def test_a_segment_is_its_layers_back_to_back_inside_one_fork_join_and_one_event_pair():
    """Three frames at max_batch 2: kernels of 2 frames on the launch's stream, 1 on a side one."""
    engine, log = _segment_engine(3, max_batch=2)
    completion = engine.launch_layers(3, 3, [0, 1, 2], 0)
    start, end = (event.name for event in completion.events)
    main, side = ['image0', 'image1'], ['image2']
    (fork,) = engine._forks.values()
    ((side_stream, join),) = engine._sides[0]
    assert log == [('record', start, 'main0'), ('record', fork.name, 'main0'),
                   *[('kernel', layer, main, 'main0') for layer in (3, 4, 5)],
                   ('wait', side_stream.name, fork.name),
                   *[('kernel', layer, side, side_stream.name) for layer in (3, 4, 5)],
                   ('record', join.name, side_stream.name), ('wait', 'main0', join.name),
                   ('record', end, 'main0')]


def test_a_whole_network_segment_uploads_first_and_copies_nothing_after_on_each_kernels_stream():
    engine, log = _segment_engine(3, max_batch=2)
    last = len(engine.layers) - 1
    engine.launch_layers(0, last + 1, [0, 1, 2], 1)
    (side,) = [stream.name for stream, _ in engine._sides[1]]
    for stream, images in (('main1', ['image0', 'image1']), (side, ['image2'])):
        on_stream = [entry for entry in log if entry[-1] == stream and entry[0] != 'record']
        assert on_stream[:len(images)] == [('upload', image, stream) for image in images]
        assert [entry[1] for entry in on_stream if entry[0] == 'kernel'] == list(range(last + 1))
        assert on_stream[-1][:2] == ('kernel', last)
    assert not [entry for entry in log if entry[0] == 'download']
    with pytest.raises(ValueError, match=f'launch of 2 layers from layer {last}'):
        engine.launch_layers(last, 2, [0], 0)


def test_launch_intervals_stay_between_issue_and_seen_done_while_the_clocks_drift():
    """
    The GPU-to-host clock mapping moves when a launch would map outside what the host saw.

    A launch mapped past the moment the host saw it done ends then, and later launches keep that
    correction; one mapped before it was issued starts then.
    """
    from s3dnn_ros.engine.cuda import CudaCompletion

    class Event:
        def __init__(self, ms):
            self.ms = ms

        def time_since(self, other):
            return self.ms - other.ms

    engine = object.__new__(CudaEngine)
    engine._activate, engine._drv = (lambda: None), SimpleNamespace(Error=RuntimeError)
    engine._ref_event, engine._ref_ns = Event(0.0), 1_000_000
    engine._free_events, engine._closed = [], False

    def interval(start_ms, end_ms, issued_ns, seen_ns):
        completion = CudaCompletion(engine, (Event(start_ms), Event(end_ms)), issued_ns)
        completion.seen_ns = seen_ns
        return completion.interval()

    # the GPU's clock runs ahead: 0.1 .. 0.2 ms past the reference, seen done at 1.15 ms
    assert interval(0.1, 0.2, 1_050_000, 1_150_000) == (1_050_000, 1_150_000)
    assert engine._ref_ns == 950_000
    assert interval(0.3, 0.35, 1_200_000, 1_400_000) == (1_250_000, 1_300_000)  # kept
    # mapped before it was issued: moved forward
    assert interval(0.4, 0.45, 1_400_000, 1_500_000) == (1_400_000, 1_450_000)
    assert engine._ref_ns == 1_000_000


def test_a_launch_of_the_largest_fused_batch_is_one_kernel_per_layer():
    assert MAX_FRAMES == DEFAULT_MAX_BATCH
    engine, log = _segment_engine(MAX_FRAMES, max_batch=MAX_FRAMES)
    engine.launch_layers(0, len(engine.layers), list(range(MAX_FRAMES)), 0)
    kernels = [entry for entry in log if entry[0] == 'kernel']
    assert [entry[1] for entry in kernels] == list(range(len(engine.layers)))
    assert all(len(images) == MAX_FRAMES and stream == 'main0' for _, _, images, stream in kernels)
    assert not engine._sides and not engine._forks
    assert [entry[0] for entry in log if entry[0] in ('record', 'wait')] == ['record', 'record']


def _staging_engine(monkeypatch):
    """Return a CudaEngine on a stand-in driver, its one open pipeline and the checks made."""
    from s3dnn_ros.engine.cuda import engine as module
    from s3dnn_ros.engine.cuda.engine import _Pipeline
    checks = []
    monkeypatch.setattr(module, 'check_image',
                        lambda image, encoding: checks.append(encoding) or 3)
    monkeypatch.setattr(module, 'driver_api', lambda: SimpleNamespace(
        cuMemHostRegister_v2=lambda address, size, flags: 0,
        cuMemHostUnregister=lambda address: 0))
    engine = object.__new__(CudaEngine)
    engine._closed, engine._metas, engine._registered = False, {}, {}
    engine._activate = lambda: None
    engine._pinned = lambda nbytes, dtype: np.zeros(nbytes, dtype)
    engine._meta_rows = np.zeros((1, 4), np.int32)
    engine._pipelines = {0: _Pipeline(None, [], None, SimpleNamespace(synchronize=lambda: None),
                                      image_capacity=1 << 20, column=0)}
    return engine, engine._pipelines[0], checks


def test_a_pinned_view_staged_again_skips_the_checks_until_its_memory_is_unpinned(monkeypatch):
    """Every slot of a ring is checked once; its view staged again is taken as it was."""
    engine, pipeline, checks = _staging_engine(monkeypatch)
    slots = engine.pin(np.zeros(3 * 4096, np.uint8))
    view = slots[4096:4096 + 300].reshape(10, 10, 3)
    address = view.ctypes.data
    engine.set_input(0, view, 'rgb8')
    assert (pipeline.upload is view, pipeline.upload_ptr, pipeline.upload_staged) == (
        True, address, False) and checks == ['rgb8']
    engine.set_input(0, view, 'rgb8')  # the same view again: nothing to check or to copy
    assert checks == ['rgb8'] and pipeline.upload is view and pipeline.upload_ptr == address
    engine.set_input(0, view, 'bgr8')  # another encoding is checked
    assert checks == ['rgb8', 'bgr8']
    rgb_code = engine._metas[(10, 10, 30, 'rgb8')][3]
    assert pipeline.meta[3] != rgb_code
    other = np.full((10, 10, 3), 9, np.uint8)  # not in pinned memory: staged
    engine.set_input(0, other, 'rgb8')
    assert pipeline.upload_staged and pipeline.upload.tolist() == [9] * 300
    engine.set_input(0, view, 'bgr8')  # back to the slot as last staged: known, not copied
    assert len(checks) == 3 and pipeline.upload_ptr == address and not pipeline.upload_staged
    assert pipeline.upload is view and pipeline.meta[3] != rgb_code
    engine.set_input(0, view, 'rgb8')
    assert len(checks) == 4 and pipeline.meta[3] == rgb_code
    # the meta a layer-0 kernel reads is the one last staged
    assert engine._meta_rows[0].tolist() == pipeline.meta.tolist()
    # the ring's slots in turn: each checked the first time only
    ring = [slots[k * 4096:k * 4096 + 300].reshape(10, 10, 3) for k in range(3)]
    for _ in range(3):
        for slot in ring:
            engine.set_input(0, slot, 'rgb8')
            assert pipeline.upload is slot and pipeline.upload_ptr == slot.ctypes.data
    assert len(checks) == 7  # each of the three new views once
    engine.unpin(slots)
    assert pipeline.pinned_views == {}
    view[...] = 5
    engine.set_input(0, view, 'rgb8')  # no longer page-locked: copied into the staging buffer
    assert len(checks) == 8 and pipeline.upload_staged and pipeline.upload.tolist() == [5] * 300


class _Pinned(np.ndarray):
    """A host array whose base frees like a PyCUDA page-locked allocation."""

    @property
    def base(self):
        return SimpleNamespace(free=lambda: None)


class _DeviceBuffer:
    """Stands in for a PyCUDA device allocation at a given address."""

    def __init__(self, address: int):
        self.address, self.freed = address, False

    def __int__(self) -> int:
        return self.address

    def free(self) -> None:
        self.freed = True


def test_kernel_arguments_are_the_launchs_columns_of_the_address_table():
    """
    A kernel of layer i reads row i and writes row i + 1 of its frames' columns, in launch order.

    Row 0 is each pipeline's image (moved when it is reallocated), row i + 1 its output of layer
    i; layer 0 also takes the images' metas. Pipelines past the table's width grow it; a closed
    pipeline's column is zeroed and taken by the next one opened.
    """
    from s3dnn_ros.engine.cuda.abi import CONV_ARGS, PREPROCESS_ARGS
    from s3dnn_ros.engine.cuda.plans import Plan
    from s3dnn_ros.model import alexnet
    engine = object.__new__(CudaEngine)
    engine.layers = alexnet().kernel_layers
    engine._closed, engine.allocations, engine._metas, engine._registered = False, 0, {}, {}
    engine.kernel_launches = 0
    engine._activate = lambda: None
    engine._pipelines, engine._plans = {}, {}
    engine._addresses = np.zeros((len(engine.layers) + 1, 0), np.uint64)
    engine._meta_rows = np.zeros((0, 4), np.int32)
    engine._free_columns = []
    addresses = iter(range(0x10000, 0x10000000, 0x10000))
    engine._mem_alloc = lambda nbytes: _DeviceBuffer(next(addresses))
    # a pinned array's base is the PyCUDA allocation
    engine._pinned = lambda shape, dtype: np.zeros(shape, dtype)[...].view(_Pinned)
    # the results, mapped: the last layer writes each pipeline's there
    mapped = iter(range(0x7000_0000, 0x8000_0000, 0x100))
    engine._mapped = lambda shape, dtype: (np.zeros(shape, dtype)[...].view(_Pinned), next(mapped))
    engine._drv = SimpleNamespace(Error=RuntimeError,
                                  Event=lambda: SimpleNamespace(synchronize=lambda: None))
    for pid in range(20):  # past the table's first 16 columns
        engine.open_pipeline(pid)
    assert engine._addresses.shape[1] == 32
    assert len({p.column for p in engine._pipelines.values()}) == 20
    # the last layer's output row: each pipeline's mapped result
    assert sorted(p.outputs[-1] for p in engine._pipelines.values()) == list(
        range(0x7000_0000, 0x7000_0000 + 20 * 0x100, 0x100))
    assert all(p.outputs[-1] == engine._addresses[-1, p.column]
               for p in engine._pipelines.values())
    column, closed = engine._pipelines[3].column, engine._pipelines[3].buffer
    engine.close_pipeline(3)
    assert closed.freed and not engine._addresses[:, column].any()
    engine.open_pipeline('new')
    new = engine._pipelines['new']
    assert new.column == column and engine._addresses[1:, column].tolist() == new.outputs
    launched = []

    def plan(index, frames, dtype):
        function = SimpleNamespace(_launch_kernel=lambda grid, block, buffer, shared, stream:
                                   launched.append(np.frombuffer(bytes(buffer), dtype)[0]))
        engine._plans[(index, frames)] = Plan(function, 'k', (1, 1), 0, np.zeros(1, dtype))

    pids = (17, 'new', 0)
    chunk = [engine._pipelines[pid] for pid in pids]
    plan(5, 3, CONV_ARGS)
    engine._enqueue(5, engine._columns_of(chunk), None)
    args = launched.pop()
    assert args['in'][:3].tolist() == [p.outputs[4] for p in chunk]
    assert args['out'][:3].tolist() == [p.outputs[5] for p in chunk]
    for pid, p in zip(pids, chunk):  # images staged (not pinned): a device buffer, a meta each
        engine.set_input(pid, np.zeros((4, 5 + p.column, 3), np.uint8), 'rgb8')
    plan(0, 3, PREPROCESS_ARGS)
    engine._enqueue(0, engine._columns_of(chunk), None)
    args = launched.pop()
    assert args['image'][:3].tolist() == [p.image_ptr for p in chunk]
    assert args['out'][:3].tolist() == [p.outputs[0] for p in chunk]
    assert args['meta'][:3, 1].tolist() == [5 + p.column for p in chunk]  # widths


def test_a_graphs_records_take_the_launchs_columns_of_the_address_table():
    """
    A segment as a graph: its layer k's record reads row first + k and writes the next row.

    The records lie side by side, RECORD_WORDS apart (the largest argument struct, so any layer's
    record fits); a launch for fewer frames leaves the other slots as they were; a segment from
    layer 0 also writes the images' metas into layer 0's record, where the preprocess kernel
    reads them.
    """
    from s3dnn_ros.engine.cuda.abi import PREPROCESS_ARGS
    from s3dnn_ros.engine.cuda.graphs import META_WORDS, fill_records, RECORD_WORDS
    assert RECORD_WORDS * 8 == PREPROCESS_ARGS.itemsize
    table = np.arange(15 * 5, dtype=np.uint64).reshape(15, 5) + 0x1000
    words = np.full((3, RECORD_WORDS), 7, np.uint64)
    fill_records(words, None, table[:, [4, 1]], 4, None)
    for k in range(3):
        assert words[k, :2].tolist() == [table[4 + k, 4], table[4 + k, 1]]
        assert words[k, MAX_FRAMES:MAX_FRAMES + 2].tolist() == [table[5 + k, 4], table[5 + k, 1]]
        assert (words[k, 2:MAX_FRAMES] == 7).all() and (words[k, MAX_FRAMES + 2:] == 7).all()
    words = np.zeros((14, RECORD_WORDS), np.uint64)
    meta = words[0].view(np.int32)[META_WORDS].reshape(MAX_FRAMES, 4)
    metas = np.array([[480, 640, 1920, 3]] * 3, np.int32)
    fill_records(words, meta, table[:, [0, 2, 3]], 0, metas)
    record = words[0].view(np.uint8)[:PREPROCESS_ARGS.itemsize].view(PREPROCESS_ARGS)[0]
    assert record['image'][:3].tolist() == table[0, [0, 2, 3]].tolist()
    assert record['out'][:3].tolist() == table[1, [0, 2, 3]].tolist()
    assert record['meta'][:3].tolist() == [[480, 640, 1920, 3]] * 3
    assert words[13, MAX_FRAMES:MAX_FRAMES + 3].tolist() == table[14, [0, 2, 3]].tolist()


class _MappedPinned(np.ndarray):
    """A host array whose base is a mapped PyCUDA page-locked allocation (at 0xd000 on the GPU)."""

    @property
    def base(self):
        return SimpleNamespace(get_device_pointer=lambda: 0xd000)


def test_a_segment_graph_is_reused_once_its_last_launch_is_done_and_none_past_the_limit():
    """
    The graphs of segments, per (first layer, layers, frames), on a stand-in driver.

    A graph is captured once: the records loader, then each layer's ``_ref`` kernel with the
    address of its record in the device block. A launch fills the records and launches the graph;
    the next launch of that key takes the same graph once the last launch's completion is done,
    another one while it is not (or while it is still being issued), and none past the limit,
    which the caller sees as None (the segment then goes kernel by kernel; counted).
    """
    from s3dnn_ros.engine.cuda.graphs import ChainGraphs, PENDING, RECORD_WORDS
    log = []

    def call(name):
        def record(*args):
            log.append((name, args))
            handle = {'cuStreamEndCapture': 1, 'cuGraphInstantiateWithFlags': 0}.get(name)
            if handle is not None:
                args[handle]._obj.value = 0x100 + len(log)
            return 0
        return record

    calls = {name: call(name) for name in (
        'cuStreamBeginCapture_v2', 'cuStreamEndCapture', 'cuGraphInstantiateWithFlags',
        'cuGraphLaunch', 'cuGraphExecDestroy', 'cuGraphDestroy')}
    devices = iter(range(0x10000, 0x1000000, 0x10000))
    drv = SimpleNamespace(
        host_alloc_flags=SimpleNamespace(DEVICEMAP=2),
        pagelocked_empty=lambda shape, dtype, mem_flags: np.zeros(shape, dtype).view(
            _MappedPinned),
        mem_alloc=lambda nbytes: _DeviceBuffer(next(devices)))
    kernels = []

    def function(name):
        return SimpleNamespace(_launch_kernel=lambda grid, block, buffer, shared, stream:
                               kernels.append((name, grid, np.frombuffer(bytes(buffer),
                                                                         np.uint64).tolist())))

    def plan(index, frames):
        return SimpleNamespace(name=f'layer{index}', grid=(index + 1, frames), shared=0,
                               buffer=np.full(8 * (2 * MAX_FRAMES + 1), index, np.uint8))

    graphs = ChainGraphs(calls, drv, plan, function, SimpleNamespace(handle=0x7), limit=3)
    table = np.arange(15 * 4, dtype=np.uint64).reshape(15, 4) + 0x5000
    stream = SimpleNamespace(handle=0x9)
    first = graphs.launch(2, 3, table[:, [1, 3]], None, stream)
    # captured: the loader (mapped host records -> device block, every word), then the layers
    assert kernels == [('load_records', (-(-3 * RECORD_WORDS // 256), 1),
                        [0xd000, 0x10000, 3 * RECORD_WORDS]),
                       ('layer2_ref', (3, 2), [0x10000]),
                       ('layer3_ref', (4, 2), [0x10000 + RECORD_WORDS * 8]),
                       ('layer4_ref', (5, 2), [0x10000 + 2 * RECORD_WORDS * 8])]
    assert first.last is PENDING and first.meta is None
    assert first.words[1, :2].tolist() == table[3, [1, 3]].tolist()
    assert first.words[1, MAX_FRAMES:MAX_FRAMES + 2].tolist() == table[4, [1, 3]].tolist()
    # the plans' records (static fields, and the pointer slots no frame of this launch uses)
    assert first.words[2, 2] == first.words[2, 2 * MAX_FRAMES] == 4 * 0x0101010101010101
    assert not first.words[0, 2 * MAX_FRAMES + 1:].any()
    busy = SimpleNamespace(done=lambda: False)
    finished = SimpleNamespace(done=lambda: True)
    first.last = busy
    second = graphs.launch(2, 3, table[:, [0, 2]], None, stream)  # the first still in flight
    assert second is not first and graphs.counts()['made'] == 2
    second.last = finished
    first.last = finished
    kernels.clear()
    again = graphs.launch(2, 3, table[:, [2, 0]], None, stream)
    assert again is first and kernels == []  # reused: no capture
    assert again.words[0, :2].tolist() == table[2, [2, 0]].tolist()
    zero = graphs.launch(0, 2, table[:, [3]], np.array([[4, 5, 6, 7]], np.int32), stream)
    assert zero.meta[0].tolist() == [4, 5, 6, 7] and zero.words[0, 0] == table[0, 3]
    second.last = busy  # and ``again`` still issued: every graph of the key busy, 3 made
    assert graphs.launch(2, 3, table[:, [1, 2]], None, stream) is None
    launched = [args for name, args in log if name == 'cuGraphLaunch']
    assert [stream_handle for _, stream_handle in launched] == [0x9] * 4
    assert [graph.value for graph, _ in launched] == [
        instance.exec.value for instance in (first, second, first, zero)]
    assert graphs.counts() == {'made': 3, 'live': 3, 'launches': 4, 'refused': 1}
    graphs.clear()
    assert graphs.counts()['live'] == 0
    assert sum(name == 'cuGraphExecDestroy' for name, _ in log) == 3
