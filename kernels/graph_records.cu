// The argument records of a CUDA graph's kernels, brought to the device by the graph's first kernel.
//
// dst[i] = src[i] for i < words (64-bit words). src: page-locked host memory mapped into the device's
// address space, where the host wrote this launch's records (one per layer of the segment, each the
// layer's argument struct); dst: the device block the graph's NAME_ref kernels read them from (see
// common.cuh). A kernel rather than a copy: an H2D copy goes to a copy engine, where it can queue behind
// another stream's image uploads; this one reads the records over the bus once, on the SMs.
//
// Variant: one; a thread per word (256-thread blocks). Checked by test/test_cuda_engine.py
// (test_segment_as_a_graph_equals_it_kernel_by_kernel: the same frames through a graph and kernel by
// kernel give the same bits, with the records rewritten for other frames between launches).
extern "C" __global__ void __launch_bounds__(256)
    load_records(const unsigned long long* __restrict__ src, unsigned long long* __restrict__ dst,
                 unsigned long long words) {
    const unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < words) dst[i] = src[i];
}
