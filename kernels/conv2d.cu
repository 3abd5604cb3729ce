// Convolution + bias + ReLU, fused: y[f][m][oh][ow] = relu(b[m] + sum_k W[m][k] * x_f[c][ih][iw]).
//
// An implicit GEMM with FP32 FMA (no tensor cores, no cuDNN): C[M][N] = A[M][K] * B[K][N] with
//   M = output channels, K = C * KH * KW (padded to a multiple of 16),
//   N = frames * OH * OW: the columns of all frames of the fused launch side by side,
//   A = the weights, stored transposed and zero-padded as Wt[Kp][Mp] so a tile row is 16-byte copies,
//   B = the im2col matrix, never materialised: element (k, n) is gathered from frame n / (OH*OW) through
//       a per-layer table ktab[k] = {c*H*W + kh*W + kw, kh << 16 | kw} and per-column (ih0, iw0); taps in
//       the padding read 0, and padded k rows (kh = 0x4000) always fall outside the image.
// Each block computes a BM x BN tile of C in BK = 16 slices of K through a 3-stage shared-memory
// pipeline: cp.async copies (16-byte for A, 4-byte zero-filling gathers for B) of the next two slices are
// in flight while the current one is multiplied, and the ktab entries of the slice after them are loaded
// into registers, which hides global-memory latency even with a single block per SM (small batches).
// Each of the 256 threads holds a TM x TN register tile (outer products of float4 fragments of A and B).
// Every output is accumulated by one thread over k = 0..Kp-1 in order, so the result does not depend on
// the tile shape or on how many frames are fused. Before sm_80 the copies are plain loads and stores
// (same results, no overlap).
//
// Variants (one extern "C" kernel each; the host picks per layer and batch, see
// plans.pick_conv_tile; all four can be forced through CudaEngine.conv_tile):
//   conv2d_128x128  BM=128 BN=128, 8x8 per thread   (fewest shared-memory loads per FMA; needs many blocks)
//   conv2d_128x64   BM=128 BN=64,  8x4 per thread   (picked when M is a multiple of 128 and the tiles
//                                                    still cover most SMs: conv3-5 at large batches)
//   conv2d_64x128   BM=64  BN=128, 4x8 per thread
//   conv2d_64x64    BM=64  BN=64,  4x4 per thread   (picked otherwise: most blocks and warps in flight)
// Each also as conv2d_<tile>_ref, the record read from device memory (common.cuh), with the same bounds
// but for conv2d_128x128_ref: one block per SM (at two, its record's fields in registers spill), and
// conv2d_64x64_ref: three (left at two it took 87 registers against the by-value kernel's 79, and so
// two blocks per SM instead of three; at three it fits in 79 without spilling).
// Any kernel size, stride and padding; AlexNet uses 11x11 s4 p2, 5x5 s1 p2 and 3x3 s1 p1.
// Checked against reference.conv2d by test/test_cuda_engine.py (test_layer_matches_reference,
// test_every_conv_tile_matches_reference: every variant on every AlexNet conv layer, and
// test_small_network_matches_reference: M = 16; the _ref variants by
// test_every_kernel_read_by_reference_matches_by_value) and bench/gpu_check.py; compiled warning-free
// for sm_75/87/90 by test/test_kernels_compile.py.
#include "common.cuh"

struct ConvArgs {
    const float* in[S3DNN_MAX_FRAMES];
    float* out[S3DNN_MAX_FRAMES];
    const float* weight;  // [Kp][Mp], transposed and zero-padded
    const float* bias;    // [M]
    const int2* ktab;     // [Kp]
    int frames, channels, height, width;
    int M, Mp, Kp, out_h;
    int out_w, stride, pad, relu;
};
static_assert(sizeof(ConvArgs) == 584, "mirror of CONV_ARGS in s3dnn_ros/engine/cuda/abi.py");

#define CONV_BK 16
#define CONV_STAGES 3
#define CONV_THREADS 256

