"""
The CUDA engine: every kernel layer a hand-written CUDA C kernel run through PyCUDA.

The kernels are in ``kernels/*.cu``.

Modules: :mod:`.abi` (the kernels' argument structs), :mod:`.driver` (PyCUDA, the raw driver
calls and each thread's current context), :mod:`.kernels` (sources and compilation),
:mod:`.plans` (each layer's launch: parameter layout, kernel variant, grid, argument record,
occupancy; host arithmetic only), :mod:`.graphs` (segments as CUDA graphs), :mod:`.engine` (the
engine), :mod:`.calibration` (cost tables measured on the device). pycuda is imported only
when an engine is constructed (:func:`.driver.import_pycuda`, and the compiler in
:func:`.kernels.compiled_kernels`), so the package imports (and falls back to the reference
engine) on machines without it.

Why it is built the way it is:

* Per-frame pointers travel by value. Each kernel takes one struct argument (``*_ARGS`` in
  :mod:`.abi` mirror the structs in the .cu files) that starts with one input and one output
  address per frame of the fused launch. CUDA copies kernel arguments when the launch is issued,
  so a fused launch over k pipelines reads and writes each pipeline's own buffers with no device
  pointer table, no per-launch allocation and no copy of activations. MAX_FRAMES (32) is the
  dispatcher's largest fused batch, so a fused launch is one kernel per layer. An engine made with
  a smaller ``max_batch`` runs a larger launch as several kernel launches, each with its frames'
  copies, side by side on side streams forked from the launch's stream and joined back into it
  (one after another on a one-stream engine).
* Nothing is allocated per frame. ``open_pipeline`` allocates a pipeline's activations (one device
  block holding every kernel layer's output but the last) and its (2, k) result in page-locked
  memory mapped into the device's address space, where the last kernel writes it (no download
  copy); a camera's first frame of a given size allocates its pinned staging buffer and device
  copy, reallocated only when the image grows; completion events come from a pool.
  ``allocations`` counts every allocation so tests can check that steady-state frames make none.
* Images in host memory the caller page-locked with :meth:`CudaEngine.pin` (the scheduler worker's
  shared-memory frame slots) are uploaded from where they lie: no host copy at all. Other images
  are copied into the pipeline's pinned staging buffer first, a fused launch's on STAGING_THREADS
  threads (``set_inputs``): one thread reaches about a third of the host's copy bandwidth.
* A launch costs few Python calls: each (layer, batch) plan keeps its argument record, the launch
  writes the frames' pointers into it and hands its bytes to ``cuLaunchKernel`` (PyCUDA's
  ``_launch_kernel``) without PyCUDA's per-call argument packing. The pointers come from a host
  table of every open pipeline's device addresses (its image and each layer's output, a column
  per pipeline): a launch gathers its frames' columns once, and each of its kernels copies two
  rows of them (input, output) into its record, with no per-frame Python per kernel.
  A segment of layers (:meth:`CudaEngine.launch_layers`) issues each kernel's layers back to back
  on its stream inside one fork/join and one pair of events, where separate launches would record
  events, fork and join around every layer; where the driver has the graph calls, a kernel's
  layers of a segment are one CUDA graph launch (:mod:`.graphs`): the graph's kernels take a
  pointer to their record in device memory (each kernel's ``NAME_ref`` entry point), and the
  graph's first kernel copies the records the host wrote for this launch there from page-locked
  memory, so the graph is made once per (first layer, layers, frames) and never rewritten. On an
  H200 host a one-frame whole-network launch costs the host 55-61 µs instead of 121-165.
  A kernel's image uploads are one ``cuMemcpyBatchAsync`` call where the driver has it (CUDA 13),
  checked at start-up with a round trip; otherwise one PyCUDA copy per frame.
* The engine is made on one thread and driven from another (the dispatcher's), so every entry point
  makes the device's primary context current on the calling thread, pushing it once per thread.
  PyCUDA aborts the process when a thread ends with contexts on its stack, so each thread's pushes
  are popped when it ends (and the main thread's at exit).
* Kernels are compiled once per process and architecture (``-O3``, ``-arch=sm_XY`` of the device,
  or PTX of an older virtual architecture to test its code paths) and loaded into each engine's
  context.
* A launch records an event before and after its work; :meth:`CudaCompletion.interval` maps them to
  the host's ``time.monotonic_ns`` clock through a reference event recorded at start-up after a
  synchronisation (re-based on later events so float32 millisecond offsets keep sub-microsecond
  precision). The two clocks drift apart (on one H200 host by ~0.1 ms within seconds), so the
  mapping is moved whenever a launch would map before its issue or after the host saw it done.
"""
from .abi import (CONV_ARGS, LINEAR_ARGS, MAX_FRAMES, POOL_ARGS, PREPROCESS_ARGS,
                  SOFTMAX_ARGS)
from .engine import CudaCompletion, CudaEngine
from .kernels import compiled_kernels, kernel_dir, KERNEL_FILES
from .plans import CONV_TILES

__all__ = ['compiled_kernels', 'CONV_ARGS', 'CONV_TILES', 'CudaCompletion', 'CudaEngine',
           'kernel_dir', 'KERNEL_FILES', 'LINEAR_ARGS', 'MAX_FRAMES', 'POOL_ARGS',
           'PREPROCESS_ARGS', 'SOFTMAX_ARGS']
