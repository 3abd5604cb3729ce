"""
The scheduler worker process: one :class:`~.core.WorkerCore` on one GPU.

It is fed by messages on a socket and by frame notices on a pipe. Started by
:class:`~.client.WorkerClient` as ``python -m s3dnn_ros.worker.process FD FRAMES_FD``, where FD is
its end of a socket pair and FRAMES_FD the read end of the frame pipe. The socket's protocol
(pickled tuples, :mod:`multiprocessing.connection` framing):

parent -> worker
    the :class:`~.spec.WorkerSpec` (first message);
    ``('ring', camera, name, slot_bytes, slots, generation)``: the camera's frame slots
    (:mod:`.slots`);
    ``('deadline', camera, deadline_ns)``: the camera's relative deadline for frames from now on;
    ``('stop',)``.
worker -> parent
    ``('ready', info)`` once built, or ``('error', message)`` and exit status 2;
    ``('outputs', [...])``: frames finished or dropped, as :meth:`~.core.WorkerCore.take_outputs`
    returns them (:func:`~.core.expand_outputs` makes one tuple per frame of them);
    ``('stats', snapshot)`` every ``stats_period_s``;
    ``('fatal', message)`` before exit status 3 when the GPU context is lost (the parent starts a
    new worker).

Each frame in a slot comes as a 44-byte notice on the pipe (:mod:`.frame_pipe`): one read takes
every notice waiting. A ``ring`` message is kept until the pipe reaches its ring mark, and opened
there: so a camera's notices written before its new ring are read while the old one is open.

The loop never blocks while launches are in flight: it polls the socket, the pipe and the GPU in
turn. With nothing in flight it sleeps in one poll of the socket and the pipe until a frame
arrives or the policy's hold ends.
SIGINT and SIGTERM are ignored: the parent stops the worker (a terminal's Ctrl-C reaches the whole
process group), and the worker also ends when the parent's end of the socket closes.
"""
from __future__ import annotations

import gc
from multiprocessing.connection import Connection
import selectors
import signal
import socket
import sys
import time

from .core import build_worker, WorkerCore, WorkerStartError
from .frame_pipe import FrameReader
from ..engine.base import EngineError

#: longest sleep of an idle worker between checks of its socket
IDLE_WAIT_S = 0.05
EXIT_START_FAILED, EXIT_GPU_LOST = 2, 3


class _Stop(Exception):
    """The parent said stop."""


class _Messages:
    """The socket's messages; a ring waits in :attr:`rings` until the pipe reaches its mark."""

    def __init__(self, connection: Connection, core: WorkerCore):
        self.connection, self.core = connection, core
        self.rings: dict[tuple[int, int], tuple] = {}  # (camera, generation) -> its description

    def take(self) -> None:
        """Handle every message waiting; _Stop on ``('stop',)``."""
        while self.connection.poll(0):
            self._handle(self.connection.recv())

    def open_ring(self, camera: int, generation: int) -> None:
        """At the ring's mark: open it (its message was sent before the mark was written)."""
        key = (camera, generation)
        while key not in self.rings:
            self._handle(self.connection.recv())
        self.core.open_ring(camera, *self.rings.pop(key))

    def _handle(self, message: tuple) -> None:
        kind = message[0]
        if kind == 'ring':
            camera, name, slot_bytes, slots, generation = message[1:]
            self.rings[(camera, generation)] = (name, slot_bytes, slots, generation)
        elif kind == 'deadline':
            self.core.set_deadline(*message[1:])
        elif kind == 'stop':
            raise _Stop


def serve(connection: Connection, frames: FrameReader, core: WorkerCore) -> int:
    """
    Run ``core`` on ``connection`` and ``frames`` until told to stop or the parent goes.

    Returns the exit status.
    """
    period_ns = round(core.spec.stats_period_s * 1e9)
    next_stats = time.monotonic_ns()
    errors = core.dispatcher.engine_errors
    selector = selectors.DefaultSelector()
    selector.register(connection, selectors.EVENT_READ)
    selector.register(frames, selectors.EVENT_READ)
    send = (lambda outputs: connection.send(('outputs', outputs)))
    messages = _Messages(connection, core)
    try:
        while True:
            wait_s = core.idle_wait_s(IDLE_WAIT_S)
            began = time.perf_counter_ns()
            ready = {key.fileobj for key, _ in selector.select(wait_s)}
            core.turned(began if wait_s else None)
            if connection in ready:
                messages.take()
            if frames in ready:
                start = time.perf_counter_ns()
                records = frames.read()
                index = core.take_records(records, 0, start)
                while index < len(records):  # a ring mark: open the ring, go on after it
                    messages.open_ring(records[index][1], records[index][2])
                    index = core.take_records(records, index + 1, time.perf_counter_ns())
            core.cycle(send)
            if core.dispatcher.engine_errors != errors:
                errors = core.dispatcher.engine_errors
                try:
                    core.engine.check()
                except EngineError as error:
                    connection.send(('stats', core.snapshot()))
                    connection.send(('fatal', f'the GPU context is lost: {error}'))
                    return EXIT_GPU_LOST
            now = time.monotonic_ns()
            if now >= next_stats:
                connection.send(('stats', core.snapshot()))
                next_stats = now + period_ns
    except _Stop:
        return 0
    finally:
        selector.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    sock = socket.socket(fileno=int(argv[0]))
    connection = Connection(sock.detach())
    frames = FrameReader(int(argv[1]))
    spec = connection.recv()
    try:
        core = build_worker(spec)
    except WorkerStartError as error:
        connection.send(('error', str(error)))
        return EXIT_START_FAILED
    # what start-up made (engine, weights, kernels) lives as long as the process: keep the
    # collector from scanning it again and again, so that its pauses stay short (they stall the GPU
    # loop)
    gc.collect()
    gc.freeze()
    try:
        connection.send(('ready', {'engine': core.engine.name, 'device': core.engine.device_name,
                                   'why': core.engine_why, 'scheduler': core.build,
                                   'costs': f'{core.costs.gpu} ({core.costs.source})',
                                   'cost_table': core.costs.to_json()}))
        return serve(connection, frames, core)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return 0  # the parent is gone
    finally:
        core.close()
        frames.close()


if __name__ == '__main__':
    sys.exit(main())
