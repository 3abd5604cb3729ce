// Shared definitions of the s3dnn_ros kernels.
//
// Every kernel takes one argument: a struct passed by value (`const __grid_constant__`, so it stays in
// the constant bank and is indexed there, never copied to local memory). It starts with one input and
// one output pointer per frame of the fused launch, so a launch over k pipelines reads and writes each
// pipeline's own buffers and fusing costs no copies. The host mirrors each struct as a numpy dtype
// (s3dnn_ros/engine/cuda/abi.py); the static_asserts below each struct pin its size on both sides.
//
// Each kernel NAME has a second entry point, NAME_ref, taking a pointer to the same struct in device
// memory: the kernels of a CUDA graph (a segment of layers launched at once, graph_records.cu), whose
// arguments are then fixed addresses while the host rewrites the records they point to. Both entry
// points run one body, so they compute the same bits.
//
// Layouts: activations NCHW float32 (one CHW tensor per frame), vectors (F,) float32 per frame.
#pragma once

// Frames per launch: the dispatcher's largest fused batch (32), so a fused launch is one kernel per
// layer; an engine set up with a larger batch splits it into several launches on the host.
#define S3DNN_MAX_FRAMES 32

#define S3DNN_DIV_UP(a, b) (((a) + (b) - 1) / (b))

#define S3DNN_WARP 32

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int offset = S3DNN_WARP / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int offset = S3DNN_WARP / 2; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// Reduce one value per thread over the block (blockDim.x a multiple of 32, at most 1024) and return the
// result to every thread. `scratch` holds 32 floats; the call may be repeated with the same scratch.
template <bool IS_MAX>
__device__ __forceinline__ float block_reduce(float v, float* scratch) {
    const int lane = threadIdx.x % S3DNN_WARP, warp = threadIdx.x / S3DNN_WARP;
    const int warps = blockDim.x / S3DNN_WARP;
    v = IS_MAX ? warp_max(v) : warp_sum(v);
    __syncthreads();  // a previous call may still be reading scratch
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : (IS_MAX ? -INFINITY : 0.f);
    return IS_MAX ? warp_max(v) : warp_sum(v);
}

// Asynchronous global -> shared copies (cp.async, sm_80 and later) with a plain load/store fallback on
// older GPUs, where the copy completes before the call returns and the wait is a no-op.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define S3DNN_CP_ASYNC 1
#else
#define S3DNN_CP_ASYNC 0
#endif

__device__ __forceinline__ void cp_async16(float* dst, const float* src) {
#if S3DNN_CP_ASYNC
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"((unsigned)__cvta_generic_to_shared(dst)),
                 "l"(src));
#else
    *reinterpret_cast<float4*>(dst) = __ldg(reinterpret_cast<const float4*>(src));
#endif
}

// 4 bytes, or a zero when !valid (src is then not read).
__device__ __forceinline__ void cp_async4_zfill(float* dst, const float* src, bool valid) {
#if S3DNN_CP_ASYNC
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"((unsigned)__cvta_generic_to_shared(dst)),
                 "l"(src), "r"(valid ? 4 : 0));
#else
    *dst = valid ? __ldg(src) : 0.f;
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if S3DNN_CP_ASYNC
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// Wait until at most PENDING of this thread's committed copy groups are still in flight.
template <int PENDING>
__device__ __forceinline__ void cp_async_wait() {
#if S3DNN_CP_ASYNC
    asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING) : "memory");
#endif
}

// acc += dot(w, x), always in the order x, y, z, w: every kernel that accumulates a dot product uses
// it, so a fused launch gives bit-identical results to single-frame launches.
__device__ __forceinline__ float dot4_acc(float acc, float4 w, float4 x) {
    acc = fmaf(w.x, x.x, acc);
    acc = fmaf(w.y, x.y, acc);
    acc = fmaf(w.z, x.z, acc);
    return fmaf(w.w, x.w, acc);
}

// A NAME_ref entry point's record, copied from device memory into shared memory by the block before
// the body runs (the linear kernels: read straight from global memory, the record's fields are held in
// registers and linear_tiled_nb16_r2 spills; the conv tiles have no shared memory to spare).
template <typename Args>
__device__ __forceinline__ void load_record(Args& dst, const Args* __restrict__ src) {
    static_assert(sizeof(Args) % 8 == 0, "records are whole 64-bit words");
    unsigned long long* d = reinterpret_cast<unsigned long long*>(&dst);
    const unsigned long long* s = reinterpret_cast<const unsigned long long*>(src);
    for (int i = threadIdx.x; i < (int)(sizeof(Args) / 8); i += blockDim.x) d[i] = s[i];
    __syncthreads();
}
