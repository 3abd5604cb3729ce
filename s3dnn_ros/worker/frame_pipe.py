"""
Frame notices from the node to the scheduler worker: fixed-size records on a pipe.

A frame's image lies in a slot of its camera's ring (:mod:`.slots`); what crosses per frame is its
notice: camera, ring generation, slot, encoding, height, width, sequence number and release time,
packed as one 44-byte record (:data:`RECORD`). The worker reads every record that is waiting with
one ``read`` and unpacks them with one :meth:`struct.Struct.iter_unpack`, where a pickled message
per frame on its control socket cost a poll, two reads and an unpickling each (on a 2-core x86_64
CPU, ``bench/message_cost.py``: 8.4 µs of the receiver's time per frame as messages, 1.5 µs as
records while it spins; 14.9 and 2.8 µs when it wakes from a poll).

A ring's description (its segment's name) still goes on the socket, so the two channels are put
back in order by a *ring mark*: right after sending a ``ring`` message, the node writes a
:data:`RING` record naming the camera and generation. The worker opens a ring when it reaches its
mark, so the notices written before it are read while the camera's previous ring is still open
(:func:`s3dnn_ros.worker.process.serve`).

Records never tear: a pipe write of at most PIPE_BUF bytes is atomic, every write is one record,
and the reader asks for whole records (the bytes waiting always are whole records). A write blocks
while the pipe is full, so the writer asks for a pipe of :data:`PIPE_BYTES` (about 23800 records)
where the system allows it (Linux's default 64 KiB holds about 1500): more notices than a node
has frame slots, since a notice is only written for a frame in a free slot. A node writing into a
full pipe while holding its lock would keep its receiver from taking the outputs the worker is
trying to send.
"""
from __future__ import annotations

import fcntl
import os
import struct

from ..engine.base import ENCODINGS

#: kind, camera, generation, slot, encoding code, height, width, seq, release_ns
RECORD = struct.Struct('<iiiiiiiqq')
#: a record as read: (kind, camera, generation, slot, encoding code, height, width, seq,
#: release_ns)
Record = tuple[int, int, int, int, int, int, int, int, int]
#: record kinds: a frame in a slot, a ring mark (only kind, camera and generation set)
FRAME, RING = 0, 1
#: encoding code -> name, the codes a frame record carries
ENCODING_NAMES = tuple(ENCODINGS)
_CODES = {name: code for code, name in enumerate(ENCODING_NAMES)}
#: records one read takes at most
READ_RECORDS = 1024
#: bytes the writer asks the pipe to hold (Linux's default limit for unprivileged processes)
PIPE_BYTES = 1 << 20


class FrameWriter:
    """The node's end; callers serialise their writes."""

    def __init__(self, fd: int):
        self.fd = fd
        if hasattr(fcntl, 'F_SETPIPE_SZ'):
            try:
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            except OSError:
                pass  # a lower system limit (fs.pipe-max-size): the pipe keeps its size
        #: bytes the pipe holds (None where the system cannot say)
        self.capacity = (fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
                         if hasattr(fcntl, 'F_GETPIPE_SZ') else None)

    def frame(self, camera: int, generation: int, slot: int, seq: int, release_ns: int,
              height: int, width: int, encoding: str) -> None:
        """Write a frame notice; OSError (BrokenPipeError) once the worker is gone."""
        os.write(self.fd, RECORD.pack(FRAME, camera, generation, slot, _CODES[encoding], height,
                                      width, seq, release_ns))

    def ring(self, camera: int, generation: int) -> None:
        """Write the mark of a ring just described on the socket."""
        os.write(self.fd, RECORD.pack(RING, camera, generation, 0, 0, 0, 0, 0, 0))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class FrameReader:
    """The worker's end: non-blocking; :meth:`read` returns every record waiting."""

    def __init__(self, fd: int):
        os.set_blocking(fd, False)
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def read(self) -> list[Record]:
        """
        Return the waiting records, oldest first ([] when none), as :data:`RECORD` unpacks them.

        EOFError once the node's end is closed and nothing is left.
        """
        try:
            data = os.read(self.fd, RECORD.size * READ_RECORDS)
        except BlockingIOError:
            return []
        if not data:
            raise EOFError('the frame pipe was closed')
        return list(RECORD.iter_unpack(data))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
