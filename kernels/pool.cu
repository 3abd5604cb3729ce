// Pooling over (C, H, W) float32 CHW tensors, one per frame of the fused launch.
//
// maxpool2d:          y[c][i][j] = max over the kernel x kernel window at (i*stride, j*stride), no padding,
//                     floor mode (AlexNet: 3x3 stride 2).
// adaptive_avgpool2d: y[c][i][j] = mean of x[c][h0..h1)[w0..w1) with torch's AdaptiveAvgPool2d bins
//                     h0 = floor(i*H/OH), h1 = ceil((i+1)*H/OH) (likewise for w); bins overlap when the
//                     sizes do not divide (AlexNet: 6x6 -> 6x6).
// Variants: one each; a thread per output element, blockIdx.y = frame. Memory-bound and small: a frame's
// pooling reads at most 0.8 MB.
// Checked against reference.maxpool2d and reference.adaptive_avgpool2d by test/test_cuda_engine.py
// (test_layer_matches_reference; test_small_network_matches_reference: 27 -> 5, bins that overlap) and
// bench/gpu_check.py; compiled warning-free for sm_75/87/90 by test/test_kernels_compile.py.
#include "common.cuh"

struct PoolArgs {
    const float* in[S3DNN_MAX_FRAMES];
    float* out[S3DNN_MAX_FRAMES];
    int channels, height, width, out_h;
    int out_w, kernel, stride, frames;
};
static_assert(sizeof(PoolArgs) == 544, "mirror of POOL_ARGS in s3dnn_ros/engine/cuda/abi.py");

__device__ __forceinline__ void maxpool2d_body(const PoolArgs& a) {
    const int frame = blockIdx.y;
    const int per_channel = a.out_h * a.out_w;
    const int index = blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= a.channels * per_channel) return;
    const int c = index / per_channel, p = index - c * per_channel;
    const int i = p / a.out_w, j = p - i * a.out_w;
    const float* x = a.in[frame] + ((size_t)c * a.height + i * a.stride) * a.width + j * a.stride;
    float best = -INFINITY;
    for (int r = 0; r < a.kernel; ++r)
        for (int s = 0; s < a.kernel; ++s) best = fmaxf(best, __ldg(x + r * a.width + s));
    a.out[frame][index] = best;
}

extern "C" __global__ void __launch_bounds__(256) maxpool2d(const __grid_constant__ PoolArgs a) {
    maxpool2d_body(a);
}
extern "C" __global__ void __launch_bounds__(256) maxpool2d_ref(const PoolArgs* __restrict__ a) {
    maxpool2d_body(*a);
}

__device__ __forceinline__ void adaptive_avgpool2d_body(const PoolArgs& a) {
    const int frame = blockIdx.y;
    const int per_channel = a.out_h * a.out_w;
    const int index = blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= a.channels * per_channel) return;
    const int c = index / per_channel, p = index - c * per_channel;
    const int i = p / a.out_w, j = p - i * a.out_w;
    const int h0 = i * a.height / a.out_h, h1 = S3DNN_DIV_UP((i + 1) * a.height, a.out_h);
    const int w0 = j * a.width / a.out_w, w1 = S3DNN_DIV_UP((j + 1) * a.width, a.out_w);
    const float* x = a.in[frame] + (size_t)c * a.height * a.width;
    float sum = 0.f;
    for (int r = h0; r < h1; ++r)
        for (int s = w0; s < w1; ++s) sum += __ldg(x + r * a.width + s);
    a.out[frame][index] = sum / (float)((h1 - h0) * (w1 - w0));
}

extern "C" __global__ void __launch_bounds__(256) adaptive_avgpool2d(const __grid_constant__ PoolArgs a) {
    adaptive_avgpool2d_body(a);
}
extern "C" __global__ void __launch_bounds__(256) adaptive_avgpool2d_ref(const PoolArgs* __restrict__ a) {
    adaptive_avgpool2d_body(*a);
}
