"""
What page-locking one camera's ring costs, by how its pages came to be.

    python3 pin_cost.py [--rings 64] [--out DIR]

A ring is a shared-memory segment of three slots (:mod:`s3dnn_ros.worker.slots`). The process
making it and the worker each map it; the worker page-locks its mapping (``cuMemHostRegister``, as
``CudaEngine.pin`` does). Each variant makes ``--rings`` rings, then times the page-locking of
each through a second mapping, as the worker's:

- ``fresh``: nothing touched the segment (the pages are allocated and zero-filled while it is
  page-locked);
- ``touched``: the making mapping wrote one byte of every page first;
- ``written``: the making mapping wrote every byte (as after the first frames).

Prints the median ms per ring for 640x480 and 3840x2160 rgb8 slots (of the latter an eighth as
many rings), writes DIR/pin_cost.json.
"""
from __future__ import annotations

import argparse
import json
from multiprocessing import shared_memory
import os
from pathlib import Path
import statistics
import sys
import time

import numpy as np

REPO = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO))

from s3dnn_ros.engine.cuda.driver import driver_api, import_pycuda  # noqa: E402
from s3dnn_ros.worker.slots import attach, frame_bytes, PAGE, slot_bytes_for  # noqa: E402

SLOTS = 3


def prepare(memory: shared_memory.SharedMemory, variant: str) -> None:
    array = np.frombuffer(memory.buf, np.uint8)
    if variant == 'touched':
        array[::PAGE] = 0
    elif variant == 'written':
        array[:] = 1
    del array


def pin_ms(size: int, variant: str, rings: int) -> list[float]:
    library, times, made = driver_api(), [], []
    try:
        for _ in range(rings):
            memory = shared_memory.SharedMemory(create=True, size=size)
            made.append(memory)
            prepare(memory, variant)
        for memory in made:
            mapping = attach(memory.name)
            array = np.frombuffer(mapping.buf, np.uint8)
            began = time.perf_counter_ns()
            result = library.cuMemHostRegister_v2(array.ctypes.data, array.nbytes, 0)
            times.append((time.perf_counter_ns() - began) / 1e6)
            if result:
                raise RuntimeError(f'cuMemHostRegister returned CUresult {result}')
            library.cuMemHostUnregister(array.ctypes.data)
            del array
            mapping.close()
    finally:
        for memory in made:
            memory.close()
            memory.unlink()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n\n')[0])
    parser.add_argument('--rings', type=int, default=64)
    parser.add_argument('--out', type=Path, default=Path(os.environ.get('OUT', '.')))
    args = parser.parse_args()
    driver = import_pycuda()
    driver.init()
    context = driver.Device(0).retain_primary_context()
    context.push()
    rows = []
    try:
        for height, width in ((480, 640), (2160, 3840)):
            size = SLOTS * slot_bytes_for(frame_bytes(height, width, 'rgb8'))
            rings = args.rings if height == 480 else max(4, args.rings // 8)
            for variant in ('fresh', 'touched', 'written', 'fresh', 'touched', 'written'):
                times = pin_ms(size, variant, rings)
                rows.append({'height': height, 'width': width, 'ring_bytes': size,
                             'variant': variant, 'rings': rings,
                             'median_ms': round(statistics.median(times), 4),
                             'max_ms': round(max(times), 4)})
                print(f'{width}x{height} ring ({size / 2**20:.1f} MiB), {variant:8s}: '
                      f'median {rows[-1]["median_ms"]:.3f} ms, max {rows[-1]["max_ms"]:.3f} ms')
    finally:
        context.pop()
    record = {'benchmark': 'pin_cost', 'card': driver.Device(0).name(),
              'command': 'python3 pin_cost.py ' + ' '.join(sys.argv[1:]), 'rows': rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'pin_cost.json').write_text(json.dumps(record, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
