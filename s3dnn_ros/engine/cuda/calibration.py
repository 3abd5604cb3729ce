"""
Cost tables measured on the device: GPU time per kernel layer and fused batch size.

:class:`Calibration` is mixed into :class:`~.engine.CudaEngine`: it times the engine's own
launches (CUDA events, queued behind a delay kernel so runs follow one another on the GPU instead
of waiting for the host), builds a :class:`~s3dnn_ros.engine.costs.CostTable` with each launch's
occupancy tbRatio, and loads or saves it at the engine's ``cost_table_path``.
"""
from __future__ import annotations

import datetime
import os
import statistics
import time
from typing import Sequence

import numpy as np

from ..base import EngineError
from ..costs import CostTable, CostTableError


class Calibration:
    """Timing and calibration of a :class:`~.engine.CudaEngine` (a mixin of its launches)."""

    def _delay(self, stream, ns: int) -> None:
        self._function('delay')(np.uint64(ns), grid=(1, 1), block=(32, 1, 1), stream=stream)

    def time_launches(self, layer_indices: Sequence[int], pids: Sequence, warmup: int = 3,
                      repeats: int = 20) -> list[float]:
        """
        Return GPU durations (µs) of ``repeats`` runs of the kernel layers ``layer_indices``.

        The layers run in order over ``pids`` on stream 0; a duration spans from the first launch's
        start to the last one's end. The runs are queued behind a delay kernel, so each starts when
        the one before ends instead of waiting for the host.
        """
        def run():
            completions = [self.launch(index, pids, 0) for index in layer_indices]
            return completions[0], completions[-1]

        begin = time.perf_counter()
        for _ in range(warmup):
            run()
        issue_s = (time.perf_counter() - begin) / max(warmup, 1)
        self._delay(self._streams[0], int(2e9 * issue_s * repeats) + 1_000_000)
        runs = [run() for _ in range(repeats)]
        runs[-1][1].wait()
        self._activate()
        try:
            return [last.events[1].time_since(first.events[0]) * 1000 for first, last in runs]
        except self._drv.Error as error:
            raise EngineError(f'reading launch events failed: {error}') from error

    def time_side_by_side(self, layer_index: int | None, groups: Sequence[Sequence],
                          warmup: int = 3, repeats: int = 20) -> list[list[tuple[float, float]]]:
        """
        Return when each of several launches, started together, began and ended, for each run.

        One launch of kernel layer ``layer_index`` per group of pipelines, each on its own stream
        (``layer_index`` None: the copies of the groups' staged images to the device, as a layer-0
        launch makes them). Each run starts when the one before has ended on every stream, and
        gives (begin, end) in µs after its start for each launch, in the order of ``groups``: the
        other streams wait for the first one's start, so theirs begin a few µs late. The runs are
        queued behind a delay kernel, so that they follow one another on the GPU instead of
        waiting for the host.
        """
        self._check_open()
        if not 1 <= len(groups) <= len(self._streams):
            raise ValueError(f'groups: {len(groups)} launches side by side; the engine has '
                             f'{len(self._streams)} streams')
        drv = self._drv
        self._activate()
        streams = self._streams[:len(groups)]
        pipelines = [[self._pipeline(pid) for pid in pids] for pids in groups]
        ends = [None] * len(groups)

        def run():
            start = drv.Event()
            for end in ends[1:]:
                if end is not None:
                    streams[0].wait_for_event(end)
            start.record(streams[0])
            marks = []
            for number, (stream, chunk) in enumerate(zip(streams, pipelines)):
                if number:
                    stream.wait_for_event(start)
                begin, ends[number] = drv.Event(), drv.Event()
                begin.record(stream)
                if layer_index is None:
                    self._upload(chunk, stream)
                else:
                    self._enqueue(layer_index, self._columns_of(chunk), stream)
                ends[number].record(stream)
                marks.append((begin, ends[number]))
            return start, marks

        try:
            warm_from = time.perf_counter()
            for _ in range(warmup):
                run()
            issue_s = (time.perf_counter() - warm_from) / max(warmup, 1)
            self._delay(streams[0], int(2e9 * issue_s * repeats) + 1_000_000)
            runs = [run() for _ in range(repeats)]
            for end in ends:
                end.synchronize()
            return [[(first.time_since(start) * 1000, last.time_since(start) * 1000)
                     for first, last in marks] for start, marks in runs]
        except drv.Error as error:
            raise EngineError(f'timing launches side by side failed: {error}') from error

    def calibrate(self, batches: Sequence[int] | None = None, repeats: int = 20,
                  warmup: int = 3) -> CostTable:
        """
        Measure the median GPU time of each kernel layer's launch per batch size.

        ``batches`` None: 1 .. ``max_batch``, every batch one kernel launch takes.

        CUDA events, after warm-up, with the occupancy tbRatio; layer 0 includes the image uploads
        (a nominal camera image per frame), and the table's ``copies`` say how long the uploads
        alone take per batch size (:meth:`time_side_by_side`).
        """
        self._check_open()
        if batches is None:
            batches = range(1, self.max_batch + 1)
        batches = sorted({int(b) for b in batches})
        if not batches or batches[0] < 1:
            raise ValueError(f'batches={batches}: need batch sizes >= 1')
        pids = [('calibration', i) for i in range(batches[-1])]
        image = np.random.default_rng(0).integers(0, 256, self.layers[0].in_shape, dtype=np.uint8)
        encoding = {1: 'mono8', 3: 'rgb8', 4: 'rgba8'}[image.shape[2]]
        entries: dict[str, dict[int, tuple[float, float]]] = {
            layer.name: {} for layer in self.layers}
        try:
            for pid in pids:
                self.open_pipeline(pid)
                self.set_input(pid, image, encoding)
            for index in range(len(self.layers)):
                self.launch(index, pids, 0).wait()
            for index, layer in enumerate(self.layers):
                for batch in batches:
                    durations = self.time_launches([index], pids[:batch], warmup, repeats)
                    entries[layer.name][batch] = (max(statistics.median(durations), 1e-3),
                                                  self.tb_ratio(index, batch))
            copies = {}
            for batch in batches:
                runs = self.time_side_by_side(None, [pids[:batch]], warmup, repeats)
                # below the launch that makes them (the table's rule), however the medians fall
                copies[batch] = min(statistics.median(run[0][1] for run in runs),
                                    0.99 * entries[self.layers[0].name][batch][0])
        finally:
            for pid in pids:
                if pid in self._pipelines:
                    self.close_pipeline(pid)
        return CostTable(self.network, entries, self.device_name, 'measured',
                         datetime.date.today().isoformat(), copies=copies)

    def cost_table(self) -> CostTable:
        """
        Return the table at ``cost_table_path`` when it exists, else one calibration.

        The calibration is saved there when a path was given; computed once per engine.
        """
        if self._cost_table is None:
            path = self.cost_table_path
            if path is not None and os.path.isfile(path):
                self._cost_table = CostTable.load(path, self.network)
            else:
                table = self.calibrate()
                if path is not None:
                    try:
                        table.save(path)
                    except OSError as error:
                        raise CostTableError('cannot save the calibrated cost table '
                                             f'to {path!r}: {error}') from error
                self._cost_table = table
        return self._cost_table
