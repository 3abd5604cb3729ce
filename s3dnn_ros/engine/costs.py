"""
Cost tables: per (layer, fused batch size) the kernel's duration and its tbRatio.

tbRatio = thread blocks launched / thread blocks the GPU holds resident at once
(SM count x resident blocks per SM for the kernel's threads, registers and shared memory). Below 1
the kernel leaves SMs idle and can share the GPU with another kernel; above 1 it runs in waves.

A table is either *estimated* from a layer's FLOPs and bytes on a nominal GPU (:func:`estimate`) or
*measured* by the CUDA engine's calibration and loaded from JSON (:meth:`CostTable.load`). The JSON
format is::

    {"gpu": "NVIDIA H100 80GB HBM3", "source": "measured", "date": "2026-11-26",
     "network": {"name": "alexnet", "layers": {"conv1": "conv 11x11/4 pad 2 3x224x224 -> ..."}},
     "layers": {"conv1": {"1": {"cost_us": 21.5, "tb_ratio": 0.18}, "2": {...}}, ...}}

``network`` is the network the table was measured for (:meth:`Network.signature`: its name and
each kernel layer's kind, window and shapes). A table is refused for a network whose signature
differs; one without ``network`` (written before tables recorded it) is checked by its layer
names only.

Batch sizes absent from a table are interpolated linearly between the nearest present ones and
extrapolated beyond the largest as whole copies of it plus a remainder.

The first kernel layer's cost includes the launch's image copies to the device (a measured table's
layer 0 is timed with them). A measured table may say how much of it they are: ``"copies":
{"1": {"cost_us": 19.0}, "32": {...}}``, the copies of that many images alone, per batch size
(interpolated as the layers are), each below layer 0's cost for the same batch. The simulator runs
them on a copy engine beside the kernels (:mod:`~s3dnn_ros.scheduler.simulator`); a table without
them (an estimate, or a table measured before they were) keeps them inside layer 0's kernel.

A table may also carry the *host* costs measured beside it (:class:`HostCosts`, the ``"host"``
object: ``{"frame_us": .., "decision_us": .., "launch_us": .., "upload_us": .., "completion_us":
.., "launch_layers": ..}``): what the scheduler's own thread spends per frame, per decision, per
kernel launch, per uploaded image and per completion, and how many layers a decided launch
spanned on average (a segment of several layers is decided and retired once). The simulator
charges them to a modelled host and the S3DNN policy sizes its fused batches with them.
"""
from __future__ import annotations

from dataclasses import dataclass
import json
import math
import os
import re
from typing import Callable

from ..model.alexnet import Network
from ..model.layers import Layer

MAX_BATCH = 64
#: costs and tbRatios at or above this are rejected (also excludes inf and NaN)
MAX_JSON_NUMBER = 1e12


class CostTableError(ValueError):
    """A cost table file that is missing, malformed or does not fit the network."""


@dataclass(frozen=True)
class GpuSpec:
    """What the estimate needs to know about a GPU; rates are what hand-written kernels reach."""

    name: str
    sm_count: int
    max_threads_per_sm: int
    max_blocks_per_sm: int
    registers_per_sm: int
    shared_mem_per_sm: int
    fp32_flops: float
    dram_bandwidth: float
    launch_overhead_us: float

    def resident_blocks_per_sm(self, threads: int, registers: int, shared_mem: int = 0) -> int:
        """Blocks of a kernel that fit on one SM at once (``registers`` per thread)."""
        by_smem = self.shared_mem_per_sm // shared_mem if shared_mem else self.max_blocks_per_sm
        by_regs = self.registers_per_sm // (registers * threads)
        return max(1, min(self.max_blocks_per_sm, self.max_threads_per_sm // threads, by_regs,
                          by_smem))

    def tb_ratio(self, blocks: int, threads: int, registers: int, shared_mem: int = 0) -> float:
        return blocks / (self.sm_count * self.resident_blocks_per_sm(threads, registers,
                                                                     shared_mem))


