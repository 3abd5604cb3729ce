// Fully connected layer: y_f[o] = act(b[o] + sum_i W[o][i] * x_f[i]) for each frame f of the fused launch,
// act = ReLU or identity; W is [O][I] row-major (torch's layout), I a multiple of 4.
//
// At AlexNet's batch sizes the layer is bound by reading W (fc6 151 MB, fc7 67 MB, fc8 16 MB) and both
// paths read it once per launch of up to 16 frames (once per 16 frames past that), in 16-byte streaming
// loads (evict-first, so the activations stay cached):
//   linear_stream_nb{1..4}_r{1,2}  batch 1-4: a warp owns R rows; its lanes stride over I with float4
//       loads, 4 independent loads per row in flight, x read through the read-only cache; NB frames'
//       sums in registers, then a warp reduction.
//   linear_tiled_nb{8,16}_r{1,2,4}  batch 5-8 / 9-32: the same row ownership, but the block's 8 warps share
//       the inputs of NB frame slots through shared memory, loaded in chunks of 256 features
//       (double-buffered; W of the next chunk prefetched into registers), so each W float4 meets NB
//       frames from shared memory instead of NB trips through L1. Past 16 frames the grid has one row
//       of blocks per 16 frames (blockIdx.y = frame group: frames 16y..16y+15): W is read once per
//       group, the groups' blocks side by side in one launch (in L2 at about the same time).
// Lane l always owns features 4l, 4l+128, ... in increasing order and reduces with the same shuffle
// tree in both paths, so every output is bit-identical whatever the batch and path.
// Each also as <name>_ref, the record read from device memory and copied into shared memory first
// (load_record in common.cuh).
// Checked against reference.linear by test/test_cuda_engine.py (test_layer_matches_reference: every
// variant, batches 1-5, 8, 9, 16, 17, 32 on fc6-8; test_small_network_matches_reference: 400 -> 10;
// the _ref variants by test_every_kernel_read_by_reference_matches_by_value) and bench/gpu_check.py;
// compiled warning-free for sm_75/87/90 by test/test_kernels_compile.py.
#include "common.cuh"

struct LinearArgs {
    const float* in[S3DNN_MAX_FRAMES];
    float* out[S3DNN_MAX_FRAMES];
    const float* weight;  // [O][I]
    const float* bias;    // [O]
    int frames, in_features, out_features, relu;
};
static_assert(sizeof(LinearArgs) == 544, "mirror of LINEAR_ARGS in s3dnn_ros/engine/cuda/abi.py");

#define LINEAR_THREADS 256
#define LINEAR_WARPS (LINEAR_THREADS / S3DNN_WARP)

// Reduce acc[R][NB] over the warp and store rows row0.. of frames base..base+frames-1 of the launch;
// the value of output r*NB+f is stored by lane (r*NB+f) % 32.
template <int R, int NB>
__device__ __forceinline__ void linear_store(const LinearArgs& a, float (&acc)[R][NB], int row0, int base,
                                             int frames) {
    const int lane = threadIdx.x % S3DNN_WARP;
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int f = 0; f < NB; ++f) {
            const float v = warp_sum(acc[r][f]) + __ldg(a.bias + min(row0 + r, a.out_features - 1));
            if (lane == (r * NB + f) % S3DNN_WARP && f < frames && row0 + r < a.out_features)
                a.out[base + f][row0 + r] = a.relu ? fmaxf(v, 0.f) : v;
        }
}

template <int NB, int R>
__device__ __forceinline__ void linear_stream(const LinearArgs& a) {
    constexpr int U = 4;  // float4 loads per row in flight
    const int lane = threadIdx.x % S3DNN_WARP, warp = threadIdx.x / S3DNN_WARP;
    const int row0 = (blockIdx.x * LINEAR_WARPS + warp) * R;
    if (row0 >= a.out_features) return;
    const int K4 = a.in_features / 4;
    const float4* w[R];
#pragma unroll
    for (int r = 0; r < R; ++r)
        w[r] = reinterpret_cast<const float4*>(a.weight + (size_t)min(row0 + r, a.out_features - 1) * a.in_features);
    const float4* x[NB];
#pragma unroll
    for (int f = 0; f < NB; ++f) x[f] = reinterpret_cast<const float4*>(a.in[f]);

    float acc[R][NB];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int f = 0; f < NB; ++f) acc[r][f] = 0.f;

    for (int k = lane; k < K4; k += U * S3DNN_WARP) {
        float4 wv[U][R];
#pragma unroll
        for (int u = 0; u < U; ++u)
#pragma unroll
            for (int r = 0; r < R; ++r)
                wv[u][r] = k + u * S3DNN_WARP < K4 ? __ldcs(w[r] + k + u * S3DNN_WARP)
                                                    : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
        for (int u = 0; u < U; ++u) {
            if (k + u * S3DNN_WARP >= K4) break;
#pragma unroll
            for (int f = 0; f < NB; ++f) {
                const float4 xv = __ldg(x[f] + k + u * S3DNN_WARP);
#pragma unroll
                for (int r = 0; r < R; ++r) acc[r][f] = dot4_acc(acc[r][f], wv[u][r], xv);
            }
        }
    }
    linear_store<R, NB>(a, acc, row0, 0, NB);
}

