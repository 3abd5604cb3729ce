"""
Host time of the PyCUDA and driver calls one launch of the CUDA engine makes, per call.

    python3 bench/driver_calls.py [--calls 2000] [--out DIR]

Each call is repeated ``--calls`` times back to back on one stream (copies 300 times), the mean
host µs printed and written to DIR/driver_calls-<card>.json (DIR: --out, else $OUT, else
bench/out): recording an event (timed and not), a stream waiting for an event, querying an event,
launching an empty kernel whose argument record has the size of the engine's (``_launch_kernel``,
1 and 256 blocks), uploading a 640x480 rgb8 image from page-locked memory and downloading a (2, 5)
result.
Then 16 such uploads as 16 ``memcpy_htod_async`` calls against one ``cuMemcpyBatchAsync`` through
the engine's own copy batch (where the driver has it, CUDA 13), the batch both from page-locked
allocations and from one block of caller memory page-locked in place (``cuMemHostRegister``, as
``CudaEngine.pin`` does for the worker's frame slots and ``s3dnn-bench``'s pinned inputs): host µs
per 16 copies, whether each batch copied right, and the GPU time of each way (20 rounds between
two events).
"""
from __future__ import annotations

import argparse
import functools
from pathlib import Path
import sys
import time

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from records import record_header, write_record  # noqa: E402
from s3dnn_ros.engine.cuda.abi import LINEAR_ARGS  # noqa: E402
from s3dnn_ros.engine.cuda.driver import CopyBatch, driver_api  # noqa: E402
from s3dnn_ros.tools.bench import file_name  # noqa: E402

EMPTY_KERNEL = ('struct Args { unsigned char bytes[%d]; };\n'
                'extern "C" __global__ void empty(const __grid_constant__ Args args) {}\n')
IMAGE_BYTES = 480 * 640 * 3
COPIES = 16


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--calls', type=int, default=2000)
    parser.add_argument('--out', type=Path)
    args = parser.parse_args()
    import pycuda.driver as drv
    drv.init()
    device = drv.Device(0)
    context = device.retain_primary_context()
    context.push()
    try:
        report = measure(drv, args.calls)
    finally:
        context.pop()
    report = {**record_header('driver_calls', card=device.name()),
              'driver_version': drv.get_driver_version(), **report}
    for key, value in report.items():
        print(f'{key}: {value}')
    write_record(report, file_name(report['card'], 'driver_calls'), args.out)
    return 0


def measure(drv, calls: int) -> dict:
    from pycuda.compiler import SourceModule
    function = SourceModule(EMPTY_KERNEL % LINEAR_ARGS.itemsize, no_extern_c=True).get_function(
        'empty')
    record = np.zeros(LINEAR_ARGS.itemsize, np.uint8)
    stream, other = drv.Stream(), drv.Stream()
    timed, untimed = drv.Event(), drv.Event(drv.event_flags.DISABLE_TIMING)

    def host_us(call, repeats: int = calls) -> float:
        call()
        drv.Context.synchronize()
        begin = time.perf_counter_ns()
        for _ in range(repeats):
            call()
        spent = time.perf_counter_ns() - begin
        drv.Context.synchronize()
        return round(spent / repeats / 1000, 2)

    image = drv.pagelocked_empty(IMAGE_BYTES, np.uint8)
    device_image = drv.mem_alloc(IMAGE_BYTES)
    result = drv.pagelocked_empty((2, 5), np.float32)
    device_result = drv.mem_alloc(result.nbytes)
    calls_us = {
        'event_record': host_us(lambda: timed.record(stream)),
        'event_record_untimed': host_us(lambda: untimed.record(stream)),
        'stream_wait_for_event': host_us(lambda: other.wait_for_event(untimed)),
        'event_query': host_us(lambda: timed.query()),
        'launch_kernel_1_block': host_us(
            lambda: function._launch_kernel((1, 1), (32, 1, 1), record, 0, stream)),
        'launch_kernel_256_blocks': host_us(
            lambda: function._launch_kernel((256, 1), (256, 1, 1), record, 0, stream)),
        'memcpy_htod_async_640x480_rgb8': host_us(
            lambda: drv.memcpy_htod_async(device_image, image, stream), 300),
        'memcpy_dtoh_async_result': host_us(
            lambda: drv.memcpy_dtoh_async(result, device_result, stream)),
    }
    images = [drv.pagelocked_empty(IMAGE_BYTES, np.uint8) for _ in range(COPIES)]
    targets = [drv.mem_alloc(IMAGE_BYTES) for _ in range(COPIES)]
    for number, host in enumerate(images, 1):
        host[:] = number

    def separate():
        for target, host in zip(targets, images):
            drv.memcpy_htod_async(target, host, stream)

    ways = {'separate': separate}
    report = {'calls_us': calls_us}
    batch_function = CopyBatch.function()
    report['batch_copy'] = batch_function is not None
    # caller memory page-locked in place, as CudaEngine.pin does
    block = np.empty(COPIES * IMAGE_BYTES, np.uint8)
    result = driver_api().cuMemHostRegister_v2(block.ctypes.data, block.nbytes, 0)
    if result:
        raise RuntimeError(f'cuMemHostRegister returned CUresult {result}')
    try:
        if batch_function is not None:
            # (source addresses, the bytes the 8th image holds)
            sources = {'batched': ([host.ctypes.data for host in images], 8),
                       'batched_registered': ([block.ctypes.data + k * IMAGE_BYTES
                                               for k in range(COPIES)], 108)}
            for number, host in enumerate(np.split(block, COPIES), 101):
                host[:] = number
            for name, (addresses, eighth) in sources.items():
                batch = CopyBatch(batch_function)
                # the batch holds up to the engine's MAX_FRAMES copies; COPIES of them are used
                batch.dst[:COPIES] = [int(target) for target in targets]
                batch.src[:COPIES] = addresses
                batch.size[:COPIES] = IMAGE_BYTES
                ways[name] = functools.partial(batch.issue, COPIES, stream)
                batch.issue(COPIES, stream)
                stream.synchronize()
                back = np.empty(IMAGE_BYTES, np.uint8)
                drv.memcpy_dtoh(back, targets[7])
                report[f'{name}_copy_right'] = bool((back == eighth).all())
        start, end = drv.Event(), drv.Event()
        for name, way in ways.items():
            report[f'host_us_{COPIES}_uploads_{name}'] = host_us(way, 100)
            start.record(stream)
            for _ in range(20):
                way()
            end.record(stream)
            end.synchronize()
            gpu_us = end.time_since(start) / 20 * 1000
            report[f'gpu_us_{COPIES}_uploads_{name}'] = round(gpu_us, 1)
    finally:
        drv.Context.synchronize()
        driver_api().cuMemHostUnregister(block.ctypes.data)
    return report


if __name__ == '__main__':
    sys.exit(main())
