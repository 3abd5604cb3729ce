"""
The node's side of a scheduler worker.

Start it, hand it frames, get outputs and statistics back, restart it when it dies, and leave
nothing behind when closed.

:meth:`WorkerClient.submit` copies an image into a free slot of its camera's ring (:mod:`.slots`)
and writes the worker a 44-byte notice on a pipe (:mod:`.frame_pipe`); it may be called from any
thread. Rings, deadlines and stop go to the worker as messages on a socket. A receiver thread takes
the worker's messages: outputs (frames finished or dropped) go to ``on_outputs`` after their slots
are free again, and the latest statistics snapshot replaces :attr:`WorkerClient.stats` (a dict
never changed once published, so reading it from another thread is safe). If the worker dies, every
frame it held is reported dropped (``DROP_WORKER``), ``on_restart`` is told why, and a new worker
is started with the same spec and rings; frames submitted meanwhile are refused with that reason.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
import os
from pathlib import Path
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Callable

import numpy as np

from .core import DROPPED, expand_outputs
from .frame_pipe import FrameWriter
from .slots import frame_bytes, Ring, slot_bytes_for
from .spec import WorkerSpec

#: refusal and drop reasons of :meth:`WorkerClient.submit` and of frames lost with a worker
NO_SLOT, DROP_WORKER = 'no free slot', 'worker'
#: how long a worker may take to build itself (compiling kernels and calibrating on a first start)
START_TIMEOUT_S = 300.0
#: how long a stopped worker gets to exit before it is killed
STOP_TIMEOUT_S = 10.0
#: wait between attempts when a replacement worker fails to start
RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0)
#: the folder holding the s3dnn_ros package, so the worker imports the same code as its parent
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
WORKER_COMMAND = ['-m', 's3dnn_ros.worker.process']


class WorkerError(RuntimeError):
    """
    The worker could not start.

    The message is the worker's own (it names the parameter at fault).
    """


@dataclass
class _Camera:
    slots: int
    ring: Ring | None = None
    free: list[int] = field(default_factory=list)
    inflight: dict[int, tuple[Ring, int]] = field(default_factory=dict)  # seq -> (ring, slot)
    old: list[Ring] = field(default_factory=list)  # outgrown rings with frames still in them
    next_seq: int = 0
    # slots of ``ring`` that hold the image last submitted (``submit(..., unchanged=True)``)
    current: set[int] = field(default_factory=set)


class WorkerClient:
    """One scheduler worker process (see the module docstring)."""

    def __init__(self, spec: WorkerSpec, on_outputs: Callable[[list[tuple]], None],
                 on_restart: Callable[[str], None] | None = None,
                 start_timeout_s: float = START_TIMEOUT_S):
        self.spec = spec
        self._on_outputs = on_outputs
        self._on_restart = on_restart
        self._start_timeout_s = start_timeout_s
        self._cameras = [_Camera(camera.queue_depth + 2) for camera in spec.cameras]
        self._lock = threading.Lock()
        self._closing = False
        self.stats: dict | None = None
        self.restarts = 0
        self.last_failure: str | None = None
        self._process: subprocess.Popen | None = None
        self._connection: Connection | None = None
        self._frames: FrameWriter | None = None
        self.info = self._start()
        self._receiver = threading.Thread(target=self._receive, name='s3dnn-worker-receiver',
                                          daemon=True)
        self._receiver.start()

    # ------------------------------------------------------------------ process
    def _start(self) -> dict:
        """
        Start a worker and wait for it to be built.

        Raises WorkerError with its message when it cannot be.
        """
        ours, theirs = socket.socketpair()
        frames_read, frames_write = os.pipe()
        frames = FrameWriter(frames_write)
        env = dict(os.environ,
                   PYTHONPATH=os.pathsep.join(filter(None, [PACKAGE_ROOT,
                                                            os.environ.get('PYTHONPATH')])))
        try:
            process = subprocess.Popen([sys.executable, *WORKER_COMMAND, str(theirs.fileno()),
                                        str(frames_read)],
                                       pass_fds=(theirs.fileno(), frames_read), env=env,
                                       stdin=subprocess.DEVNULL)
        except BaseException:
            frames.close()
            raise
        finally:
            theirs.close()
            os.close(frames_read)
        connection = Connection(ours.detach())
        try:
            connection.send(self.spec)
            end = time.monotonic() + self._start_timeout_s
            while not connection.poll(0.1):
                if process.poll() is not None or time.monotonic() > end:
                    raise WorkerError('the scheduler worker '
                                      f'{self._exit_text(process)} before it was ready')
            kind, payload = connection.recv()
        except (EOFError, OSError) as error:
            self._stop_process(process, connection, frames)
            raise WorkerError(f'the scheduler worker {self._exit_text(process)} '
                              f'while starting ({error})') from None
        except WorkerError:
            self._stop_process(process, connection, frames)
            raise
        if kind != 'ready':
            self._stop_process(process, connection, frames)
            raise WorkerError(payload)
        with self._lock:
            self._process, self._connection, self._frames = process, connection, frames
            for index, camera in enumerate(self._cameras):
                if camera.ring is not None:
                    connection.send(('ring', index, *camera.ring.describe()))
                    frames.ring(index, camera.ring.generation)
        return payload

    @staticmethod
    def _exit_text(process: subprocess.Popen) -> str:
        code = process.poll()
        if code is None:
            return 'did not answer'
        if code < 0:
            return f'was killed by signal {signal.Signals(-code).name}'
        return f'exited with status {code}'

    @staticmethod
    def _stop_process(process: subprocess.Popen, connection: Connection | None,
                      frames: FrameWriter | None, close: bool = True) -> None:
        """
        Ask the worker to stop, kill it after STOP_TIMEOUT_S, reap it, close the frame pipe.

        Close the connection unless told not to (the receiver thread may still be reading it).
        """
        if connection is not None:
            try:
                connection.send(('stop',))
            except OSError:
                pass
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if frames is not None:
            frames.close()
        if connection is not None and close:
            connection.close()

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None else None

    def segments(self) -> list[str]:
        """Names of the shared-memory segments holding this client's frame slots now."""
        with self._lock:
            return [ring.name for state in self._cameras for ring in [*state.old, state.ring]
                    if ring is not None]

    # ------------------------------------------------------------------ frames
    def submit(self, camera: int, image: np.ndarray, encoding: str,
               release_ns: int, unchanged: bool = False) -> tuple[int | None, str | None]:
        """
        Copy ``image`` into a free slot of ``camera`` and hand it to the worker.

        ``image`` is H x W x C uint8, any strides. Returns ``(seq, None)``, whose output will carry
        ``seq``; or ``(None, reason)`` when it was refused (NO_SLOT: every slot holds a frame the
        worker has not resolved; DROP_WORKER: the worker is being replaced). ValueError for an
        encoding the engines do not take. ``unchanged``: the caller promises that ``image`` holds
        the same pixels as the camera's previous submit (a load generator replaying one image), so
        a slot already written with them is not written again.
        """
        height, width = image.shape[:2]
        nbytes = frame_bytes(height, width, encoding)
        state = self._cameras[camera]
        with self._lock:
            if self._connection is None:
                return None, DROP_WORKER
            if state.ring is None or nbytes > state.ring.slot_bytes:
                self._new_ring(camera, state, nbytes)
            if not state.free:
                return None, NO_SLOT
            ring, slot = state.ring, state.free.pop()
            seq = state.next_seq = state.next_seq + 1
            state.inflight[seq] = (ring, slot)
            if unchanged:
                copy = slot not in state.current
                state.current.add(slot)
            else:
                copy, state.current = True, {slot}  # the other slots hold an older image
        # the slot is ours until its output
        if copy:
            np.copyto(ring.image(slot, height, width, encoding), image)
        with self._lock:
            frames = self._frames
            if frames is not None and state.inflight.get(seq) == (ring, slot):
                try:
                    frames.frame(camera, ring.generation, slot, seq, release_ns, height, width,
                                 encoding)
                    return seq, None
                except OSError:
                    pass  # the worker died: the receiver thread restarts it
            self._free(state, seq)
        return None, DROP_WORKER

    def set_deadline(self, camera: int, deadline_ns: int) -> None:
        """
        Set camera ``camera``'s relative deadline for the frames submitted from now on.

        It also holds for a worker that replaces this one.
        """
        with self._lock:
            cameras = list(self.spec.cameras)
            cameras[camera] = dataclasses.replace(cameras[camera], deadline_ns=deadline_ns)
            self.spec = dataclasses.replace(self.spec, cameras=tuple(cameras))
            if self._connection is not None:
                try:
                    self._connection.send(('deadline', camera, deadline_ns))
                except OSError:
                    pass  # the worker died: its replacement starts from the updated spec

    def _new_ring(self, index: int, state: _Camera, nbytes: int) -> None:
        """
        Make a ring whose slots hold ``nbytes`` (under the lock).

        The old one is released when it empties.
        """
        generation = state.ring.generation + 1 if state.ring is not None else 0
        ring = Ring.create(slot_bytes_for(nbytes), state.slots, generation)
        if state.ring is not None:
            state.old.append(state.ring)
        state.ring, state.free = ring, list(range(state.slots))
        state.current.clear()
        self._connection.send(('ring', index, *ring.describe()))
        self._frames.ring(index, generation)
        self._release_old(state)

    def _free(self, state: _Camera, seq: int) -> None:
        ring, slot = state.inflight.pop(seq)
        if ring is state.ring:
            state.free.append(slot)
        elif state.old:
            self._release_old(state)

    @staticmethod
    def _release_old(state: _Camera) -> None:
        busy = {id(ring) for ring, _ in state.inflight.values()}
        for ring in [ring for ring in state.old if id(ring) not in busy]:
            state.old.remove(ring)
            ring.unlink()
            ring.close()

    # ------------------------------------------------------------------ receiving
    def _receive(self) -> None:
        while True:
            connection = self._connection
            if connection is None:  # closed while a replacement was starting
                return
            try:
                kind, payload = connection.recv()
            except (EOFError, OSError):
                if self._closing:
                    return
                self._replace_worker('the worker ended')
                continue
            if kind == 'outputs':
                payload = expand_outputs(payload)
                with self._lock:
                    for output in payload:
                        state = self._cameras[output[1]]
                        if output[2] in state.inflight:
                            self._free(state, output[2])
                self._on_outputs(payload)
            elif kind == 'stats':
                self.stats = payload
            elif kind == 'fatal':
                self.last_failure = payload

    def _replace_worker(self, why: str) -> None:
        """Report every frame the dead worker held as dropped, then start a new one (retrying)."""
        with self._lock:
            process, connection, frames = self._process, self._connection, self._frames
            self._process = self._connection = self._frames = None
            now = time.monotonic_ns()
            lost = []
            for index, state in enumerate(self._cameras):
                for seq in list(state.inflight):
                    self._free(state, seq)
                    lost.append((DROPPED, index, seq, now, DROP_WORKER))
        if process is not None:
            self._stop_process(process, connection, frames)
            why = (f'the scheduler worker {self._exit_text(process)}'
                   + (f': {self.last_failure}' if self.last_failure else ''))
        self.last_failure = why
        if lost:
            self._on_outputs(lost)
        attempt = 0
        while not self._closing:
            self.restarts += 1
            if self._on_restart is not None:
                self._on_restart(why)
            try:
                self._start()
                return
            except WorkerError as error:
                why = f'a replacement worker failed to start: {error}'
                self.last_failure = why
                time.sleep(RESTART_BACKOFF_S[min(attempt, len(RESTART_BACKOFF_S) - 1)])
                attempt += 1

    # ------------------------------------------------------------------ shutdown
    def close(self) -> None:
        """Stop the worker, join the receiver, and remove every shared-memory segment."""
        if self._closing:
            return
        self._closing = True
        with self._lock:
            process, connection, frames = self._process, self._connection, self._frames
            self._frames = None
        if process is not None:
            self._stop_process(process, connection, frames, close=False)
        self._receiver.join(STOP_TIMEOUT_S + 5)
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            for state in self._cameras:
                for ring in [*state.old, *([state.ring] if state.ring is not None else [])]:
                    ring.unlink()
                    ring.close()
                state.old, state.ring, state.free = [], None, []
