"""
The scheduler worker process: one :class:`~.core.WorkerCore` on one GPU.

It is fed by messages on a socket. Started by :class:`~.client.WorkerClient` as
``python -m s3dnn_ros.worker.process FD``, where FD is its end of a socket pair. The protocol
(pickled tuples, :mod:`multiprocessing.connection` framing):

parent -> worker
    the :class:`~.core.WorkerSpec` (first message);
    ``('ring', camera, name, slot_bytes, slots, generation)``: the camera's frame slots
    (:mod:`.slots`);
    ``('frame', camera, generation, slot, seq, release_ns, height, width, encoding)``: a frame in a
    slot;
    ``('deadline', camera, deadline_ns)``: the camera's relative deadline for frames from now on;
    ``('stop',)``.
worker -> parent
    ``('ready', info)`` once built, or ``('error', message)`` and exit status 2;
    ``('outputs', [...])``: frames finished or dropped (:meth:`~.core.WorkerCore.take_outputs`);
    ``('stats', snapshot)`` every ``stats_period_s``;
    ``('fatal', message)`` before exit status 3 when the GPU context is lost (the parent starts a
    new worker).

The loop never blocks while launches are in flight: it polls the socket and the GPU in turn. With
nothing in flight it sleeps in the socket poll until a frame arrives or the policy's hold ends.
SIGINT and SIGTERM are ignored: the parent stops the worker (a terminal's Ctrl-C reaches the whole
process group), and the worker also ends when the parent's end of the socket closes.
"""
from __future__ import annotations

import gc
from multiprocessing.connection import Connection
import signal
import socket
import sys
import time

from .core import build_worker, WorkerCore, WorkerStartError
from ..engine.base import EngineError

#: longest sleep of an idle worker between checks of its socket
IDLE_WAIT_S = 0.05
EXIT_START_FAILED, EXIT_GPU_LOST = 2, 3


def serve(connection: Connection, core: WorkerCore) -> int:
    """
    Run ``core`` on ``connection`` until told to stop or the parent goes.

    Returns the exit status.
    """
    period_ns = round(core.spec.stats_period_s * 1e9)
    next_stats = time.monotonic_ns()
    errors = core.dispatcher.engine_errors
    while True:
        if connection.poll(core.idle_wait_s(IDLE_WAIT_S)):
            start, frames = time.perf_counter_ns(), 0
            while True:
                message = connection.recv()
                kind = message[0]
                if kind == 'frame':
                    core.frame(*message[1:])
                    frames += 1
                elif kind == 'ring':
                    core.open_ring(*message[1:])
                elif kind == 'deadline':
                    core.set_deadline(*message[1:])
                elif kind == 'stop':
                    return 0
                if not connection.poll(0):
                    break
            if frames:
                core.timed('arrive', start, frames)
        core.cycle(lambda outputs: connection.send(('outputs', outputs)))
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    sock = socket.socket(fileno=int(argv[0]))
    connection = Connection(sock.detach())
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
                                   'why': core.engine_why,
                                   'costs': f'{core.costs.gpu} ({core.costs.source})',
                                   'cost_table': core.costs.to_json()}))
        return serve(connection, core)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return 0  # the parent is gone
    finally:
        core.close()


if __name__ == '__main__':
    sys.exit(main())
