// Softmax attention on the GPU with the engine's mask (ops/backend.h AttentionMask): causal,
// sliding window, bidirectional within one image, empty cache slots skipped.
// One block of 4 warps per (query, head); each warp walks a quarter of the keys with an online
// softmax (running max and sum), and the four partial results are merged at the end.
#include <cfloat>
#include <type_traits>

#include "backends/cuda/cuda_common.cuh"

namespace unicorn::cuda {

namespace {

constexpr int kWarps = 4;
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

// Query i, head h, by one block of kWarps warps. T: the KV cache's element type (float or __half).
template <class T>
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
  for (int64_t j = warp; j < a.n_k; j += kWarps) {
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
  __shared__ float sm[kWarps], sl[kWarps], sacc[kWarps][32 * kMaxPerLane];
  if (lane == 0) sm[warp] = m, sl[warp] = l;
#pragma unroll
  for (int e = 0; e < kMaxPerLane; ++e) sacc[warp][lane + 32 * e] = acc[e];
  __syncthreads();
  float mx = -FLT_MAX;
  for (int w = 0; w < kWarps; ++w)
    if (sl[w] > 0.0f) mx = fmaxf(mx, sm[w]);
  float total = 0.0f;
  for (int w = 0; w < kWarps; ++w)
    if (sl[w] > 0.0f) total += sl[w] * __expf(sm[w] - mx);
  float* out = a.out + i * qw + h * hd;
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
    float s = 0.0f;
    for (int w = 0; w < kWarps; ++w)
      if (sl[w] > 0.0f) s += sacc[w][d] * __expf(sm[w] - mx);
    out[d] = total > 0.0f ? s / total : 0.0f;  // no visible key: zeros, as the CPU backend
  }
}

template <class T>
__global__ void __launch_bounds__(32 * kWarps) attention_kernel(AttentionArgs a) {
  attend<T>(a, blockIdx.x / a.heads, blockIdx.x % a.heads);
}

// Several sequences at once: blockIdx.y picks the sequence's arguments.
template <class T>
__global__ void __launch_bounds__(32 * kWarps) attention_multi_kernel(const AttentionArgs* __restrict__ all) {
  const AttentionArgs a = all[blockIdx.y];
  const int64_t i = blockIdx.x / a.heads;
  if (i >= a.n_q) return;  // the whole block: i depends on blockIdx only
  attend<T>(a, i, blockIdx.x % a.heads);
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

// Flash attention for many queries (prefill chunks, the vision tower) on the f16 tensor cores
// (mma.sync m16n8k16, f32 accumulation): a block of 4 warps takes 64 queries of one head, each
// warp 16, and walks the keys 64 at a time with an online softmax, the scores never leaving
// registers. q (scaled), k, v and the probabilities are rounded to f16 for the products.
// Fragments (PTX ISA, m16n8k16, lane = 4 g + t): A a0 = (row g, cols 2t, 2t + 1), a1 = row
// g + 8, a2 = cols 2t + 8, 2t + 9 of row g, a3 of row g + 8; B b0 = (rows 2t, 2t + 1, col g),
// b1 = rows 2t + 8, 2t + 9; C c0, c1 = (row g, cols 2t, 2t + 1), c2, c3 = row g + 8. A score
// tile's C fragments are the A fragments of the probabilities for P V as they are.
constexpr int kFlashQ = 64, kFlashK = 64;

__device__ __forceinline__ void mma_f16(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                        uint32_t b1) {
#if __CUDA_ARCH__ >= 800
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#endif
}

__device__ __forceinline__ uint32_t pack_f16(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

// HDP: the head dimension padded to 16 (columns past head_dim are zeros).
template <class T, int HDP>
__global__ void __launch_bounds__(128) flash_attention_kernel(AttentionArgs a) {
  constexpr int KS = HDP / 16, NV = HDP / 8;
  constexpr int kStrideK = HDP + 8, kStrideV = kFlashK + 8;  // padded rows: no bank conflicts
  __shared__ __half sk[kFlashK * kStrideK];
  __shared__ __half svt[HDP * kStrideV];  // V transposed: [dim][key]
  const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31, g = lane >> 2, t = lane & 3;
  const int64_t h = blockIdx.y, kvh = h / (a.heads / a.kv_heads), hd = a.head_dim;
  const int64_t qw = a.heads * hd, kw = a.kv_heads * hd;
  const int64_t q0 = int64_t(blockIdx.x) * kFlashQ + warp * 16;
  const int64_t rows[2] = {q0 + g, q0 + g + 8};

  // This warp's queries as A fragments, scaled, for all KS steps of the head dimension.
  uint32_t qa[KS][4];
#pragma unroll
  for (int ks = 0; ks < KS; ++ks) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int64_t row = rows[r & 1], d = ks * 16 + 2 * t + (r >= 2 ? 8 : 0);
      float x0 = 0.0f, x1 = 0.0f;
      if (row < a.n_q && d < hd) x0 = a.q[row * qw + h * hd + d] * a.scale;
      if (row < a.n_q && d + 1 < hd) x1 = a.q[row * qw + h * hd + d + 1] * a.scale;
      qa[ks][r] = pack_f16(x0, x1);
    }
  }
  float o[NV][4];
#pragma unroll
  for (int v = 0; v < NV; ++v) o[v][0] = o[v][1] = o[v][2] = o[v][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

  const T* kbase = static_cast<const T*>(a.k) + kvh * hd;
  const T* vbase = static_cast<const T*>(a.v) + kvh * hd;
  for (int64_t k0 = 0; k0 < a.n_k; k0 += kFlashK) {
    __syncthreads();  // the last tile is consumed
    for (int i = int(threadIdx.x); i < kFlashK * HDP; i += 128) {
      const int key = i / HDP, d = i % HDP;
      const int64_t j = k0 + key;
      const bool in = j < a.n_k && d < hd;
      sk[key * kStrideK + d] = __float2half_rn(in ? as_float(kbase[j * kw + d]) : 0.0f);
      svt[d * kStrideV + key] = __float2half_rn(in ? as_float(vbase[j * kw + d]) : 0.0f);
    }
    __syncthreads();

    // Scores of 16 queries x 64 keys: 8 tiles of 8 keys.
    float s[8][4];
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
      for (int ks = 0; ks < KS; ++ks) {
        const __half* kr = sk + (nt * 8 + g) * kStrideK + ks * 16 + 2 * t;
        mma_f16(s[nt], qa[ks][0], qa[ks][1], qa[ks][2], qa[ks][3], *reinterpret_cast<const uint32_t*>(kr),
                *reinterpret_cast<const uint32_t*>(kr + 8));
      }
    }
    // The mask, then the online softmax of rows g (e = 0, 1) and g + 8 (e = 2, 3).
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t row = rows[e >> 1], j = k0 + nt * 8 + 2 * t + (e & 1);
        if (row >= a.n_q || j >= a.n_k || !visible(a, row, j)) s[nt][e] = -INFINITY;
        mx[e >> 1] = fmaxf(mx[e >> 1], s[nt][e]);
      }
    float base[2], corr[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float m_new = fmaxf(m[r], mx[r]);
      base[r] = m_new == -INFINITY ? 0.0f : m_new;  // nothing visible yet: every p is 0
      corr[r] = __expf(m[r] - base[r]);
      m[r] = m_new;
      l[r] *= corr[r];
    }
#pragma unroll
    for (int v = 0; v < NV; ++v) {
      o[v][0] *= corr[0], o[v][1] *= corr[0];
      o[v][2] *= corr[1], o[v][3] *= corr[1];
    }
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[nt][e] = __expf(s[nt][e] - base[e >> 1]);
        l[e >> 1] += s[nt][e];
      }
    // O += P V over the 64 keys: 4 steps of 16.
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      const uint32_t p0 = pack_f16(s[2 * kk][0], s[2 * kk][1]), p1 = pack_f16(s[2 * kk][2], s[2 * kk][3]);
      const uint32_t p2 = pack_f16(s[2 * kk + 1][0], s[2 * kk + 1][1]), p3 = pack_f16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int v = 0; v < NV; ++v) {
        const __half* vr = svt + (v * 8 + g) * kStrideV + kk * 16 + 2 * t;
        mma_f16(o[v], p0, p1, p2, p3, *reinterpret_cast<const uint32_t*>(vr), *reinterpret_cast<const uint32_t*>(vr + 8));
      }
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
#pragma unroll
  for (int v = 0; v < NV; ++v)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t row = rows[e >> 1], d = v * 8 + 2 * t + (e & 1);
      if (row >= a.n_q || d >= hd) continue;
      const float sum = l[e >> 1];
      a.out[row * qw + h * hd + d] = sum > 0.0f ? o[v][e] / sum : 0.0f;  // no visible key: zeros
    }
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
    attention_multi_kernel<__half><<<grid, 32 * kWarps, 0, stream>>>(args);
  else
    attention_multi_kernel<float><<<grid, 32 * kWarps, 0, stream>>>(args);
  UNICORN_CUDA_LAUNCHED();
}

