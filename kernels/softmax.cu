// Softmax + top-k per frame: logits (C,) -> (2, k) float32: row 0 the k largest probabilities in
// descending order, row 1 their class ids (exact integers stored as float). Equal probabilities keep the
// lower class id first, like a stable sort.
//
// p = exp(x - max x) / sum exp(x - max x), computed in float32 into shared memory; then k rounds of a
// block-wide arg-max (larger probability, else lower id), each taking its winner out of the running.
// Variant: one; one block of 256 threads per frame (blockIdx.x), dynamic shared memory of C floats.
// Checked against reference.softmax_topk by test/test_cuda_engine.py (test_layer_matches_reference,
// test_softmax_ties_keep_lower_id_first, test_small_network_matches_reference: k = 3 of 10) and
// bench/gpu_check.py; compiled warning-free for sm_75/87/90 by test/test_kernels_compile.py.
#include "common.cuh"

struct SoftmaxArgs {
    const float* in[S3DNN_MAX_FRAMES];
    float* out[S3DNN_MAX_FRAMES];
    int classes, k;
};
static_assert(sizeof(SoftmaxArgs) == 520, "mirror of SOFTMAX_ARGS in s3dnn_ros/engine/cuda/abi.py");

__device__ __forceinline__ void softmax_topk_body(const SoftmaxArgs& a) {
    extern __shared__ float prob[];
    __shared__ float scratch[32];
    __shared__ float win_value[32];
    __shared__ int win_index[32];
    const int frame = blockIdx.x;
    const int classes = a.classes;
    const float* x = a.in[frame];
    const int lane = threadIdx.x % S3DNN_WARP, warp = threadIdx.x / S3DNN_WARP;

    float top = -INFINITY;
    for (int i = threadIdx.x; i < classes; i += blockDim.x) {
        const float v = x[i];
        prob[i] = v;
        top = fmaxf(top, v);
    }
    top = block_reduce<true>(top, scratch);
    float sum = 0.f;
    for (int i = threadIdx.x; i < classes; i += blockDim.x) {
        const float e = expf(prob[i] - top);
        prob[i] = e;
        sum += e;
    }
    sum = block_reduce<false>(sum, scratch);
    for (int i = threadIdx.x; i < classes; i += blockDim.x) prob[i] = prob[i] / sum;

    float* out = a.out[frame];
    for (int r = 0; r < a.k; ++r) {
        __syncthreads();  // probabilities written, previous winner removed
        // each thread scans increasing ids, so a strict > keeps the lowest id among equals
        float best = -1.f;
        int best_id = 0x7fffffff;
        for (int i = threadIdx.x; i < classes; i += blockDim.x) {
            const float v = prob[i];
            if (v > best) {
                best = v;
                best_id = i;
            }
        }
#pragma unroll
        for (int offset = S3DNN_WARP / 2; offset > 0; offset /= 2) {
            const float v = __shfl_xor_sync(0xffffffffu, best, offset);
            const int id = __shfl_xor_sync(0xffffffffu, best_id, offset);
            if (v > best || (v == best && id < best_id)) {
                best = v;
                best_id = id;
            }
        }
        if (lane == 0) {
            win_value[warp] = best;
            win_index[warp] = best_id;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int w = 1; w < (int)(blockDim.x / S3DNN_WARP); ++w) {
                if (win_value[w] > best || (win_value[w] == best && win_index[w] < best_id)) {
                    best = win_value[w];
                    best_id = win_index[w];
                }
            }
            out[r] = best;
            out[a.k + r] = (float)best_id;
            prob[best_id] = -2.f;  // below every probability and below the -1 a scan starts from
        }
    }
}

extern "C" __global__ void __launch_bounds__(256) softmax_topk(const __grid_constant__ SoftmaxArgs a) {
    softmax_topk_body(a);
}
extern "C" __global__ void __launch_bounds__(256) softmax_topk_ref(const SoftmaxArgs* __restrict__ a) {
    softmax_topk_body(*a);
}
