"""
s3dnn-bench: the engine and the scheduler on a real device, against torch and against the floor.

    s3dnn-bench [--engine cuda|reference|timed] [--sections layers,table1,four_cameras] [--json]
                [--cost-table FILE] [--out DIR]

Sections, each measured in the same process on the same card:

``layers``
    Every kernel layer and the whole network at batch 1, 2, 4, 8, 16, 32, 64: our kernels (GPU
    time of back-to-back launches queued behind a delay kernel) against torch/cuDNN FP32, TF32 off
    (CUDA graph replay, queued behind a GPU sleep), and against the floor
    max(FLOPs / measured SGEMM rate, bytes / measured copy bandwidth); the larger term names what
    bounds the layer.
``table1``
    Four runs of AlexNet, each a batch of 2, 4, 8 or 16 frames, on 1 and on 4 streams, issued
    sequentially (one run after another), as CUDA streaming (each run's layers issued at once on
    its own stream) and through the S3DNN dispatcher (each frame its own pipeline): total wall
    time, the median of runs in which the three take turns.
``four_cameras``
    Four cameras each sending one frame at the same moment: one S3DNN round (submission to the last
    result on the host) against torch running the four frames one after another (eager and CUDA
    graph), and how long the GPU sat idle while frames were waiting (the median round's, and the
    largest share of any round with the rounds above 20%).

Both run once per kind of input (``--inputs``): ``pinned``, camera images in page-locked memory the
engine uploads from where they lie, as the scheduler worker's frame slots are (and as the torch
baseline's images are); ``pageable``, plain arrays each first copied into its pipeline's pinned
staging buffer on the host, inside the timed span.

``capacity`` (only when asked for: it takes minutes)
    Open-loop cameras (``--cameras N,N,...`` at ``--fps``, ``--deadline-ms``, ``--width`` x
    ``--height``) through a real scheduler worker process per policy (``--policies``), swept over
    the camera counts, beside the simulator's prediction for the same points with the cost table
    and host costs measured in the same run; see :mod:`s3dnn_ros.tools.capacity`. Writes
    ``DIR/capacity-<card>.json`` and the plot ``DIR/capacity-<card>.png``. While it runs, each
    measured row is appended to ``DIR/capacity-partial.jsonl`` (after a line with the command),
    removed once the record is written: a run stopped early keeps what it measured.
    ``--engine timed --cost-table FILE`` runs it without a GPU: the workers' launches take the
    table's times (:mod:`s3dnn_ros.engine.timed`), so what is measured is the host side, and the
    measured rows' source is ``timed`` instead of ``gpu``. ``--cost-table`` with the CUDA engine:
    the table the workers load (written after calibrating when it does not exist; default a
    table calibrated by the first worker of the run).

With ``--json`` stdout is exactly one JSON object holding every section, the card and the date; the
same object is written to ``DIR/bench-<card>.json``. Tables are printed otherwise.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
import datetime
import json
from pathlib import Path
import re
import statistics
import sys
import tempfile
import time
from typing import Callable

import numpy as np

from .cli import (bounded_int, choices_list, non_negative_float, Parser, positive_float,
                  positive_int, positive_ints, text_table)
from ..engine.base import Engine
from ..engine.costs import CostTable, CostTableError
from ..engine.reference import measure_matmul_flops, ReferenceEngine
from ..model.alexnet import alexnet, Network
from ..model.weights import init_weights, Weights
from ..scheduler.dispatcher import BusyMeter, Dispatcher, EngineBackend
from ..scheduler.policies import DEFAULT_MAX_BATCH, make_policy, POLICIES

SECTIONS = ['layers', 'table1', 'four_cameras', 'capacity']
#: the capacity section's measured rows while it runs (DIR/<this>)
PARTIAL_CAPACITY = 'capacity-partial.jsonl'
DEFAULT_SECTIONS = ['layers', 'table1', 'four_cameras']
LAYER_BATCHES = (1, 2, 4, 8, 16, 32, 64)
TABLE1_BATCHES = (2, 4, 8, 16)
TABLE1_STREAMS = (1, 4)
RUNS = 4
CAMERA_SHAPE = (480, 640, 3)
INPUTS = ['pinned', 'pageable']


def median(values) -> float:
    return float(statistics.median(values))


def camera_images(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, CAMERA_SHAPE, dtype=np.uint8) for _ in range(count)]


# ----------------------------------------------------------------------------------------- torch
class TorchBaseline:
    """
    The torchvision AlexNet with our weights on the GPU, FP32 with TF32 off.

    Plus its own preprocessing.
    """

    def __init__(self, network: Network, weights: Weights):
        import torch
        import torchvision
        self.torch = torch
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        model = torchvision.models.alexnet(weights=None)
        model.load_state_dict({name: torch.from_numpy(value) for name, value in weights.items()})
        self.model = model.cuda().eval()
        self.network = network
        preprocess = network.layers[0]
        self.mean = torch.tensor(preprocess.mean, device='cuda').view(1, 3, 1, 1)
        self.std = torch.tensor(preprocess.std, device='cuda').view(1, 3, 1, 1)
        self.k = network.top_k

    def preprocess(self, host_images):
        torch = self.torch
        images = host_images.to('cuda', non_blocking=True).permute(0, 3, 1, 2).float()
        resized = torch.nn.functional.interpolate(images, size=(224, 224), mode='bilinear',
                                                  align_corners=False)
        return (resized / 255 - self.mean) / self.std

    def head(self, logits, host_result):
        values, ids = self.torch.topk(self.torch.softmax(logits, 1), self.k, 1)
        host_result.copy_(self.torch.stack((values, ids.float()), 1), non_blocking=True)

    def pinned_images(self, images: list[np.ndarray]):
        return self.torch.from_numpy(np.stack(images)).pin_memory()

    def layer_ops(self, batch: int, images: list[np.ndarray]) -> dict:
        """
        Map each kernel layer name to a function running torch's equivalent.

        The function runs on a prepared ``batch``-frame input.
        """
        torch = self.torch
        features, classifier = self.model.features, self.model.classifier
        relu = torch.nn.functional.relu
        host = self.pinned_images(images[:batch])
        result = torch.empty((batch, 2, self.k), pin_memory=True)
        ops = {'preprocess': lambda x: self.preprocess(host),
               'conv1': lambda x: relu(features[0](x), inplace=True), 'pool1': features[2],
               'conv2': lambda x: relu(features[3](x), inplace=True), 'pool2': features[5],
               'conv3': lambda x: relu(features[6](x), inplace=True),
               'conv4': lambda x: relu(features[8](x), inplace=True),
               'conv5': lambda x: relu(features[10](x), inplace=True), 'pool5': features[12],
               'avgpool': self.model.avgpool,
               'fc6': lambda x: relu(classifier[1](x.flatten(1)), inplace=True),
               'fc7': lambda x: relu(classifier[4](x), inplace=True), 'fc8': classifier[6],
               'softmax': lambda x: self.head(x, result)}
        calls = {}
        for layer in self.network.kernel_layers:
            x = (None if layer.kind == 'preprocess'
                 else torch.randn(batch, *layer.in_shape, device='cuda'))
            calls[layer.name] = (lambda op, x: lambda: op(x))(ops[layer.name], x)
        x = torch.randn(batch, 3, 224, 224, device='cuda')
        calls['network'] = lambda: self.head(self.model(x), result)
        calls['upload+network'] = lambda: self.head(self.model(self.preprocess(host)), result)
        return calls

    def graph(self, fn):
        """``fn`` captured as a CUDA graph; returns its replay."""
        torch = self.torch
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.no_grad(), torch.cuda.stream(side):
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            fn()
        return graph.replay

    def gpu_time_us(self, fn, warmup: int = 3, repeats: int = 20) -> float:
        """Median GPU µs of ``fn``, calls queued behind a GPU sleep so none waits for the host."""
        torch = self.torch
        begin = time.perf_counter()
        for _ in range(warmup):
            fn()
        issue_s = (time.perf_counter() - begin) / warmup
        torch.cuda.synchronize()
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
        torch.cuda._sleep(int((2 * issue_s * repeats + 1e-3) * 2e9))  # cycles, at up to 2 GHz
        for start, end in zip(starts, ends):
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize()
        return median(start.elapsed_time(end) * 1000 for start, end in zip(starts, ends))

    def ceilings(self) -> dict:
        """Device-to-device copy bandwidth (bytes read + written) and FP32 SGEMM rate, TF32 off."""
        torch = self.torch
        a = torch.empty(2**28, dtype=torch.float32, device='cuda').normal_()
        b = torch.empty_like(a)
        copy_us = self.gpu_time_us(lambda: b.copy_(a), 3, 10)
        m = torch.randn(8192, 8192, device='cuda')
        gemm_us = self.gpu_time_us(lambda: m @ m, 2, 5)
        return {'copy_GBps': 2 * a.numel() * 4 / copy_us / 1e3,
                'sgemm_TFLOPs': 2 * 8192**3 / gemm_us / 1e6, 'source': 'torch'}


def load_torch(network: Network, weights: Weights, engine: Engine):
    """
    Return the torch baseline on the engine's GPU.

    Or None (with the reason) where torch or CUDA is absent.
    """
    if engine.name != 'cuda':
        return None, 'the reference engine runs on the CPU: no GPU baseline'
    try:
        import torch
        import torchvision  # noqa: F401
    except ImportError as error:
        return None, f'torch/torchvision not importable ({error})'
    if not torch.cuda.is_available():
        return None, 'torch sees no CUDA device'
    return TorchBaseline(network, weights), None


# ----------------------------------------------------------------------------------------- helpers
class Bench:
    """The engine under test, its open pipelines with real activations, and the torch baseline."""

    def __init__(self, engine: Engine, network: Network, weights: Weights, repeats: int,
                 max_inflight: int = 2):
        self.engine = engine
        self.max_inflight = max_inflight
        self.network = network
        self.weights = weights
        self.repeats = repeats
        self.layers = network.kernel_layers
        self.images = camera_images(max(LAYER_BATCHES))
        self.torch, self.torch_missing = load_torch(network, weights, engine)
        self._pinned: dict[int, tuple[Engine, np.ndarray, list[np.ndarray]]] = {}

    def inputs(self, engine: Engine, kind: str) -> list[np.ndarray]:
        """
        Return the camera images as ``kind`` inputs of ``engine``.

        'pageable': the arrays themselves; 'pinned': copies of them in one block of host memory
        given to ``engine.pin`` (kept until :meth:`release`).
        """
        if kind == 'pageable':
            return self.images
        held = self._pinned.get(id(engine))
        if held is None:
            block = np.empty(sum(image.nbytes for image in self.images), np.uint8)
            engine.pin(block)
            views, offset = [], 0
            for image in self.images:
                view = block[offset:offset + image.nbytes].reshape(image.shape)
                view[...] = image
                views.append(view)
                offset += image.nbytes
            held = self._pinned[id(engine)] = (engine, block, views)
        return held[2]

    def release(self, engine: Engine) -> None:
        """Undo the pinning of ``engine``'s inputs (before the engine closes)."""
        held = self._pinned.pop(id(engine), None)
        if held is not None:
            engine.unpin(held[1])

    def open_pipelines(self, count: int, tag: str, kind: str = 'pageable') -> list:
        """Open ``count`` pipelines with the camera images staged, as ``kind`` inputs."""
        pids = [(tag, i) for i in range(count)]
        images = self.inputs(self.engine, kind)
        for pid, image in zip(pids, images * (count // len(images) + 1)):
            self.engine.open_pipeline(pid)
            self.engine.set_input(pid, image, 'rgb8')
        return pids

    def close_pipelines(self, pids) -> None:
        for pid in pids:
            self.engine.close_pipeline(pid)

    def run_layers(self, indices, pids, stream: int = 0):
        completion = None
        for index in indices:
            completion = self.engine.launch(index, pids, stream)
        return completion

    def ours_us(self, indices, pids) -> float:
        """Median duration of the layers ``indices`` over ``pids``, back to back on one stream."""
        if hasattr(self.engine, 'time_launches'):
            return median(self.engine.time_launches(list(indices), pids, 3, self.repeats))
        samples = []
        for _ in range(self.repeats):
            begin = time.perf_counter_ns()
            self.run_layers(indices, pids).wait()
            samples.append((time.perf_counter_ns() - begin) / 1000)
        return median(samples)

    def ceilings(self) -> dict:
        if self.torch is not None:
            return self.torch.ceilings()
        a = np.ones(2**24, np.float32)
        b = np.empty_like(a)
        begin = time.perf_counter()
        for _ in range(5):
            np.copyto(b, a)
        seconds = (time.perf_counter() - begin) / 5
        return {'copy_GBps': 2 * a.nbytes / seconds / 1e9,
                'sgemm_TFLOPs': measure_matmul_flops() / 1e12, 'source': 'numpy'}

    # ------------------------------------------------------------------------------------- layers
    def layers_section(self, batches) -> dict:
        ceilings = self.ceilings()
        flop_rate = ceilings['sgemm_TFLOPs'] * 1e12
        byte_rate = ceilings['copy_GBps'] * 1e9
        rows = []
        pids_all = self.open_pipelines(max(batches), 'layers')
        self.run_layers(range(len(self.layers)), pids_all).wait()  # valid activations everywhere
        try:
            for batch in batches:
                pids = pids_all[:batch]
                theirs = {}
                if self.torch is not None:
                    with self.torch.torch.no_grad():
                        calls = self.torch.layer_ops(batch,
                                                     self.images * (batch // len(self.images) + 1))
                        theirs = {name: self.torch.gpu_time_us(self.torch.graph(fn), 3,
                                                               self.repeats)
                                  for name, fn in calls.items()}
                for index, layer in enumerate(self.layers):
                    rows.append(self._row(layer.name, batch, self.ours_us([index], pids),
                                          theirs.get(layer.name), batch * layer.flops,
                                          layer.dram_bytes(batch), flop_rate, byte_rate))
                network_flops = sum(batch * layer.flops for layer in self.layers[1:])
                network_bytes = sum(layer.dram_bytes(batch) for layer in self.layers[1:])
                rows.append(self._row('network', batch,
                                      self.ours_us(range(1, len(self.layers)), pids),
                                      theirs.get('network'), network_flops, network_bytes,
                                      flop_rate, byte_rate))
                rows.append(self._row(
                    'upload+network', batch, self.ours_us(range(len(self.layers)), pids),
                    theirs.get('upload+network'), network_flops + batch * self.layers[0].flops,
                    network_bytes + self.layers[0].dram_bytes(batch), flop_rate, byte_rate))
        finally:
            self.close_pipelines(pids_all)
        return {'ceilings': ceilings, 'rows': rows}

    @staticmethod
    def _row(name, batch, ours, theirs, flops, nbytes, flop_rate, byte_rate) -> dict:
        compute_us, memory_us = flops / flop_rate * 1e6, nbytes / byte_rate * 1e6
        floor = max(compute_us, memory_us)
        return {'layer': name, 'batch': batch, 'ours_us': round(ours, 2),
                'torch_us': None if theirs is None else round(theirs, 2),
                'ratio': None if theirs is None else round(ours / theirs, 3),
                'floor_us': round(floor, 2),
                'bound': 'compute' if compute_us >= memory_us else 'memory',
                'of_floor': round(ours / floor, 2) if floor else None}

    # ------------------------------------------------------------------------------------- table 1
    def table1_section(self, batches, streams_options, kinds) -> dict:
        rows = []
        for streams in streams_options:
            engine = self.engine_with_streams(streams)
            try:
                for kind in kinds:
                    images = self.inputs(engine, kind)
                    for batch in batches:
                        rows.append(self._table1_row(engine, images, batch, streams, kind))
            finally:
                if engine is not self.engine:
                    self.release(engine)
                    engine.close()
        return {'runs': RUNS, 'rows': rows}

    def _table1_row(self, engine: Engine, images, batch: int, streams: int, kind: str) -> dict:
        row = {'batch': batch, 'streams': streams, 'inputs': kind}
        runs = [[(f'run{r}', i) for i in range(batch)] for r in range(RUNS)]
        all_pids = [pid for run in runs for pid in run]
        for pid in all_pids:
            engine.open_pipeline(pid)
        streams_busy, s3dnn_busy = [], []

        def s3dnn_ms() -> float:
            wall_ms, busy_ms = self.s3dnn_round(engine, images, RUNS * batch)
            s3dnn_busy.append(busy_ms)
            return wall_ms

        try:
            row.update(self._alternate({
                'sequential_ms': lambda: self.table1_runs(engine, images, runs, streams,
                                                          wait_each=True),
                'streams_ms': lambda: self.table1_runs(engine, images, runs, streams,
                                                       wait_each=False, busy=streams_busy),
                's3dnn_ms': s3dnn_ms}))
        finally:
            for pid in all_pids:
                engine.close_pipeline(pid)
        row['s3dnn_vs_streams'] = round(row['s3dnn_ms'] / row['streams_ms'], 3)
        # GPU busy time (union of the kernels' intervals; the warm-up run left out): whether a
        # difference lies in the GPU's work or in the host around it
        for key, samples in (('streams_gpu_busy_ms', streams_busy),
                             ('s3dnn_gpu_busy_ms', s3dnn_busy)):
            if len(samples) > 1 and None not in samples:
                row[key] = round(median(samples[1:]), 3)
        return row

    def engine_with_streams(self, streams: int) -> Engine:
        if self.engine.name != 'cuda':
            return self.engine
        from ..engine.cuda import CudaEngine
        return CudaEngine(self.network, self.weights, device_id=self.engine.device_id,
                          streams=streams)

    def table1_runs(self, engine, images, runs, streams: int, wait_each: bool,
                    busy: list | None = None, marks: dict | None = None) -> float:
        """
        Return the wall ms of four runs, each a fused launch per layer of its frames.

        One stream per run (mod streams). ``busy`` gets the GPU's busy ms (the union of the
        launches' intervals; None from an engine whose launches have none); ``marks`` the
        ``time.monotonic_ns`` of the start ('begin') and of the end ('end'), and, from an engine
        whose launches have intervals, of the GPU's first work ('gpu_start') and of its last
        kernel's end ('gpu_end').
        """
        begin = time.monotonic_ns()
        last, launched = [], []
        keep = busy is not None or marks is not None
        for r, pids in enumerate(runs):
            engine.set_inputs([(pid, image, 'rgb8')
                               for pid, image in zip(pids, images[r * len(pids):])])
            completion = None
            for index in range(len(self.layers)):
                completion = engine.launch(index, pids, r % streams)
                if keep:
                    launched.append(completion)
            if wait_each:
                completion.wait()
            last.append(completion)
        for completion in last:
            completion.wait()
        end = time.monotonic_ns()
        intervals = ([completion.interval() for completion in launched]
                     if all(hasattr(completion, 'interval') for completion in launched) else None)
        if busy is not None:
            if intervals is not None:
                meter = BusyMeter()
                for interval in intervals:
                    meter.add(*interval)
                busy.append(meter.busy_ns() / 1e6)
            else:
                busy.append(None)
        if marks is not None:
            marks.update(begin=begin, end=end)
            if intervals:
                marks['gpu_start'] = min(start for start, _ in intervals)
                marks['gpu_end'] = max(stop for _, stop in intervals)
        return (end - begin) / 1e6

    def _alternate(self, measures: dict[str, Callable[[], float]]) -> dict[str, float]:
        """
        Return the median of each measure's samples (a warm-up run apart), by name.

        The measures take turns, each turn in another order, so that the host's drift during
        the row (which reaches 2x between processes on a lent host) falls on all of them alike.
        """
        names = list(measures)
        samples: dict[str, list[float]] = {name: [] for name in names}
        for name in names:
            measures[name]()  # warm-up
        for turn in range(max(1, self.repeats // 4)):
            shift = turn % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].append(measures[name]())
        return {name: round(median(values), 3) for name, values in samples.items()}

    def s3dnn_round(self, engine, images, frames: int, backend: EngineBackend | None = None,
                    marks: dict | None = None,
                    timed: AbstractContextManager | None = None) -> tuple[float, float]:
        """
        Run one S3DNN round of ``frames`` camera frames submitted at once.

        Returns (wall ms from submitting the frames to the last result, GPU busy ms). ``backend``:
        the engine's backend to drive (default a plain one); ``marks`` gets the
        ``time.monotonic_ns`` of the first submission ('begin'), of the end of the arrivals
        ('arrived') and of the last result ('end'); ``timed``: a context entered around that
        span only (a profiler), not around the pipelines' set-up.
        """
        backend = backend or EngineBackend(engine)
        marks = {} if marks is None else marks
        done = []
        policy = make_policy('s3dnn', engine.cost_table(), max_inflight=self.max_inflight)
        dispatcher = Dispatcher(policy, backend, on_done=done.append)
        pipelines = [dispatcher.add_pipeline(f'cam{i}', 1_000_000_000) for i in range(frames)]
        images = (images * (frames // len(images) + 1))[:frames]
        try:
            # a camera's first frame allocates its staging
            for pipeline, image in zip(pipelines, images):
                engine.set_input(pipeline.id, image, 'rgb8')
            busy_before = backend.busy_ns()
            with timed or nullcontext():
                marks['begin'] = now = time.monotonic_ns()
                arrivals = [(pipeline, now, image, 'rgb8', None)
                            for pipeline, image in zip(pipelines, images)]
                taken = 0
                while taken < frames:
                    taken, chain = dispatcher.arrive_all(arrivals, taken)
                    if chain:
                        dispatcher.step()
                marks['arrived'] = time.monotonic_ns()
                while len(done) < frames:
                    dispatcher.step()
                marks['end'] = time.monotonic_ns()
            wall_ms = (marks['end'] - marks['begin']) / 1e6
            return wall_ms, (backend.busy_ns() - busy_before) / 1e6
        finally:
            for pipeline in pipelines:
                engine.close_pipeline(pipeline.id)

    # -------------------------------------------------------------------------------- four cameras
    def four_cameras_section(self, kinds) -> dict:
        result = {}
        if self.torch is not None:
            for name, use_graph in (('torch_eager', False), ('torch_graph', True)):
                result[f'{name}_sequential_ms'] = round(self._torch_four(use_graph), 3)
        else:
            result['torch'] = self.torch_missing
        rounds = result['rounds'] = []
        for kind in kinds:
            images = self.inputs(self.engine, kind)
            samples = [self.s3dnn_round(self.engine, images, 4)
                       for _ in range(self.repeats + 1)][1:]
            wall = median(s[0] for s in samples)
            busy = median(s[1] for s in samples)
            # each round's own idle share too: the median round hides the rounds that idle most
            shares = [max(0.0, w - b) / w for w, b in samples]
            row = {'inputs': kind, 's3dnn_round_ms': round(wall, 3), 'gpu_busy_ms': round(busy, 3),
                   'gpu_idle_while_queued_ms': round(max(0.0, wall - busy), 3),
                   'idle_fraction': round(max(0.0, wall - busy) / wall, 3),
                   'rounds': len(samples), 'idle_fraction_max': round(max(shares), 3),
                   'rounds_idle_over_20pct': sum(share > 0.2 for share in shares)}
            for name in ('torch_eager', 'torch_graph'):
                if f'{name}_sequential_ms' in result:
                    row[f'ratio_vs_{name}'] = round(wall / result[f'{name}_sequential_ms'], 3)
            rounds.append(row)
        return result

    def _torch_four(self, use_graph: bool) -> float:
        """
        Return the wall ms of torch running four batch-1 frames one after another.

        Upload to result on the host.
        """
        baseline = self.torch
        torch = baseline.torch
        hosts = [baseline.pinned_images([image]) for image in self.images[:4]]
        results = [torch.empty((1, 2, baseline.k), pin_memory=True) for _ in range(4)]
        calls = [(lambda h, r: lambda: baseline.head(baseline.model(baseline.preprocess(h)), r))(
            h, r) for h, r in zip(hosts, results)]
        if use_graph:
            calls = [baseline.graph(call) for call in calls]
        samples = []
        with torch.no_grad():
            for _ in range(self.repeats + 1):
                torch.cuda.synchronize()
                begin = time.perf_counter_ns()
                for call in calls:
                    call()
                torch.cuda.synchronize()
                samples.append((time.perf_counter_ns() - begin) / 1e6)
        return median(samples[1:])


# ----------------------------------------------------------------------------------------- output
def _table(title: str, header: list[str], rows: list[list]) -> str:
    cells = [[('' if v is None else f'{v:.2f}' if isinstance(v, float) else str(v)) for v in row]
             for row in rows]
    return text_table(title, header, cells)


def format_report(report: dict) -> str:
    parts = [f"s3dnn-bench: engine {report['engine']} on {report['card']}, {report['date']}"]
    if 'layers' in report:
        ceilings = report['layers']['ceilings']
        parts.append(f"floor: copy {ceilings['copy_GBps']:.0f} GB/s, "
                     f"FP32 SGEMM {ceilings['sgemm_TFLOPs']:.1f} TFLOP/s ({ceilings['source']})")
        parts.append(_table('layers (µs; torch = cuDNN/cuBLAS FP32, CUDA graph replay)',
                            ['layer', 'batch', 'ours', 'torch', 'ours/torch', 'floor', 'bound',
                             'ours/floor'],
                            [[r['layer'], r['batch'], r['ours_us'], r['torch_us'], r['ratio'],
                              r['floor_us'], r['bound'], r['of_floor']]
                             for r in report['layers']['rows']]))
    if 'table1' in report:
        parts.append(_table(f"table 1: total ms of {report['table1']['runs']} runs of batch B",
                            ['inputs', 'B', 'streams', 'sequential', 'streams', 's3dnn',
                             's3dnn/streams', 'GPU busy: streams', 's3dnn'],
                            [[r['inputs'], r['batch'], r['streams'], r['sequential_ms'],
                              r['streams_ms'], r['s3dnn_ms'], r['s3dnn_vs_streams'],
                              r.get('streams_gpu_busy_ms', '-'), r.get('s3dnn_gpu_busy_ms', '-')]
                             for r in report['table1']['rows']]))
    if 'four_cameras' in report:
        four = report['four_cameras']
        torch_ms = {k: v for k, v in four.items() if k != 'rounds'}
        parts.append(_table('four cameras, one frame each (ms)',
                            ['inputs', 's3dnn round', 'GPU busy', 'GPU idle while queued',
                             'idle share', 'max', 'rounds > 0.2', 'vs torch eager',
                             'vs torch graph'],
                            [[r['inputs'], r['s3dnn_round_ms'], r['gpu_busy_ms'],
                              r['gpu_idle_while_queued_ms'], r['idle_fraction'],
                              r['idle_fraction_max'],
                              f"{r['rounds_idle_over_20pct']} of {r['rounds']}",
                              r.get('ratio_vs_torch_eager'), r.get('ratio_vs_torch_graph')]
                             for r in four['rounds']])
                     + '\ntorch, the four frames one after another: '
                     + ', '.join(f'{k} {v}' for k, v in torch_ms.items()))
    return '\n\n'.join(parts)


def file_name(card: str, kind: str = 'bench') -> str:
    """Return ``<kind>-<card>.json``, the card lower-cased with runs of other characters as -."""
    return f'{kind}-' + re.sub(r'[^A-Za-z0-9]+', '-', card).strip('-').lower() + '.json'


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog='s3dnn-bench',
                    description='Benchmark the engine and the S3DNN scheduler on this machine.')
    parser.add_argument('--engine', choices=['cuda', 'reference', 'timed'], default='cuda',
                        help="timed: a stand-in taking --cost-table's times (capacity only)")
    parser.add_argument('--cost-table', type=Path,
                        help='capacity: the cost table of the workers (needed by --engine timed)')
    parser.add_argument('--device-id', type=int, default=0)
    parser.add_argument('--sections', type=choices_list(SECTIONS), default=DEFAULT_SECTIONS,
                        help=f'comma list of {",".join(SECTIONS)} (default '
                             f'{",".join(DEFAULT_SECTIONS)})')
    parser.add_argument('--batches', type=choices_list([str(b) for b in LAYER_BATCHES]),
                        default=[str(b) for b in LAYER_BATCHES],
                        help='batch sizes of the layers section')
    parser.add_argument('--table1-batches', type=choices_list([str(b) for b in TABLE1_BATCHES]),
                        default=[str(b) for b in TABLE1_BATCHES])
    parser.add_argument('--inputs', type=choices_list(INPUTS), default=INPUTS,
                        help='images of table1 and four_cameras: pinned (page-locked, '
                             "as the scheduler worker's frame slots), "
                             'pageable (copied to staging first); default pinned,pageable')
    parser.add_argument('--repeats', type=positive_int, default=20,
                        help='timed repetitions (default 20)')
    parser.add_argument('--max-inflight', type=positive_int, default=2,
                        help='dispatch rounds the S3DNN dispatcher keeps on the GPU (default 2)')
    capacity = parser.add_argument_group('capacity section')
    capacity.add_argument('--cameras', type=positive_ints, default=[32, 64, 128, 192, 256],
                          help='camera counts to sweep (default 32,64,128,192,256)')
    capacity.add_argument('--policies', type=choices_list(list(POLICIES)),
                          default=['s3dnn', 'streams', 'sequential'],
                          help='policies to measure (default s3dnn,streams,sequential)')
    capacity.add_argument('--fps', type=positive_float, default=30.0,
                          help='frames per second per camera (default 30)')
    capacity.add_argument('--deadline-ms', type=positive_float, default=50.0,
                          help='relative deadline (default 50)')
    capacity.add_argument('--width', type=positive_int, default=640,
                          help='image width (default 640)')
    capacity.add_argument('--height', type=positive_int, default=480,
                          help='image height (default 480)')
    capacity.add_argument('--seconds', type=positive_float, default=4.0,
                          help='measured seconds per point (default 4)')
    capacity.add_argument('--warmup-s', type=non_negative_float, default=1.0,
                          help='unmeasured seconds before each point (default 1)')
    capacity.add_argument('--feeders', type=positive_int, default=8,
                          help='threads releasing frames (default 8)')
    capacity.add_argument('--copy-every-frame', action='store_true',
                          help='copy the image into its slot at every frame, as the node does '
                               '(default: once per slot; the copies can make the feeders, not '
                               'the scheduler, the limit)')
    capacity.add_argument('--queue-depth', type=positive_int, default=1,
                          help='frames waiting per camera (default 1)')
    capacity.add_argument('--firm', action='store_true',
                          help='firm deadlines: drop frames that can no longer make it')
    capacity.add_argument('--max-batch', type=positive_int, default=DEFAULT_MAX_BATCH,
                          help='largest fused batch of the S3DNN policy (default '
                               f'{DEFAULT_MAX_BATCH})')
    capacity.add_argument('--gpus', type=bounded_int(1, 64), default=1,
                          help='GPUs --device-id .. --device-id + K - 1, one scheduler worker '
                          'each, cameras placed as the node places them (default 1)')
    capacity.add_argument('--workers-per-gpu', type=bounded_int(1, 8), default=1,
                          help='scheduler workers per GPU, the cameras split over them as the '
                          'node splits them (default 1; the simulator models them too)')
    capacity.add_argument('--overload', type=non_negative_float, default=1.5,
                          help='also run each policy at this multiple '
                               'of its knee (default 1.5; 0: no)')
    parser.add_argument('--out', type=Path,
                        help='folder for the JSON record (default ./bench/results)')
    parser.add_argument('--json', action='store_true',
                        help='print one JSON object instead of tables')
    args = parser.parse_args(argv)
    out = args.out or Path('bench') / 'results'
    command = 's3dnn-bench ' + ' '.join(argv if argv is not None else sys.argv[1:])
    date = datetime.date.today().isoformat()
    engine_sections = [section for section in args.sections if section != 'capacity']
    if args.engine == 'timed' and engine_sections:
        parser.error(f'argument --engine: timed computes nothing, so it runs only the capacity '
                     f'section, not {",".join(engine_sections)}')
    if args.engine == 'timed':
        if args.cost_table is None:
            parser.error('argument --cost-table: --engine timed takes its launch times from a '
                         'cost table: give one')
        try:
            CostTable.load(args.cost_table, alexnet())
        except CostTableError as error:
            parser.error(f'argument --cost-table: {error}')
    report = None
    if engine_sections:
        report = engine_report(parser, args, engine_sections, command, date)
    if 'capacity' in args.sections:
        capacity_report(parser, args, out, command, date)
    if report is None:
        return 0
    out.mkdir(parents=True, exist_ok=True)
    (out / file_name(report['card'])).write_text(json.dumps(report, indent=1))
    if args.json:
        json.dump(report, sys.stdout)
        sys.stdout.write('\n')
    else:
        print(format_report(report))
    return 0


def engine_report(parser: Parser, args, sections: list[str], command: str, date: str) -> dict:
    """Return the layers, table1 and four_cameras sections on an engine made in this process."""
    network = alexnet()
    weights = init_weights(network, seed=0)
    if args.engine == 'cuda':
        from ..engine.base import EngineError
        from ..engine.cuda import CudaEngine
        try:
            engine = CudaEngine(network, weights, device_id=args.device_id)
        except EngineError as error:
            parser.error(f'argument --engine: cuda cannot run here: {error}')
    else:
        engine = ReferenceEngine(network, weights)
    bench = Bench(engine, network, weights, args.repeats, args.max_inflight)
    report = {'benchmark': 's3dnn-bench', 'engine': engine.name, 'card': engine.device_name,
              'date': date, 'command': command, 'max_inflight': args.max_inflight,
              'torch_baseline': bench.torch_missing or 'torch ' + bench.torch.torch.__version__}
    try:
        if 'layers' in sections:
            report['layers'] = bench.layers_section([int(b) for b in args.batches])
        if 'table1' in sections:
            report['table1'] = bench.table1_section([int(b) for b in args.table1_batches],
                                                    TABLE1_STREAMS, args.inputs)
        if 'four_cameras' in sections:
            report['four_cameras'] = bench.four_cameras_section(args.inputs)
    finally:
        bench.release(engine)
        engine.close()
    return report


def capacity_report(parser: Parser, args, out: Path, command: str, date: str) -> None:
    """
    Return the capacity section: its table, JSON record and plot.

    See :mod:`s3dnn_ros.tools.capacity`.
    """
    from .capacity import CapacitySetting, capacity_section, format_capacity, plot_capacity
    from ..worker.client import WorkerError
    setting = CapacitySetting(counts=tuple(sorted(set(args.cameras))),
                              policies=tuple(args.policies), fps=args.fps,
                              deadline_ms=args.deadline_ms, width=args.width, height=args.height,
                              seconds=args.seconds, warmup_s=args.warmup_s, feeders=args.feeders,
                              copy_every_frame=args.copy_every_frame,
                              queue_depth=args.queue_depth, firm=args.firm,
                              max_inflight=args.max_inflight, max_batch=args.max_batch,
                              engine=args.engine, device_id=args.device_id, gpus=args.gpus,
                              workers_per_gpu=args.workers_per_gpu,
                              overload=args.overload)
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else \
        (lambda line: print(line, flush=True))
    # each measured row as soon as it is measured, one JSON object a line, so that a run stopped
    # early (a time limit) keeps what it measured; removed once the record is written
    out.mkdir(parents=True, exist_ok=True)
    partial = out / PARTIAL_CAPACITY
    partial.write_text(json.dumps({'command': command, 'date': date}) + '\n')

    def keep(row: dict) -> None:
        with partial.open('a') as file:
            file.write(json.dumps(row) + '\n')

    # the table given, else the first worker calibrates and the others load its table
    with tempfile.TemporaryDirectory() as folder:
        try:
            section = capacity_section(
                setting, str(args.cost_table or Path(folder) / 'costs.json'), log, keep)
        except WorkerError as error:
            partial.unlink()
            parser.error(f'argument --engine: the scheduler worker could not start: {error}')
    card = section['device']
    record = {'benchmark': 'capacity', 'card': card, 'date': date, 'command': command,
              'engine': args.engine, **section}
    name = file_name(card, 'capacity')
    (out / name).write_text(json.dumps(record, indent=1))
    partial.unlink()
    plot_capacity(section,
                  f'{card}{f" x {args.gpus}" if args.gpus > 1 else ""}'
                  f'{f", {args.workers_per_gpu} workers each" if args.workers_per_gpu > 1 else ""}'
                  f', {date}: '
                  f'{args.width}x{args.height} at {args.fps:g} FPS, deadline '
                  f'{args.deadline_ms:g} ms',
                  str(out / name.replace('.json', '.png')))
    if args.json:
        json.dump(record, sys.stdout)
        sys.stdout.write('\n')
    else:
        print(format_capacity(section))
        print(f'wrote {out / name} and its plot')


if __name__ == '__main__':
    sys.exit(main())
