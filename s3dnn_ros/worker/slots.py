"""
Frame slots in shared memory.

Where an image crosses from the node process into the scheduler worker.

Each camera has a *ring* of ``queue_depth + 2`` equal slots in one POSIX shared-memory segment: up
to ``queue_depth`` frames waiting, one running, one being written. The node copies an image into a
free slot (its only copy of the frame) and sends the worker a small message naming the slot; the
worker page-locks the whole segment once (:meth:`~s3dnn_ros.engine.base.Engine.pin`), so the GPU
upload reads the slot where it lies. A slot is free again when the worker reports its frame
finished or dropped.

A camera whose images outgrow the slots gets a new ring of the next *generation*; frames still in
the old one finish there, and the old segment is released once none is left. The node creates and
unlinks every segment; the worker only attaches to them.
"""
from __future__ import annotations

from multiprocessing import shared_memory
import sys
from typing import Any, cast

import numpy as np

from ..engine.base import ENCODINGS

#: slots are sized in whole pages, so a segment can be page-locked as it is
PAGE = 4096


def slot_bytes_for(nbytes: int) -> int:
    return max(PAGE, -(-nbytes // PAGE) * PAGE)


def frame_bytes(height: int, width: int, encoding: str) -> int:
    """
    Return the bytes of a ``height`` x ``width`` frame in a slot (rows packed).

    Raises ValueError for an encoding the engines do not take.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f'encoding {encoding!r} is not supported; allowed: '
                         f'{", ".join(ENCODINGS)}')
    return height * width * ENCODINGS[encoding][0]


def attach(name: str) -> shared_memory.SharedMemory:
    """
    Open an existing segment without taking ownership of it.

    The creating process unlinks it, and before Python 3.13 an attaching process's resource tracker
    would unlink it too when that process exits (a restarted worker would then find its frames
    gone), so the attaching side does not register it.
    """
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name, track=False)
    from multiprocessing import resource_tracker
    register = resource_tracker.register
    resource_tracker.register = lambda *args: None
    try:
        return shared_memory.SharedMemory(name)
    finally:
        resource_tracker.register = register


class Ring:
    """One camera's slots: ``slots`` slots of ``slot_bytes`` bytes each in segment ``name``."""

    def __init__(self, memory: shared_memory.SharedMemory, slot_bytes: int, slots: int,
                 generation: int):
        if memory.size < slot_bytes * slots:
            raise ValueError(f'segment {memory.name} holds {memory.size} bytes, '
                             f'{slots} slots of {slot_bytes} need {slot_bytes * slots}')
        self.memory = memory
        self.slot_bytes = slot_bytes
        self.slots = slots
        self.generation = generation
        self.array: Any = np.frombuffer(cast(Any, memory.buf), np.uint8, slot_bytes * slots)
        # what image views are taken of: the ring's own bytes, or those bytes as the engine
        # page-locked them (:meth:`use`)
        self._source: Any = self.array
        # the last image view handed out per slot, as (height, width, encoding, view): a camera's
        # frames repeat their geometry, and the engine recognises a view it staged before
        self._views: list[tuple[int, int, str, np.ndarray] | None] = [None] * slots
        #: frames in its slots that the reader took and has not resolved yet (kept by the reader)
        self.in_use = 0

    @property
    def name(self) -> str:
        return self.memory.name

    @classmethod
    def create(cls, slot_bytes: int, slots: int, generation: int) -> 'Ring':
        return cls(shared_memory.SharedMemory(create=True, size=slot_bytes * slots), slot_bytes,
                   slots, generation)

    @classmethod
    def attach(cls, name: str, slot_bytes: int, slots: int, generation: int) -> 'Ring':
        return cls(attach(name), slot_bytes, slots, generation)

    def describe(self) -> tuple[str, int, int, int]:
        """
        Return (segment name, slot bytes, slots, generation).

        That is what the other process needs to open it.
        """
        return self.memory.name, self.slot_bytes, self.slots, self.generation

    def use(self, array: np.ndarray) -> None:
        """
        Take image views of ``array`` from now on: the ring's bytes as the engine page-locked them.

        The views handed out before stay valid but are not handed out again.
        """
        self._source = array
        self._views = [None] * self.slots

    def image(self, slot: int, height: int, width: int, encoding: str) -> np.ndarray:
        """
        Return the H x W x C view of ``slot`` (rows packed).

        It is taken of the ring's bytes (as :meth:`use` gave them). ValueError when the frame does
        not fit or the slot is not one of the ring's. The same arguments return the same view
        object while the ring's source stays the same.
        """
        if not 0 <= slot < self.slots:
            raise ValueError(f"slot {slot} is not one of the ring's {self.slots}")
        last = self._views[slot]
        if last is not None and last[0] == height and last[1] == width and last[2] == encoding:
            return last[3]
        nbytes = frame_bytes(height, width, encoding)
        if not 0 < nbytes <= self.slot_bytes:
            raise ValueError(f'a {height}x{width} {encoding} frame ({nbytes} bytes) '
                             f'does not fit a slot of {self.slot_bytes} bytes')
        start = slot * self.slot_bytes
        view = self._source[start:start + nbytes].reshape(height, width, ENCODINGS[encoding][0])
        self._views[slot] = (height, width, encoding, view)
        return view

    def close(self) -> bool:
        """
        Unmap this process's view.

        Returns False while views of it are still alive elsewhere in the process.
        """
        self.array = self._source = None
        self._views = [None] * self.slots
        try:
            self.memory.close()
        except BufferError:
            return False
        return True

    def unlink(self) -> None:
        """
        Remove the segment's name (the creator does this once).

        Mappings stay valid until closed.
        """
        try:
            self.memory.unlink()
        except FileNotFoundError:
            pass