#: Nominal GPUs. Rates are about 40 % (FLOPs) and 80 % (DRAM) of the datasheet peaks, what plain
#: CUDA C reaches without tensor cores: H100 SXM 67 TFLOP/s FP32, 3.35 TB/s; T4 8.1 TFLOP/s,
#: 320 GB/s.
GPUS = {
    'h100': GpuSpec('H100 SXM (nominal)', sm_count=132, max_threads_per_sm=2048,
                    max_blocks_per_sm=32, registers_per_sm=65536, shared_mem_per_sm=228 * 1024,
                    fp32_flops=25e12, dram_bandwidth=2.6e12, launch_overhead_us=3.0),
    't4': GpuSpec('T4 (nominal)', sm_count=40, max_threads_per_sm=1024, max_blocks_per_sm=16,
                  registers_per_sm=65536, shared_mem_per_sm=64 * 1024, fp32_flops=3.5e12,
                  dram_bandwidth=240e9, launch_overhead_us=5.0),
}


def _conv_geometry(layer: Layer, batch: int) -> tuple[int, int, int, int]:
    _, oh, ow = layer.out_shape
    blocks = math.ceil(layer.out_channels / 64) * math.ceil(batch * oh * ow / 64)
    return blocks, 256, 128, 16 * 1024


def _linear_geometry(layer: Layer, batch: int) -> tuple[int, int, int, int]:
    if batch <= 16:
        return math.ceil(layer.out_features / 8), 256, 64, 0
    return math.ceil(layer.out_features / 64) * math.ceil(batch / 64), 256, 128, 16 * 1024


def _pointwise_geometry(layer: Layer, batch: int) -> tuple[int, int, int, int]:
    return math.ceil(batch * math.prod(layer.out_shape) / 256), 256, 32, 0


#: (layer, batch) -> (blocks, threads per block, registers per thread, shared bytes per block) of
#: each kernel layer kind (:func:`nominal_geometry`)
NOMINAL_GEOMETRY: dict[str, Callable[[Layer, int], tuple[int, int, int, int]]] = {
    'preprocess': lambda layer, batch: (
        math.ceil(batch * layer.out_shape[1] * layer.out_shape[2] / 256), 256, 32, 0),
    'conv': _conv_geometry,
    'maxpool': _pointwise_geometry,
    'avgpool': _pointwise_geometry,
    'linear': _linear_geometry,
    'softmax': lambda layer, batch: (batch, 256, 32, 0),
}


def nominal_geometry(layer: Layer, batch: int) -> tuple[int, int, int, int]:
    """
    Return the geometry of a straightforward kernel for ``layer``.

    The geometry is (blocks, threads per block, registers per thread, shared memory per block).

    conv: implicit GEMM with 64x64 output tiles, 256 threads of 128 registers (16 accumulators
    each), 16 KiB shared; pooling / preprocessing: one thread per output element (per pixel for
    preprocessing); linear: one warp per output row, 8 rows a block, for batch <= 16, 64x64 tiles
    beyond; softmax: one block per frame.
    """
    geometry = NOMINAL_GEOMETRY.get(layer.kind)
    if geometry is None:
        raise ValueError(f'no kernel geometry for layer kind {layer.kind!r}')
    return geometry(layer, batch)


def estimate_layer(layer: Layer, batch: int, gpu: GpuSpec) -> tuple[float, float]:
    """
    (cost in µs, tbRatio) of one launch of ``layer`` over ``batch`` frames on ``gpu``.

    A kernel with tbRatio r gets the share min(r, 1) of the GPU's FP32 rate and DRAM bandwidth when
    it under-fills the GPU, and r/ceil(r) when it runs in waves (the last wave is partial). Its
    duration is the slower of the compute and memory bounds at that share plus a fixed launch
    overhead. Using the same share for the simulator's overlap rule keeps the two consistent:
    kernels whose tbRatios sum to 1 together use the whole GPU.
    """
    blocks, threads, registers, smem = nominal_geometry(layer, batch)
    tb = gpu.tb_ratio(blocks, threads, registers, smem)
    share = tb if tb <= 1 else tb / math.ceil(tb)
    seconds = max(batch * layer.flops / (gpu.fp32_flops * share),
                  layer.dram_bytes(batch) / (gpu.dram_bandwidth * share))
    return seconds * 1e6 + gpu.launch_overhead_us, tb


