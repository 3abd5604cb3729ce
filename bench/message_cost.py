"""
What a frame message costs the scheduler worker's process, by how it is encoded and how it waits.

    python3 bench/message_cost.py [--messages 30000] [--rate 10000] [--out DIR]

One process sends ``--messages`` frame messages at ``--rate`` a second, as the worker's client does
(:mod:`s3dnn_ros.worker.process` documents the protocol); another receives them as the worker's
loop does. Per encoding - a pickled tuple or the same fields packed with :mod:`struct`, each a
message on a socket pair with :mod:`multiprocessing.connection` framing (wait for the socket, then
take messages while more are ready: the worker until 2026-12-02), or ``pipe``: the worker's frame
notices on a pipe (:mod:`s3dnn_ros.worker.frame_pipe`; wait for the pipe, then one read takes every
notice waiting) - and per way of waiting (``sleep``:
blocking in the poll, as an idle worker; ``spin``: polling without a timeout, as a worker with
launches in flight), the receiver's CPU µs per message (a spinning receiver burns the whole
interval) and its handling µs per message (from the poll that found messages to the end of the
batch, what the worker meters as taking frames in). Writes DIR/message_cost-<host>.json (DIR:
--out, else $OUT, else bench/out).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
from pathlib import Path
import platform
import selectors
import struct
import sys
import time

from records import record_header, write_record

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from s3dnn_ros.worker.frame_pipe import FrameReader, FrameWriter  # noqa: E402

FIELDS = struct.Struct('<iiiqqiiB')  # camera, generation, slot, seq, release_ns, h, w, encoding


def paced(messages: int, rate: float):
    """Yield 0 .. messages - 1, each at its time (``rate`` a second, spinning in between)."""
    period = 1.0 / rate
    start = time.perf_counter()
    for i in range(messages):
        while time.perf_counter() < start + i * period:
            pass
        yield i


def send(connection, encoding: str, messages: int, rate: float) -> None:
    for i in paced(messages, rate):
        if encoding == 'pickle':
            connection.send(('frame', i % 320, 0, i % 3, i, 123456789, 480, 640, 'rgb8'))
        else:
            connection.send_bytes(FIELDS.pack(i % 320, 0, i % 3, i, 123456789, 480, 640, 0))
    if encoding == 'pickle':
        connection.send(('stop',))
    else:
        connection.send_bytes(b'')


def send_notices(writer: FrameWriter, messages: int, rate: float) -> None:
    for i in paced(messages, rate):
        writer.frame(i % 320, 0, i % 3, i, 123456789, 480, 640, 'rgb8')
    writer.close()


def meter(ready, take, wait: str, results) -> None:
    """
    Receive as the worker's loop does; report per message CPU and handling µs.

    ``ready(timeout)`` waits (``sleep``: up to 50 ms, as an idle worker; ``spin``: not at all),
    ``take()`` handles what is waiting and returns (messages taken, whether the sender ended).
    Handling: from the wait that found messages to the end of the batch, as the worker meters its
    'arrive' time.
    """
    timeout = 0.05 if wait == 'sleep' else 0
    received = handling = 0
    cpu = time.process_time()
    ended = False
    while not ended:
        if ready(timeout):
            start = time.perf_counter_ns()
            taken, ended = take()
            received += taken
            handling += time.perf_counter_ns() - start
    results.put(((time.process_time() - cpu) / received * 1e6, handling / received / 1000))


def receive_notices(fd: int, write_fd: int, wait: str, results) -> None:
    """Take notices as the worker's loop does: one read takes every notice waiting."""
    os.close(write_fd)  # the sender's end, inherited: the pipe ends when the sender closes it
    reader = FrameReader(fd)
    selector = selectors.DefaultSelector()
    selector.register(reader, selectors.EVENT_READ)

    def take() -> tuple[int, bool]:
        try:
            return len(reader.read()), False
        except EOFError:
            return 0, True

    meter(selector.select, take, wait, results)


def receive(connection, encoding: str, wait: str, results) -> None:
    """Take messages as the worker's loop did: one at a time while more are ready."""
    def take() -> tuple[int, bool]:
        taken = 0
        while True:
            if encoding == 'pickle':
                if connection.recv()[0] == 'stop':
                    return taken, True
            else:
                data = connection.recv_bytes()
                if not data:
                    return taken, True
                FIELDS.unpack(data)
            taken += 1
            if not connection.poll(0):
                return taken, False

    meter(connection.poll, take, wait, results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--messages', type=int, default=30000)
    parser.add_argument('--rate', type=float, default=10000.0)
    parser.add_argument('--out', type=Path)
    args = parser.parse_args()
    rows = []
    for wait in ('sleep', 'spin'):
        for encoding in ('pickle', 'struct', 'pipe'):
            results = multiprocessing.Queue()
            if encoding == 'pipe':
                read_fd, write_fd = os.pipe()
                receiver = multiprocessing.Process(target=receive_notices,
                                                   args=(read_fd, write_fd, wait, results))
                receiver.start()
                os.close(read_fd)
                send_notices(FrameWriter(write_fd), args.messages, args.rate)
            else:
                ours, theirs = multiprocessing.Pipe()
                receiver = multiprocessing.Process(target=receive,
                                                   args=(theirs, encoding, wait, results))
                receiver.start()
                send(ours, encoding, args.messages, args.rate)
            receiver.join()
            cpu_us, handling_us = results.get()
            rows.append({'wait': wait, 'encoding': encoding,
                         'receiver_cpu_us_per_message': round(cpu_us, 2),
                         'handling_us_per_message': round(handling_us, 2)})
            print(rows[-1])
    host = platform.processor() or platform.machine()
    report = {**record_header('message_cost', host=host, cpus=os.cpu_count()),
              'messages': args.messages, 'rate': args.rate, 'rows': rows}
    write_record(report, f'message_cost-{report["cpus"]}-cpus.json', args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
