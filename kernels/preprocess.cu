// Preprocessing: a camera image (uint8 HWC) -> a normalised (3, S, S) float32 CHW tensor, S = 224.
//
// out[c][y][x] = (bilinear(image, y, x, channel R/G/B) / 255 - mean[c]) / std[c]
//
// The resize is torch's interpolate(mode='bilinear', align_corners=False), exactly as
// s3dnn_ros.engine.reference.preprocess computes it: per output index the source coordinate is
// src = (dst + 0.5) * in / out - 0.5 clamped below at 0, the lower tap floor(src) clamped to in - 1,
// the upper tap lower + 1 clamped to in - 1, weights (1 - frac, frac). The arithmetic is done in float32
// in the reference's order with round-to-nearest intrinsics (no FMA contraction), so results match it to
// the last bit or two.
//
// Input per frame: a device copy of the image with any height, width and row step in bytes; encodings
// rgb8, bgr8, rgba8, bgra8 (alpha ignored) and mono8 (replicated). Output channels are always R, G, B,
// written straight into the pipeline's first activation buffer.
//
// Variant: one; a thread per output pixel (all three channels), blockIdx.y = frame of the fused launch.
// Checked against reference.preprocess by test/test_cuda_engine.py (test_preprocess_*: sizes from 1x1
// to 1920x1080, every encoding, padded rows, fused frames of mixed sizes) and bench/gpu_check.py;
// compiled warning-free for sm_75/87/90 by test/test_kernels_compile.py.
#include "common.cuh"

struct PreprocessArgs {
    const unsigned char* image[S3DNN_MAX_FRAMES];
    float* out[S3DNN_MAX_FRAMES];
    // per frame: height, width, row step in bytes, encoding code
    // (channels | R index << 8 | G index << 16 | B index << 24)
    int meta[S3DNN_MAX_FRAMES][4];
    float mean[3];
    float std[3];
    int size;
};
static_assert(sizeof(PreprocessArgs) == 1056, "mirror of PREPROCESS_ARGS in s3dnn_ros/engine/cuda/abi.py");

struct Taps {
    int lower, upper;
    float w0, w1;
};

__device__ __forceinline__ Taps bilinear_taps(int dst, int in_size, int out_size) {
    const float scale = __fdiv_rn((float)in_size, (float)out_size);
    const float src = fmaxf(__fsub_rn(__fmul_rn((float)dst + 0.5f, scale), 0.5f), 0.f);
    Taps t;
    t.lower = min((int)src, in_size - 1);
    t.upper = min(t.lower + 1, in_size - 1);
    t.w1 = fminf(fmaxf(__fsub_rn(src, (float)t.lower), 0.f), 1.f);
    t.w0 = __fsub_rn(1.f, t.w1);
    return t;
}

__device__ __forceinline__ void preprocess_body(const PreprocessArgs& a) {
    const int frame = blockIdx.y;
    const int size = a.size;
    const int index = blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= size * size) return;
    const int oy = index / size, ox = index - oy * size;
    const int height = a.meta[frame][0], width = a.meta[frame][1], step = a.meta[frame][2];
    const int code = a.meta[frame][3];
    const int channels = code & 0xff;

    const Taps ty = bilinear_taps(oy, height, size);
    const Taps tx = bilinear_taps(ox, width, size);
    const unsigned char* row0 = a.image[frame] + (size_t)ty.lower * step;
    const unsigned char* row1 = a.image[frame] + (size_t)ty.upper * step;
    const int col0 = tx.lower * channels, col1 = tx.upper * channels;
    float* out = a.out[frame] + index;
#pragma unroll
    for (int c = 0; c < 3; ++c) {
        const int ch = (code >> (8 * (c + 1))) & 0xff;
        const float top = __fadd_rn(__fmul_rn((float)row0[col0 + ch], tx.w0), __fmul_rn((float)row0[col1 + ch], tx.w1));
        const float bottom =
            __fadd_rn(__fmul_rn((float)row1[col0 + ch], tx.w0), __fmul_rn((float)row1[col1 + ch], tx.w1));
        const float resized = __fadd_rn(__fmul_rn(top, ty.w0), __fmul_rn(bottom, ty.w1));
        const float value = __fdiv_rn(resized, 255.f);
        out[c * size * size] = __fdiv_rn(__fsub_rn(value, a.mean[c]), a.std[c]);
    }
}

extern "C" __global__ void __launch_bounds__(256) preprocess(const __grid_constant__ PreprocessArgs a) {
    preprocess_body(a);
}
extern "C" __global__ void __launch_bounds__(256) preprocess_ref(const PreprocessArgs* __restrict__ a) {
    preprocess_body(*a);
}
