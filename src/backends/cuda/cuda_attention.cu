// Softmax attention on the GPU with the engine's mask (ops/backend.h AttentionMask): causal,
// sliding window, bidirectional within one image, empty cache slots skipped.
// One block per (query, head) of W warps: 16 for one sequence (decode at batch 1: a short
// context's keys one after another in 4 warps were most of a layer's attention time), 4 for
// a decode batch (whose many blocks fill the GPU already). Each warp walks every W-th key
// with an online softmax (running max and sum), and the partial results are merged at the end.
#include <cfloat>

#include "backends/cuda/cuda_common.cuh"

namespace unicorn::cuda {

namespace {

constexpr int kWarpsOne = 16, kWarpsBatch = 4;
constexpr int kMaxPerLane = int(kMaxAttentionHeadDim / 32);

__device__ __forceinline__ bool visible(const AttentionArgs& a, int64_t i, int64_t j) {
  const int32_t kp = a.k_pos[j];
  if (kp < 0) return false;
  if (!a.causal) return true;
  const int32_t qp = a.q_pos[i];
  if (a.window != 0 && int64_t(qp) - kp >= a.window) return false;  // also inside an image
  if (kp <= qp) return true;
  return a.q_group[i] >= 0 && a.q_group[i] == a.k_group[j];
}

__device__ __forceinline__ float as_float(float x) { return x; }
__device__ __forceinline__ float as_float(__half x) { return __half2float(x); }

// Query i, head h, by one block of W warps. T: the KV cache's element type (float or __half).
template <class T, int W>
__device__ __forceinline__ void attend(const AttentionArgs& a, int64_t i, int64_t h) {
  const int64_t kvh = h / (a.heads / a.kv_heads), hd = a.head_dim;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t qw = a.heads * hd, kw = a.kv_heads * hd;
  const float* q = a.q + i * qw + h * hd;
  float qv[kMaxPerLane], acc[kMaxPerLane];
#pragma unroll
  for (int e = 0; e < kMaxPerLane; ++e) {
    const int64_t d = lane + 32 * e;
    qv[e] = d < hd ? q[d] * a.scale : 0.0f;
    acc[e] = 0.0f;
  }
  float m = -FLT_MAX, l = 0.0f;
  for (int64_t j = warp; j < a.n_k; j += W) {
    if (!visible(a, i, j)) continue;
    const T* k = static_cast<const T*>(a.k) + j * kw + kvh * hd;
    float s = 0.0f;
#pragma unroll
    for (int e = 0; e < kMaxPerLane; ++e) {
      const int64_t d = lane + 32 * e;
      if (d < hd) s += qv[e] * as_float(k[d]);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    const float m_new = fmaxf(m, s);
    const float correction = __expf(m - m_new), p = __expf(s - m_new);
    l = l * correction + p;
    const T* v = static_cast<const T*>(a.v) + j * kw + kvh * hd;
#pragma unroll
    for (int e = 0; e < kMaxPerLane; ++e) {
      const int64_t d = lane + 32 * e;
      acc[e] = acc[e] * correction + (d < hd ? p * as_float(v[d]) : 0.0f);
    }
    m = m_new;
  }
  __shared__ float sm[W], sl[W], sacc[W][32 * kMaxPerLane];
  if (lane == 0) sm[warp] = m, sl[warp] = l;
#pragma unroll
  for (int e = 0; e < kMaxPerLane; ++e) sacc[warp][lane + 32 * e] = acc[e];
  __syncthreads();
  float mx = -FLT_MAX;
  for (int w = 0; w < W; ++w)
    if (sl[w] > 0.0f) mx = fmaxf(mx, sm[w]);
  float total = 0.0f;
  for (int w = 0; w < W; ++w)
    if (sl[w] > 0.0f) total += sl[w] * __expf(sm[w] - mx);
  float* out = a.out + i * qw + h * hd;
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
    float s = 0.0f;
    for (int w = 0; w < W; ++w)
      if (sl[w] > 0.0f) s += sacc[w][d] * __expf(sm[w] - mx);
    out[d] = total > 0.0f ? s / total : 0.0f;  // no visible key: zeros, as the CPU backend
  }
}

template <class T>
__global__ void __launch_bounds__(32 * kWarpsOne) attention_kernel(AttentionArgs a) {
  let_next_start();
  wait_for_inputs();
  attend<T, kWarpsOne>(a, blockIdx.x / a.heads, blockIdx.x % a.heads);
}

// Several sequences at once: blockIdx.y picks the sequence's arguments.
template <class T>
__global__ void __launch_bounds__(32 * kWarpsBatch) attention_multi_kernel(const AttentionArgs* __restrict__ all) {
  let_next_start();
  wait_for_inputs();
  const AttentionArgs a = all[blockIdx.y];
  const int64_t i = blockIdx.x / a.heads;
  if (i >= a.n_q) return;  // the whole block: i depends on blockIdx only
  attend<T, kWarpsBatch>(a, i, blockIdx.x % a.heads);
}

// Rows of scores [heads][rows][n_k] (query q0 + i): masked softmax in place.
__global__ void masked_softmax_kernel(AttentionArgs a, float* scores, int64_t q0, int64_t rows) {
  const int64_t i = blockIdx.x % rows;
  float* s = scores + int64_t(blockIdx.x) * a.n_k;
  const int64_t qi = q0 + i;
  __shared__ float red[32];
  auto block_reduce = [&](float v, bool is_max) {
    for (int o = 16; o > 0; o >>= 1) {
      const float other = __shfl_xor_sync(0xffffffffu, v, o);
      v = is_max ? fmaxf(v, other) : v + other;
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < warps ? red[lane] : (is_max ? -FLT_MAX : 0.0f);
    for (int o = 16; o > 0; o >>= 1) {
      const float other = __shfl_xor_sync(0xffffffffu, v, o);
      v = is_max ? fmaxf(v, other) : v + other;
    }
    return v;
  };
  float mx = -FLT_MAX;
  for (int64_t j = threadIdx.x; j < a.n_k; j += blockDim.x)
    if (visible(a, qi, j)) mx = fmaxf(mx, s[j]);
  mx = block_reduce(mx, true);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < a.n_k; j += blockDim.x) {
    const float e = visible(a, qi, j) ? __expf(s[j] - mx) : 0.0f;
    s[j] = e;
    sum += e;
  }
  sum = block_reduce(sum, false);
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;  // no visible key: zeros, as the CPU backend
  for (int64_t j = threadIdx.x; j < a.n_k; j += blockDim.x) s[j] *= inv;
}

}  // namespace

void masked_softmax(const AttentionArgs& a, float* scores, int64_t q0, int64_t rows, cudaStream_t stream) {
  if (rows == 0) return;
  masked_softmax_kernel<<<unsigned(a.heads * rows), 256, 0, stream>>>(a, scores, q0, rows);
  UNICORN_CUDA_LAUNCHED();
}

void attention_multi(const AttentionArgs* args, int64_t count, int64_t max_nq, int64_t heads, bool kv_f16,
                     cudaStream_t stream) {
  if (count == 0 || max_nq == 0) return;
  const dim3 grid(unsigned(max_nq * heads), unsigned(count));
  if (kv_f16)
    launch_dependent(attention_multi_kernel<__half>, grid, 32 * kWarpsBatch, 0, stream, args);
  else
    launch_dependent(attention_multi_kernel<float>, grid, 32 * kWarpsBatch, 0, stream, args);
}

void attention(const AttentionArgs& a, cudaStream_t stream) {
  if (a.n_q == 0) return;
  if (a.kv_f16)
    launch_dependent(attention_kernel<__half>, unsigned(a.n_q * a.heads), 32 * kWarpsOne, 0, stream, a);
  else
    launch_dependent(attention_kernel<float>, unsigned(a.n_q * a.heads), 32 * kWarpsOne, 0, stream, a);
}

}  // namespace unicorn::cuda