@dataclass(frozen=True)
class HostCosts:
    """
    Host time (µs) of the scheduler's thread.

    Per frame taken in and finished (``frame_us``), per DEQUEUE decision, per kernel launch issued
    (one per layer), per image uploaded by a layer-0 launch, per launch retired; and the layers a
    retired launch spanned on average (``launch_layers``, >= 1: a segment of several layers is one
    launch to decide and retire, however many kernels it issues).
    """

    frame_us: float = 0.0
    decision_us: float = 0.0
    launch_us: float = 0.0
    upload_us: float = 0.0
    completion_us: float = 0.0
    launch_layers: float = 1.0

    FIELDS = ('frame_us', 'decision_us', 'launch_us', 'upload_us', 'completion_us',
              'launch_layers')

    def frame_ns(self, batch: int, layers: int) -> float:
        """
        Host ns per frame when every layer runs fused over ``batch`` frames.

        Each layer's kernel launch, and one decision and one completion per ``launch_layers``
        layers, shared by the ``batch`` frames.
        """
        per_layer = self.launch_us + (self.completion_us + self.decision_us) / self.launch_layers
        return 1000 * (self.frame_us + self.upload_us + layers * per_layer / batch)

    def to_json(self) -> dict:
        return {name: round(getattr(self, name), 3) for name in self.FIELDS}

    @classmethod
    def from_json(cls, data: object, source_name: str) -> 'HostCosts':
        if not isinstance(data, dict) or set(data) - set(cls.FIELDS):
            raise CostTableError(f'{source_name}: host: expected an object with keys among '
                                 f'{", ".join(cls.FIELDS)}')
        for name, value in data.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 <= value < MAX_JSON_NUMBER:
                raise CostTableError(f'{source_name}: host.{name}={value!r}: '
                                     'must be a number >= 0')
        if data.get('launch_layers', 1) < 1:
            raise CostTableError(f'{source_name}: host.launch_layers={data["launch_layers"]!r}: '
                                 'must be a number >= 1')
        return cls(**{name: float(value) for name, value in data.items()})


#: host costs the simulator assumes when a table has none: only a launch costs the host, as
#: PyCUDA's call does (the default of ``s3dnn-sim --launch-overhead-us``)
NOMINAL_HOST = HostCosts(launch_us=8.0)


