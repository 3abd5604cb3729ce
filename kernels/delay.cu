// Delay: a one-thread kernel that returns once `ns` nanoseconds of the GPU's global timer have passed.
//
// Calibration queues it ahead of the launches it times, so that they are all issued while the stream
// is still busy and their events measure GPU time back to back, free of host launch gaps.
// Variant: one (sleeps 1 µs between reads of %globaltimer on sm_70 and later).
// Used by test/test_cuda_engine.py (test_calibrate_returns_a_cost_table,
// test_cost_table_is_saved_and_reloaded), bench/gpu_check.py and bench/completion_visibility.py;
// compiled warning-free for sm_75/87/90 by test/test_kernels_compile.py.
#include "common.cuh"

__device__ __forceinline__ unsigned long long global_timer_ns() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

extern "C" __global__ void __launch_bounds__(32) delay(unsigned long long ns) {
    const unsigned long long start = global_timer_ns();
    while (global_timer_ns() - start < ns) __nanosleep(1000);
}
