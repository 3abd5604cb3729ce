"""
The engine interface: run one layer of the network for a fused batch of pipelines.

An engine owns the device state of every pipeline (input staging, one activation buffer per layer,
the result) and a pool of streams. The dispatcher drives it with four calls:

* ``open_pipeline(pid)`` once per camera, before its first frame (allocates everything up front);
  a pid is any hashable value (the dispatcher's pipeline numbers, calibration's tuples);
* ``set_input(pid, image, encoding)`` (or ``set_inputs`` for several) when a frame of that pipeline
  is about to run layer 0 (images in memory given to ``pin`` are read where they lie, without a
  copy);
* ``launch(layer_index, pids, stream)`` runs kernel layer ``layer_index`` for the frames currently
  in pipelines ``pids`` (a fused launch when there are several) on stream ``stream``, after
  everything launched earlier on that stream, and returns a :class:`Completion` to poll;
  ``launch_layers(first, count, pids, stream)`` runs a segment of ``count`` consecutive layers the
  same way, with one completion for all of them;
* ``result(pid)`` after the last layer's completion: the (2, k) scores/class-ids array.

Costs and tbRatios per (layer, batch) come from :meth:`Engine.cost_table`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Hashable, Sequence

import numpy as np

from .costs import CostTable
from ..model.alexnet import Network

#: the engines a node or tool may ask for ('auto': cuda where a GPU and pycuda are, else reference;
#: 'timed': a stand-in taking a cost table's time, :mod:`.timed`)
ENGINE_KINDS = ('auto', 'cuda', 'reference', 'timed')

#: the one pixel type the engines take
UINT8 = np.dtype(np.uint8)
#: channel layout of each accepted image encoding: (channels, index of R, G, B in a pixel)
ENCODINGS = {
    'rgb8': (3, (0, 1, 2)),
    'bgr8': (3, (2, 1, 0)),
    'rgba8': (4, (0, 1, 2)),
    'bgra8': (4, (2, 1, 0)),
    'mono8': (1, (0, 0, 0)),
}


class EngineError(RuntimeError):
    """
    A failure of the engine (device, launch, memory).

    The node reports it as an ERROR diagnostic.
    """


class Completion(ABC):
    """Handle of a launch; the dispatcher polls it and never blocks on it in the hot loop."""

    @abstractmethod
    def done(self) -> bool:
        """
        Return True once the launch (and any copy it ends with) has finished.

        Raises EngineError on failure.
        """

    @abstractmethod
    def wait(self) -> None:
        """Block until done."""


class Done(Completion):
    """Completion of a synchronous launch."""

    def done(self) -> bool:
        return True

    def wait(self) -> None:
        pass


class Engine(ABC):
    """Runs kernel layers of ``network`` for fused batches of pipelines."""

    #: 'reference' or 'cuda'
    name = 'engine'
    #: streams launches run on, ``launch``'s stream taken modulo it (None: launches complete in the
    #: call)
    streams: int | None = None

    def __init__(self, network: Network):
        self.network = network
        self.layers = network.kernel_layers
        #: kernels issued so far: one per layer of a launch, or one per kernel where a launch of
        #: more frames than a kernel takes runs as several (the worker's host time per kernel
        #: launch divides by it)
        self.kernel_launches = 0

    @property
    @abstractmethod
    def device_name(self) -> str:
        """GPU name, or 'cpu'."""

    @abstractmethod
    def cost_table(self) -> CostTable:
        """Duration and tbRatio of every (kernel layer, batch size) on this engine's device."""

    @abstractmethod
    def open_pipeline(self, pid: Hashable) -> None:
        """Allocate pipeline ``pid``'s buffers."""

    @abstractmethod
    def close_pipeline(self, pid: Hashable) -> None:
        """Release pipeline ``pid``'s buffers."""

    @abstractmethod
    def set_input(self, pid: Hashable, image: np.ndarray, encoding: str) -> None:
        """
        Stage ``image`` as pipeline ``pid``'s next frame.

        ``image`` is H x W x C uint8; its rows may be padded.
        """

    def set_inputs(self, items: Sequence[tuple[Hashable, np.ndarray, str]]) -> None:
        """
        Stage several pipelines' frames at once: ``set_input`` for each ``(pid, image, encoding)``.

        These are a fused launch's frames; engines may copy them in parallel.
        """
        for pid, image, encoding in items:
            self.set_input(pid, image, encoding)

    def upload(self, pids: Sequence[Hashable]) -> Completion | None:
        """
        Start moving the staged images of ``pids`` to the device now, ahead of their layer 0.

        The next layer-0 launch of each of these pipelines then takes its image from that copy
        instead of copying it itself. Returns the copies' completion (None: nothing was started;
        an engine without a device reads the staged image at the launch).
        """
        return None

    def pin(self, array: np.ndarray) -> np.ndarray:
        """
        Make a contiguous 1-D uint8 host array (frame slots the caller owns) fast to upload from.

        Returns the array to take image views of. Images that are views of it are read where they
        lie. Engines without a device return it unchanged.
        """
        return array

    def unpin(self, array: np.ndarray) -> None:
        """Undo :meth:`pin` once nothing launched reads from ``array`` any more."""

    @abstractmethod
    def launch(self, layer_index: int, pids: Sequence[Hashable], stream: int) -> Completion:
        """Run kernel layer ``layer_index`` for the frames of ``pids`` on ``stream``."""

    def launch_layers(self, first: int, count: int, pids: Sequence[Hashable],
                      stream: int) -> Completion:
        """
        Run kernel layers ``first`` .. ``first + count - 1`` for ``pids`` on ``stream``.

        One after another, as ``count`` launches would. Returns one completion for all of them.
        This default issues them as separate launches and returns the last one's completion (a
        stream runs in order); engines whose launches cost host time override it to issue the
        kernels with one set of events.
        """
        self.check_launch(first, pids, count)
        completion = None
        for layer_index in range(first, first + count):
            completion = self.launch(layer_index, pids, stream)
        return completion

    @abstractmethod
    def result(self, pid: Hashable) -> np.ndarray:
        """
        Return the (2, k) array of pipeline ``pid``'s last frame.

        Row 0 holds the scores (descending), row 1 the class ids.
        """

    def results(self, pids: Sequence[Hashable]) -> np.ndarray:
        """Return a copy of the :meth:`result` of each of ``pids``, as one (n, 2, k) array."""
        return np.array([self.result(pid) for pid in pids])

    def check(self) -> None:
        """
        Raise EngineError when the device can no longer run anything (a lost GPU context).

        The caller then starts over with a new engine, in a new process.
        """

    def close(self) -> None:
        """Release everything; the engine is unusable afterwards."""

    def check_launch(self, layer_index: int, pids: Sequence[Hashable], count: int = 1) -> None:
        """
        Raise a ValueError naming what is wrong with a launch's layers or pipeline list.

        The launch runs ``count`` layers from ``layer_index`` on.
        """
        if not 0 <= layer_index < len(self.layers):
            raise ValueError(f'layer index {layer_index!r} out of range 0..{len(self.layers) - 1}')
        if not 1 <= count <= len(self.layers) - layer_index:
            raise ValueError(f'launch of {count!r} layers from layer {layer_index}: allowed '
                             f'1..{len(self.layers) - layer_index}')
        if not pids:
            raise ValueError(f'launch of layer {layer_index} '
                             f'({self.layers[layer_index].name}) with no pipelines')
        if len(set(pids)) != len(pids):
            raise ValueError(f'launch of layer {layer_index}: pipelines {list(pids)} repeat a pid')


def check_image(image: np.ndarray, encoding: str) -> int:
    """
    Return the number of channels of ``image`` for ``encoding``.

    Raises a ValueError naming what is wrong otherwise.
    """
    spec = ENCODINGS.get(encoding)
    if spec is None:
        raise ValueError(f'encoding {encoding!r} is not supported; allowed: '
                         f'{", ".join(ENCODINGS)}')
    channels = spec[0]
    shape = image.shape
    # (``is``: numpy's built-in dtypes are single objects; comparing dtypes costs microseconds)
    if (image.dtype is not UINT8 and image.dtype != UINT8) or len(shape) != 3 \
            or shape[2] != channels:
        raise ValueError(f'{encoding} image must be H x W x {channels} uint8, '
                         f'got {shape} {image.dtype}')
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(f'image has zero size {shape[:2]}')
    return channels