template <int NB, int R>
__device__ __forceinline__ void linear_tiled(const LinearArgs& a) {
    constexpr int CHUNK4 = 64;                            // float4s of a chunk (256 features)
    constexpr int H = CHUNK4 / S3DNN_WARP;                // float4s per lane and row in a chunk
    constexpr int XV = NB * CHUNK4 / LINEAR_THREADS;      // x float4s each thread stages per chunk
    static_assert(NB <= S3DNN_MAX_FRAMES, "frame slots");
    __shared__ float4 xs[2][NB][CHUNK4];

    const int lane = threadIdx.x % S3DNN_WARP, warp = threadIdx.x / S3DNN_WARP;
    const int row0 = (blockIdx.x * LINEAR_WARPS + warp) * R;
    const int K4 = a.in_features / 4;
    const int chunks = S3DNN_DIV_UP(K4, CHUNK4);
    const int base = blockIdx.y * NB;  // this block's frame group
    const int frames = min(NB, a.frames - base);
    const float* const* in = a.in + base;
    const float4* w[R];
#pragma unroll
    for (int r = 0; r < R; ++r)
        w[r] = reinterpret_cast<const float4*>(a.weight + (size_t)min(row0 + r, a.out_features - 1) * a.in_features);

    float4 wcur[R][H], wnext[R][H], xr[XV];
    auto load_w = [&](int chunk, float4 (&dst)[R][H]) {
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
            for (int h = 0; h < H; ++h) {
                const int k = chunk * CHUNK4 + h * S3DNN_WARP + lane;
                dst[r][h] = k < K4 ? __ldcs(w[r] + k) : make_float4(0.f, 0.f, 0.f, 0.f);
            }
    };
    auto load_x = [&](int chunk) {
#pragma unroll
        for (int v = 0; v < XV; ++v) {
            const int e = threadIdx.x + v * LINEAR_THREADS;
            const int f = e / CHUNK4, k = chunk * CHUNK4 + e % CHUNK4;
            xr[v] = f < frames && k < K4 ? __ldg(reinterpret_cast<const float4*>(in[f]) + k)
                                         : make_float4(0.f, 0.f, 0.f, 0.f);
        }
    };
    auto store_x = [&](int buf) {
#pragma unroll
        for (int v = 0; v < XV; ++v) {
            const int e = threadIdx.x + v * LINEAR_THREADS;
            xs[buf][e / CHUNK4][e % CHUNK4] = xr[v];
        }
    };

    float acc[R][NB];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int f = 0; f < NB; ++f) acc[r][f] = 0.f;

    load_w(0, wcur);
    load_x(0);
    store_x(0);
    __syncthreads();
    for (int chunk = 0; chunk < chunks; ++chunk) {
        const int cur = chunk & 1;
        const bool more = chunk + 1 < chunks;
        if (more) {
            load_w(chunk + 1, wnext);
            load_x(chunk + 1);
        }
#pragma unroll
        for (int h = 0; h < H; ++h)
#pragma unroll
            for (int f = 0; f < NB; ++f) {
                const float4 xv = xs[cur][f][h * S3DNN_WARP + lane];
#pragma unroll
                for (int r = 0; r < R; ++r) acc[r][f] = dot4_acc(acc[r][f], wcur[r][h], xv);
            }
        if (more) {
            store_x(cur ^ 1);
#pragma unroll
            for (int r = 0; r < R; ++r)
#pragma unroll
                for (int h = 0; h < H; ++h) wcur[r][h] = wnext[r][h];
        }
        __syncthreads();
    }
    if (row0 < a.out_features) linear_store<R, NB>(a, acc, row0, base, frames);
}

#define LINEAR_KERNEL(KIND, NB, R)                                                                   \
    extern "C" __global__ void __launch_bounds__(LINEAR_THREADS)                                     \
        linear_##KIND##_nb##NB##_r##R(const __grid_constant__ LinearArgs a) {                        \
        linear_##KIND<NB, R>(a);                                                                     \
    }                                                                                                \
    extern "C" __global__ void __launch_bounds__(LINEAR_THREADS)                                     \
        linear_##KIND##_nb##NB##_r##R##_ref(const LinearArgs* __restrict__ a) {                      \
        __shared__ LinearArgs record;                                                                \
        load_record(record, a);                                                                      \
        linear_##KIND<NB, R>(record);                                                                \
    }

LINEAR_KERNEL(stream, 1, 1)
LINEAR_KERNEL(stream, 2, 1)
LINEAR_KERNEL(stream, 3, 1)
LINEAR_KERNEL(stream, 4, 1)
LINEAR_KERNEL(stream, 1, 2)
LINEAR_KERNEL(stream, 2, 2)
LINEAR_KERNEL(stream, 3, 2)
LINEAR_KERNEL(stream, 4, 2)

LINEAR_KERNEL(tiled, 8, 1)
LINEAR_KERNEL(tiled, 8, 2)
LINEAR_KERNEL(tiled, 8, 4)
LINEAR_KERNEL(tiled, 16, 1)
LINEAR_KERNEL(tiled, 16, 2)
LINEAR_KERNEL(tiled, 16, 4)