bool flash_attention(const AttentionArgs& a, cudaStream_t stream) {
  if (a.n_q == 0) return true;
  const dim3 grid{unsigned((a.n_q + kFlashQ - 1) / kFlashQ), unsigned(a.heads)};
  auto go = [&](auto hdp) {
    constexpr int HDP = decltype(hdp)::value;
    if (a.kv_f16)
      flash_attention_kernel<__half, HDP><<<grid, 128, 0, stream>>>(a);
    else
      flash_attention_kernel<float, HDP><<<grid, 128, 0, stream>>>(a);
  };
  if (a.head_dim <= 32)
    go(std::integral_constant<int, 32>());
  else if (a.head_dim <= 64)
    go(std::integral_constant<int, 64>());
  else if (a.head_dim <= 80)
    go(std::integral_constant<int, 80>());
  else if (a.head_dim <= 128)
    go(std::integral_constant<int, 128>());
  else
    return false;
  UNICORN_CUDA_LAUNCHED();
  return true;
}

void attention(const AttentionArgs& a, cudaStream_t stream) {
  if (a.n_q == 0) return;
  if (a.kv_f16)
    attention_kernel<__half><<<unsigned(a.n_q * a.heads), 32 * kWarps, 0, stream>>>(a);
  else
    attention_kernel<float><<<unsigned(a.n_q * a.heads), 32 * kWarps, 0, stream>>>(a);
  UNICORN_CUDA_LAUNCHED();
}

}  // namespace unicorn::cuda