class CostTable:
    """
    Durations (ns) and tbRatios per kernel layer index and batch size, with slack bookkeeping.

    ``remaining_ns[i]`` is the batch-1 cost of kernel layers i..end: what a frame about to run
    layer i still needs, used for its slack.
    """

    def __init__(self, network: Network, entries: dict[str, dict[int, tuple[float, float]]],
                 gpu: str, source: str, date: str = '', host: HostCosts | None = None,
                 copies: dict[int, float] | None = None):
        self.network = network
        self.gpu = gpu
        self.source = source
        self.date = date
        self.entries = entries
        self.host = host  # measured host costs, None when the table has none
        #: µs of layer 0's image copies by batch size, None when the table has none
        self.copies = copies
        names = [layer.name for layer in network.kernel_layers]
        for name in names:
            if not entries.get(name):
                raise CostTableError(f'cost table ({gpu}): no entry for layer {name!r}; '
                                     f'a table needs every kernel layer: {", ".join(names)}')
        # dense lookup tables: [layer index][batch] for batch 1..MAX_BATCH (index 0 unused)
        self._cost_ns = [[0] + [round(1000 * self._interpolate(entries[n], b)[0])
                                for b in range(1, MAX_BATCH + 1)] for n in names]
        self._tb = [[0.0] + [self._interpolate(entries[n], b)[1] for b in range(1, MAX_BATCH + 1)]
                    for n in names]
        suffix, total = [], 0
        for row in reversed(self._cost_ns):
            total += row[1]
            suffix.append(total)
        self.remaining_ns = suffix[::-1] + [0]
        self._copy_ns = [0] * (MAX_BATCH + 1)
        if copies:
            points = {batch: (cost, 0.0) for batch, cost in copies.items()}
            self._copy_ns = [0] + [round(1000 * self._interpolate(points, b)[0])
                                   for b in range(1, MAX_BATCH + 1)]
            for batch in range(1, MAX_BATCH + 1):
                if self._copy_ns[batch] >= self._cost_ns[0][batch]:
                    raise CostTableError(
                        f'cost table ({gpu}): copies at batch {batch} '
                        f'({self._copy_ns[batch] / 1000:g} µs): must be below the cost of '
                        f'layer {names[0]!r} ({self._cost_ns[0][batch] / 1000:g} µs), '
                        'which includes them')
        # frame_gpu_ns by batch (index 0 unused): rule 6 asks for it about every millisecond
        self._frame_gpu_ns = [0.0] + [sum(row[b] for row in self._cost_ns) / b
                                      for b in range(1, MAX_BATCH + 1)]

    @staticmethod
    def _interpolate(points: dict[int, tuple[float, float]], batch: int) -> tuple[float, float]:
        if batch in points:
            return points[batch]
        sizes = sorted(points)
        largest = sizes[-1]
        if batch > largest:
            whole, rest = divmod(batch, largest)
            cost, tb = points[largest]
            extra_cost, extra_tb = CostTable._interpolate(points, rest) if rest else (0.0, 0.0)
            return whole * cost + extra_cost, whole * tb + extra_tb
        lower = max((s for s in sizes if s < batch), default=None)
        upper = min(s for s in sizes if s > batch)
        if lower is None:  # below the smallest measured size: scale down proportionally
            cost, tb = points[upper]
            return cost * batch / upper, tb * batch / upper
        t = (batch - lower) / (upper - lower)
        (c0, r0), (c1, r1) = points[lower], points[upper]
        return c0 + t * (c1 - c0), r0 + t * (r1 - r0)

    def cost_ns(self, layer_index: int, batch: int = 1) -> int:
        if batch <= MAX_BATCH:
            return self._cost_ns[layer_index][batch]
        return round(1000 * self._interpolate(
            self.entries[self.network.kernel_layers[layer_index].name], batch)[0])

    def copy_ns(self, batch: int = 1) -> int:
        """
        Return the part of ``cost_ns(0, batch)`` that copies the images to the device.

        0 when the table does not say.
        """
        if batch <= MAX_BATCH:
            return self._copy_ns[batch]
        if not self.copies:
            return 0
        points = {size: (cost, 0.0) for size, cost in self.copies.items()}
        return round(1000 * self._interpolate(points, batch)[0])

    def kernel_batch(self, layer_index: int) -> int:
        """
        Return the layer's largest measured batch.

        A launch of more frames runs as several kernels.
        """
        return max(self.entries[self.network.kernel_layers[layer_index].name])

    def tb_ratio(self, layer_index: int, batch: int = 1) -> float:
        if batch <= MAX_BATCH:
            return self._tb[layer_index][batch]
        return self._interpolate(self.entries[self.network.kernel_layers[layer_index].name],
                                 batch)[1]

    @property
    def frame_cost_ns(self) -> int:
        """Batch-1 cost of a whole frame."""
        return self.remaining_ns[0]

    def frame_gpu_ns(self, batch: int) -> float:
        """
        GPU ns per frame of a whole frame run fused over ``batch`` frames.

        Its layers run one after another.
        """
        if batch <= MAX_BATCH:
            return self._frame_gpu_ns[batch]
        return sum(self.cost_ns(index, batch) for index in range(len(self._cost_ns))) / batch

    def with_host(self, host: HostCosts | None) -> 'CostTable':
        """Return the same table carrying ``host``."""
        return CostTable(self.network, self.entries, self.gpu, self.source, self.date, host,
                         self.copies)

    def to_json(self) -> dict:
        data = {'gpu': self.gpu, 'source': self.source, 'date': self.date,
                'network': self.network.signature(),
                'layers': {name: {str(b): {'cost_us': round(c, 3), 'tb_ratio': round(r, 5)}
                                  for b, (c, r) in sorted(points.items())}
                           for name, points in self.entries.items()}}
        if self.copies is not None:
            data['copies'] = {str(b): {'cost_us': round(c, 3)}
                              for b, c in sorted(self.copies.items())}
        if self.host is not None:
            data['host'] = self.host.to_json()
        return data

    def save(self, path: str | os.PathLike) -> None:
        with open(path, 'w', encoding='utf-8') as file:
            json.dump(self.to_json(), file, indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike, network: Network) -> 'CostTable':
        path = os.fspath(path)
        try:
            with open(path, encoding='utf-8') as file:
                data = json.load(file)
        except FileNotFoundError:
            raise CostTableError(f'cost table {path!r} does not exist') from None
        except (OSError, ValueError) as error:  # ValueError covers JSON and UTF-8 decoding errors
            raise CostTableError(f'cost table {path!r} is not readable JSON: {error}') from error
        return cls.from_json(data, network, path)

    @classmethod
    def from_json(cls, data: object, network: Network,
                  source_name: str = 'cost table') -> 'CostTable':
        if not isinstance(data, dict) or not isinstance(data.get('layers'), dict):
            raise CostTableError(f'{source_name}: expected an object with a "layers" object')
        if 'network' in data:
            _check_network(data['network'], network, source_name)
        known = {layer.name for layer in network.kernel_layers}
        entries: dict[str, dict[int, tuple[float, float]]] = {}
        for name, points in data['layers'].items():
            if name not in known:
                raise CostTableError(f'{source_name}: layers.{name}: unknown layer; allowed: '
                                     f'{", ".join(sorted(known))}')
            entries[name] = {batch: (entry['cost_us'], entry['tb_ratio'])
                             for batch, entry in _points(points, f'layers.{name}', source_name,
                                                         ('cost_us', 'tb_ratio')).items()}
        copies = None
        if 'copies' in data:
            copies = {batch: entry['cost_us'] for batch, entry in _points(
                data['copies'], 'copies', source_name, ('cost_us',)).items()}
        host = HostCosts.from_json(data['host'], source_name) if 'host' in data else None
        return cls(network, entries, str(data.get('gpu', 'unknown')),
                   str(data.get('source', 'file')), str(data.get('date', '')), host, copies)