template <int BM, int BN, int TM, int TN>
__device__ __forceinline__ void conv2d_tile(const ConvArgs& a) {
    constexpr int BK = CONV_BK, STAGES = CONV_STAGES;
    constexpr int TX = BN / TN, TY = BM / TM, NT = TX * TY;
    static_assert(NT == CONV_THREADS, "256 threads per block");
    static_assert(TM % 4 == 0 && TN % 4 == 0, "fragments are float4");
    constexpr int A_VECS = BK * BM / 4;  // float4s of one A slice
    constexpr int A_ITERS = S3DNN_DIV_UP(A_VECS, NT);
    constexpr int B_ROWS = NT / BN;      // k rows of B one pass of the block loads
    static_assert(NT % BN == 0 && BK % B_ROWS == 0, "B slice split evenly over the threads");
    constexpr int B_ITERS = BK / B_ROWS;

    __shared__ __align__(16) float As[STAGES][BK][BM];
    __shared__ __align__(16) float Bs[STAGES][BK][BN];

    const int tid = threadIdx.x;
    const int tx = tid % TX, ty = tid / TX;
    const int P = a.out_h * a.out_w;
    const int N = a.frames * P;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int H = a.height, W = a.width;

    // The column of B this thread loads, fixed for the whole K loop.
    const int bcol = tid % BN, brow = tid / BN;
    const float* src = a.in[0];
    int ih0 = -(1 << 20), iw0 = 0, col_off = 0;  // a column past N reads nothing
    {
        const int n = n0 + bcol;
        if (n < N) {
            const int f = n / P, p = n - f * P;
            const int oh = p / a.out_w, ow = p - oh * a.out_w;
            src = a.in[f];
            ih0 = oh * a.stride - a.pad;
            iw0 = ow * a.stride - a.pad;
            col_off = ih0 * W + iw0;
        }
    }
    const float* weight = a.weight + m0;
    const int Mp = a.Mp;

    // The ktab entries of this thread's B rows for the next slice to issue, loaded one step early so the
    // copies never wait for them.
    int2 kt[B_ITERS];
    auto load_ktab = [&](int k0) {
#pragma unroll
        for (int i = 0; i < B_ITERS; ++i) kt[i] = __ldg(a.ktab + k0 + brow + i * B_ROWS);
    };
    // Start the copies of K slice k0..k0+BK (B rows from kt) into pipeline stage `stage`.
    auto issue = [&](int stage, int k0) {
#pragma unroll
        for (int i = 0; i < A_ITERS; ++i) {
            const int v = tid + i * NT;
            if (A_VECS % NT == 0 || v < A_VECS) {
                const int kr = v / (BM / 4), mc = v % (BM / 4);
                cp_async16(&As[stage][kr][mc * 4], weight + (size_t)(k0 + kr) * Mp + mc * 4);
            }
        }
#pragma unroll
        for (int i = 0; i < B_ITERS; ++i) {
            const int ih = ih0 + (kt[i].y >> 16), iw = iw0 + (kt[i].y & 0xffff);
            const bool valid = (unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W;
            cp_async4_zfill(&Bs[stage][brow + i * B_ROWS][bcol], valid ? src + col_off + kt[i].x : src, valid);
        }
    };

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

    // STAGES-1 slices in flight ahead of the one being multiplied; a group is committed every step (empty
    // near the end) so that "all but STAGES-2 groups done" always means "the current slice has landed".
    const int ktiles = a.Kp / BK;
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < ktiles) {
            load_ktab(s * BK);
            issue(s, s * BK);
        }
        cp_async_commit();
    }
    if (STAGES - 1 < ktiles) load_ktab((STAGES - 1) * BK);
    for (int t = 0; t < ktiles; ++t) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();  // slice t visible to all; everyone is done with the stage refilled below
        const int next = t + STAGES - 1;
        if (next < ktiles) {
            issue(next % STAGES, next * BK);
            if (next + 1 < ktiles) load_ktab((next + 1) * BK);
        }
        cp_async_commit();
        const int cur = t % STAGES;
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            float fa[TM], fb[TN];
#pragma unroll
            for (int g = 0; g < TM / 4; ++g)
                *reinterpret_cast<float4*>(&fa[4 * g]) =
                    *reinterpret_cast<const float4*>(&As[cur][kk][g * 4 * TY + ty * 4]);
#pragma unroll
            for (int g = 0; g < TN / 4; ++g)
                *reinterpret_cast<float4*>(&fb[4 * g]) =
                    *reinterpret_cast<const float4*>(&Bs[cur][kk][g * 4 * TX + tx * 4]);
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(fa[i], fb[j], acc[i][j]);
        }
    }

    // Epilogue: bias, ReLU, scatter each column to its frame's CHW output.
    float bias[TM];
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int m = m0 + (i / 4) * 4 * TY + ty * 4 + i % 4;
        bias[i] = m < a.M ? __ldg(a.bias + m) : 0.f;
    }
#pragma unroll
    for (int j = 0; j < TN; ++j) {
        const int n = n0 + (j / 4) * 4 * TX + tx * 4 + j % 4;
        if (n >= N) continue;
        const int f = n / P, p = n - f * P;
        float* dst = a.out[f] + p;
#pragma unroll
        for (int i = 0; i < TM; ++i) {
            const int m = m0 + (i / 4) * 4 * TY + ty * 4 + i % 4;
            if (m < a.M) {
                const float v = acc[i][j] + bias[i];
                dst[(size_t)m * P] = a.relu ? fmaxf(v, 0.f) : v;
            }
        }
    }
}

#define CONV_KERNEL(BM, BN, TM, TN, REF_BLOCKS)                                              \
    extern "C" __global__ void __launch_bounds__(CONV_THREADS, 2)                            \
        conv2d_##BM##x##BN(const __grid_constant__ ConvArgs a) {                             \
        conv2d_tile<BM, BN, TM, TN>(a);                                                      \
    }                                                                                        \
    extern "C" __global__ void __launch_bounds__(CONV_THREADS, REF_BLOCKS)                   \
        conv2d_##BM##x##BN##_ref(const ConvArgs* __restrict__ a) {                           \
        conv2d_tile<BM, BN, TM, TN>(*a);                                                     \
    }

CONV_KERNEL(128, 128, 8, 8, 1)
CONV_KERNEL(128, 64, 8, 4, 2)
CONV_KERNEL(64, 128, 4, 8, 2)
CONV_KERNEL(64, 64, 4, 4, 3)