def _check_network(recorded: object, network: Network, source_name: str) -> None:
    """Refuse a table whose ``network`` object is not ``network``'s signature."""
    expected = network.signature()
    if not isinstance(recorded, dict) or not isinstance(recorded.get('layers'), dict):
        raise CostTableError(f'{source_name}: network: expected {{"name": ..., "layers": '
                             '{layer name: signature}}')
    if recorded.get('name') != expected['name']:
        raise CostTableError(f'{source_name}: network.name={recorded.get("name")!r}: the table '
                             f'is for another network; allowed {expected["name"]!r}')
    layers = recorded['layers']
    for name, signature in expected['layers'].items():
        if layers.get(name) != signature:
            raise CostTableError(f'{source_name}: network.layers.{name}={layers.get(name)!r}: '
                                 f'the table is for another layer; allowed {signature!r}')
    for name in layers:
        if name not in expected['layers']:
            raise CostTableError(f'{source_name}: network.layers.{name}: unknown layer; allowed: '
                                 f'{", ".join(sorted(expected["layers"]))}')


def _points(points: object, key: str, source_name: str,
            fields: tuple[str, ...]) -> dict[int, dict[str, float]]:
    """Check a JSON object of batch size -> entry with positive number ``fields``."""
    if not isinstance(points, dict) or not points:
        raise CostTableError(f'{source_name}: {key}: expected an object of batch size -> entry')
    checked = {}
    for batch, entry in points.items():
        where = f'{key}.{batch}'
        if not re.fullmatch(r'[0-9]{1,4}', str(batch)) or not 1 <= int(batch) <= 4096:
            raise CostTableError(f'{source_name}: {where}: batch size must be an integer 1..4096')
        if not isinstance(entry, dict):
            shape = ', '.join(f'"{field}": ...' for field in fields)
            raise CostTableError(f'{source_name}: {where}: expected {{{shape}}}')
        for field in fields:
            value = entry.get(field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 < value < MAX_JSON_NUMBER:
                raise CostTableError(f'{source_name}: {where}.{field}={value!r}: '
                                     'must be a positive number')
        checked[int(batch)] = {field: float(entry[field]) for field in fields}
    return checked


def estimate(network: Network, gpu: GpuSpec | str, batches=range(1, MAX_BATCH + 1)) -> CostTable:
    """
    Return a cost table derived from FLOPs and bytes on a nominal GPU.

    See :func:`estimate_layer`.
    """
    if isinstance(gpu, str):
        if gpu not in GPUS:
            raise CostTableError(f'gpu={gpu!r}: allowed {", ".join(GPUS)}')
        gpu = GPUS[gpu]
    entries = {}
    for layer in network.kernel_layers:
        points, floor = {}, 0.0
        for batch in sorted(batches):
            cost, tb = estimate_layer(layer, batch, gpu)
            # tile rounding can make a larger batch look cheaper: it never is
            floor = max(floor, cost)
            points[batch] = (floor, tb)
        entries[layer.name] = points
    return CostTable(network, entries, gpu.name, 'estimated')
