// Softmax attention on the GPU with the engine's mask (ops/backend.h AttentionMask): causal,
// sliding window, bidirectional within one image, empty cache slots skipped.
// A few queries (decode of one sequence, short prompt chunks), head dims of whole 32-value
// lanes: the keys split over enough blocks to fill the GPU (flash-decoding), each block's 4
// warps taking groups of 4 keys with the 4 keys' K and V rows in flight at once, a lane holding
// hd / 32 consecutive dims, the next group's rows loading while one is used; the splits' partial
// sums combined by a second kernel. One block per (query, head) walking every key had used 32 of
// 132 multiprocessors at batch 1: 27B decoded at 64 tokens/s after 4096 tokens against 153 from
// an empty context. A decode batch's sequences the same way in one launch (blockIdx.z), each
// split in as many parts. Where the mask gives the span of slots its keys lie in (a sliding
// window's part of a ring buffer), only that span is walked.
// Otherwise one block per (query, head) of W warps: 16 for one sequence, 4 for a decode batch.
// Each warp walks every W-th key with an online softmax (running max and sum), and the partial
// results are merged at the end.
#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "backends/cuda/cuda_common.cuh"

namespace unicorn::cuda {

namespace {

constexpr int kWarpsOne = 16, kWarpsBatch = 4;
constexpr int kMaxPerLane = int(kMaxAttentionHeadDim / 32);

// Whether a key at position kp (< 0: an empty slot) in image group kg is visible to the query
// at position qp in image group qg; visible_to reads key j's entries (k_group only if needed).
__device__ __forceinline__ bool visible_key(const AttentionArgs& a, int32_t qp, int32_t qg, int32_t kp, int32_t kg) {
  if (kp < 0) return false;
  if (!a.causal) return true;
  if (a.window != 0 && int64_t(qp) - kp >= a.window) return false;  // also inside an image
  if (kp <= qp) return true;
  return qg >= 0 && qg == kg;
}
__device__ __forceinline__ bool visible_to(const AttentionArgs& a, int32_t qp, int32_t qg, int64_t j) {
  const int32_t kp = a.k_pos[j];
  return visible_key(a, qp, qg, kp, kp >= 0 && kp > qp && a.causal ? a.k_group[j] : -1);
}

// Parts of one softmax (warps' or splits' running maximum m(k) and weight sum l(k), their sums
// of weighted values scaled by exp(m(k))) merged: the common maximum of the parts with weight
// (empty ones, l = 0, count for nothing and may hold anything), each part's scale under it
// (merge_scale) and the total weight, so the output is sum_k scale_k acc_k / total.
template <class M, class L>
__device__ __forceinline__ float merged_max(int parts, M m, L l) {
  float mx = -FLT_MAX;
  for (int k = 0; k < parts; ++k)
    if (l(k) > 0.0f) mx = fmaxf(mx, m(k));
  return mx;
}
__device__ __forceinline__ float merge_scale(float m, float l, float mx) { return l > 0.0f ? __expf(m - mx) : 0.0f; }

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
  const int32_t qp = a.q_pos[i], qg = a.q_group[i];
  float m = -FLT_MAX, l = 0.0f;
  for (int64_t j = warp; j < a.n_k; j += W) {
    if (!visible_to(a, qp, qg, j)) continue;
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
  const float mx = merged_max(W, [&](int w) { return sm[w]; }, [&](int w) { return sl[w]; });
  float total = 0.0f, scale[W];
  for (int w = 0; w < W; ++w) scale[w] = merge_scale(sm[w], sl[w], mx), total += sl[w] * scale[w];
  float* out = a.out + i * qw + h * hd;
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
    float s = 0.0f;
    for (int w = 0; w < W; ++w)
      if (scale[w] > 0.0f) s += sacc[w][d] * scale[w];
    out[d] = total > 0.0f ? s / total : 0.0f;  // no visible key: zeros, as the CPU backend
  }
}

// P consecutive values of T at p (aligned to their size) as they are, in one or two loads (the
// conversion to float left for later: a load used before griddepcontrol.wait would stall there).
template <class T, int P>
__device__ __forceinline__ void load_raw(const T* p, T (&out)[P]) {
  constexpr int kBytes = P * int(sizeof(T));
  if constexpr (kBytes >= 16) {
#pragma unroll
    for (int v = 0; v < kBytes / 16; ++v) {
      const uint4 raw = load_once<true>(reinterpret_cast<const uint4*>(p) + v);
      memcpy(&out[v * (16 / int(sizeof(T)))], &raw, 16);
    }
  } else if constexpr (kBytes == 8) {
    const uint2 raw = load_once<true>(reinterpret_cast<const uint2*>(p));
    memcpy(out, &raw, 8);
  } else {
#pragma unroll
    for (int e = 0; e < P; ++e) out[e] = p[e];
  }
}

// A head of 32 P values a warp holds P a lane (lane l: values l P ..): its RMS norm with weight
// w (times 1 + w, as Gemma's; the lane's P weights in w) and RoPE at `position` (value d < 16 P
// pairs with d + 16 P, lane l ^ 16; the lane's P frequencies in inv_freq), the arithmetic of
// qk_norm_rope's kernel (cuda_elementwise.cu) but for the order of the sum of squares.
template <int P>
__device__ __forceinline__ void norm_rope_lanes(float (&x)[P], const float (&w)[P], const float (&inv_freq)[P],
                                                int32_t position, float eps) {
  float ss = 0.0f;
#pragma unroll
  for (int e = 0; e < P; ++e) ss += x[e] * x[e];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  const float inv = rsqrtf(ss / float(32 * P) + eps);
  const int lane = int(threadIdx.x) & 31;
#pragma unroll
  for (int e = 0; e < P; ++e) {
    const float n = x[e] * inv * (1.0f + w[e]);
    const float other = __shfl_xor_sync(0xffffffffu, n, 16);
    const float angle = float(position) * inv_freq[e];  // f32 product, as HF
    float s, c;
    sincosf(angle, &s, &c);
    x[e] = lane >= 16 ? n * c + other * s : n * c - other * s;
  }
}

constexpr int kSplitWarps = 4, kSplitGroup = 4;  // warps a block, keys a warp has in flight

// Query i, head h, keys [k0, k1) of split blockIdx.y: the unnormalized sums acc, their maximum
// score m and sum of weights l into partial[(i * heads + h) * splits + split] (hd values, then m,
// l), or, with one split, the output itself. P = head_dim / 32.
// Partial sums at partial[((blockIdx.z * gridDim.x + blockIdx.x) * gridDim.y + split)]: blockIdx.z
// is the sequence of a decode batch (attention_split_multi_kernel), 0 otherwise.
// S: the keys are a span (AttentionArgs::k_first / k_count) that may wrap past the last slot;
// without, keys t are slots t (what the mapping costs in the loop: tg128 -1%, measured).
template <class T, int P, bool S>
__device__ __forceinline__ void split_attend(const AttentionArgs& a, int64_t keys_per_split, float* partial) {
  constexpr int W = kSplitWarps, G = kSplitGroup, hd = 32 * P;
  const int64_t i = blockIdx.x / a.heads, h = blockIdx.x % a.heads, split = blockIdx.y;
  // Keys t in [k0, k1) of the span: slot k_first + t, wrapped past the last slot.
  const int64_t k0 = split * keys_per_split, k1 = min(a.k_count, k0 + keys_per_split);
  auto slot = [&](int64_t t) {
    if constexpr (!S) return t;
    const int64_t j = a.k_first + t;
    return j >= a.n_k ? j - a.n_k : j;
  };
  const int64_t kvh = h / (a.heads / a.kv_heads), qw = a.heads * hd, kw = a.kv_heads * hd;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const AttentionArgs::NewKey& nk = a.new_key;
  const bool fused = nk.wq != nullptr;
  const int64_t t_new = !S ? nk.slot : nk.slot >= a.k_first ? nk.slot - a.k_first : nk.slot - a.k_first + a.n_k;
  const bool new_here = fused && t_new >= k0 && t_new < k1;
  const T* kb = static_cast<const T*>(a.k) + kvh * hd + lane * P;
  const T* vb = static_cast<const T*>(a.v) + kvh * hd + lane * P;
  // A round of rows as loaded (with their keys' positions and image groups: the mask's
  // arrays, which only the host writes), and the next round's, in flight while one is used.
  struct Round {
    T k[G][P], v[G][P];
    int32_t pos[G], group[G];
  };
  Round r1, r2;
  auto load_round = [&](int64_t t0, Round& r) {
#pragma unroll
    for (int u = 0; u < G; ++u) {
      const int64_t t = t0 + u;
      if (t < k1) {  // (use_round reads a row's position and group only where t < k1)
        r.pos[u] = a.k_pos[slot(t)], r.group[u] = a.k_group[slot(t)];
        if (!(new_here && t == t_new)) {  // (the new row: from registers, below)
          load_raw<T, P>(kb + slot(t) * kw, r.k[u]);
          load_raw<T, P>(vb + slot(t) * kw, r.v[u]);
        }
      }
    }
  };
  // Before the wait, with the step's new key fused (one decode query: this kernel writes the
  // caches' only new row, every other row is from earlier steps, which the host waited for):
  // the warp's first round of cache rows, the norm weights and the RoPE frequencies, so the
  // loads' latency overlaps the q/k/v product's end. The query's position and group (the
  // host's) come before it either way.
  int64_t j0 = k0 + warp * G;
  float wq[P], wk[P], freq[P];
  if (fused) {
#pragma unroll
    for (int e = 0; e < P; ++e)
      wq[e] = nk.wq[lane * P + e], wk[e] = nk.wk[lane * P + e], freq[e] = nk.inv_freq[(lane & 15) * P + e];
    if (j0 < k1) load_round(j0, r1);
  }
  const int32_t qp = a.q_pos[i], qg = a.q_group[i];
  wait_for_inputs();
  // q, and the step's new key where this split holds its row, in one trip to memory.
  float qv[P], acc[P], kn[P], vn[P];
  const float* q = a.q + i * qw + h * hd + lane * P;
#pragma unroll
  for (int e = 0; e < P; ++e) qv[e] = q[e], acc[e] = 0.0f;
  if (new_here) {
#pragma unroll
    for (int e = 0; e < P; ++e) kn[e] = nk.k[kvh * hd + lane * P + e], vn[e] = nk.v[kvh * hd + lane * P + e];
  }
  if (fused) norm_rope_lanes<P>(qv, wq, freq, nk.position, nk.eps);
#pragma unroll
  for (int e = 0; e < P; ++e) qv[e] *= a.scale;
  // The new key normed and rotated here (each warp, each query head of the group), into the
  // caches by the group's first head.
  if (new_here) {
    norm_rope_lanes<P>(kn, wk, freq, nk.position, nk.eps);
    if (warp == 0 && h % (a.heads / a.kv_heads) == 0) {
      const int64_t at = nk.slot * kw + kvh * hd + lane * P;
#pragma unroll
      for (int e = 0; e < P; ++e) {
        store_as(static_cast<T*>(nk.k_cache) + at + e, kn[e]);
        store_as(static_cast<T*>(nk.v_cache) + at + e, vn[e]);
      }
    }
  }
  float m = -FLT_MAX, l = 0.0f;
  auto use_round = [&](int64_t t0, const Round& r) {
    float s[G], kf[G][P], vf[G][P];
    bool vis[G];
#pragma unroll
    for (int u = 0; u < G; ++u) {
      const int64_t t = t0 + u;
      vis[u] = t < k1;
      if (vis[u]) {
        const bool new_row = new_here && t == t_new;  // (its cache row is being written)
#pragma unroll
        for (int e = 0; e < P; ++e)
          kf[u][e] = new_row ? kn[e] : as_float(r.k[u][e]), vf[u][e] = new_row ? vn[e] : as_float(r.v[u][e]);
        vis[u] = visible_key(a, qp, qg, r.pos[u], r.group[u]);  // the same in every lane
      }
    }
#pragma unroll
    for (int u = 0; u < G; ++u) {
      s[u] = 0.0f;
      if (vis[u]) {
#pragma unroll
        for (int e = 0; e < P; ++e) s[u] += qv[e] * kf[u][e];
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
#pragma unroll
      for (int u = 0; u < G; ++u) s[u] += __shfl_xor_sync(0xffffffffu, s[u], o);
    }
    float mx = m;
#pragma unroll
    for (int u = 0; u < G; ++u)
      if (vis[u]) mx = fmaxf(mx, s[u]);
    if (mx == -FLT_MAX) return;  // nothing visible yet
    const float correction = __expf(m - mx);
    m = mx;
    l *= correction;
#pragma unroll
    for (int e = 0; e < P; ++e) acc[e] *= correction;
#pragma unroll
    for (int u = 0; u < G; ++u) {
      if (!vis[u]) continue;  // (its rows may hold anything, even NaN: an empty slot)
      const float p = __expf(s[u] - m);
      l += p;
#pragma unroll
      for (int e = 0; e < P; ++e) acc[e] += p * vf[u][e];
    }
  };
  // Rounds of W x G keys, the next one's loads in flight while one is used.
  constexpr int64_t kRound = W * G;
  if (!fused && j0 < k1) load_round(j0, r1);
  while (j0 < k1) {
    if (j0 + kRound < k1) load_round(j0 + kRound, r2);
    use_round(j0, r1);
    j0 += kRound;
    if (j0 >= k1) break;
    if (j0 + kRound < k1) load_round(j0 + kRound, r1);
    use_round(j0, r2);
    j0 += kRound;
  }
  __shared__ float sm[W], sl[W], sacc[W][hd];
  if (lane == 0) sm[warp] = m, sl[warp] = l;
#pragma unroll
  for (int e = 0; e < P; ++e) sacc[warp][lane * P + e] = acc[e];
  __syncthreads();
  const float mx = merged_max(W, [&](int w) { return sm[w]; }, [&](int w) { return sl[w]; });
  float total = 0.0f, scale[W];
#pragma unroll
  for (int w = 0; w < W; ++w) scale[w] = merge_scale(sm[w], sl[w], mx), total += sl[w] * scale[w];
  const bool last = gridDim.y == 1;
  float* out = last ? a.out + i * qw + h * hd
                    : partial + ((int64_t(blockIdx.z) * gridDim.x + blockIdx.x) * gridDim.y + split) * (hd + 2);
  for (int d = threadIdx.x; d < hd; d += 32 * W) {
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < W; ++w) sum += sacc[w][d] * scale[w];
    out[d] = last ? (total > 0.0f ? sum / total : 0.0f) : sum;  // no visible key: zeros, as the CPU backend
  }
  if (!last && threadIdx.x == 0) out[hd] = mx, out[hd + 1] = total;
}

template <class T, int P, bool S>
__global__ void __launch_bounds__(32 * kSplitWarps) attention_split_kernel(AttentionArgs a, int64_t keys_per_split,
                                                                           float* partial) {
  let_next_start();
  split_attend<T, P, S>(a, keys_per_split, partial);
}

// A decode batch: blockIdx.z picks the sequence's arguments; each sequence's keys in gridDim.y
// splits (of its own length).
template <class T, int P, bool S>
__global__ void __launch_bounds__(32 * kSplitWarps) attention_split_multi_kernel(const AttentionArgs* __restrict__ all,
                                                                                 float* partial) {
  let_next_start();
  wait_for_inputs();  // (the arguments were copied in before the kernel before)
  const AttentionArgs a = all[blockIdx.z];
  if (int64_t(blockIdx.x) / a.heads >= a.n_q) return;  // the whole block: blockIdx only
  const int64_t per = (a.k_count + gridDim.y - 1) / gridDim.y;
  split_attend<T, P, S>(a, per > 0 ? per : 1, partial);
}

// The splits of (query, head) blockIdx.x combined under their common maximum, from p (their
// partial sums) into a's output.
__device__ __forceinline__ void combine_splits(const AttentionArgs& a, int splits, const float* p) {
  const int64_t hd = a.head_dim;
  float* out = a.out + int64_t(blockIdx.x / a.heads) * a.heads * hd + int64_t(blockIdx.x % a.heads) * hd;
  auto m = [&](int s) { return p[s * (hd + 2) + hd]; };
  auto l = [&](int s) { return p[s * (hd + 2) + hd + 1]; };
  constexpr int kHeld = 16;  // up to this many splits: every load at once (one trip to L2, not two)
  if (splits <= kHeld && hd <= int64_t(blockDim.x)) {
    const int d = int(threadIdx.x);
    float mv[kHeld], lv[kHeld], pv[kHeld];
#pragma unroll
    for (int s = 0; s < kHeld; ++s) {
      mv[s] = s < splits ? m(s) : 0.0f;
      lv[s] = s < splits ? l(s) : 0.0f;
      pv[s] = s < splits && d < hd ? p[s * (hd + 2) + d] : 0.0f;
    }
    float mx = -FLT_MAX;  // (merged_max, unrolled: the arrays stay in registers)
#pragma unroll
    for (int s = 0; s < kHeld; ++s)
      if (s < splits && lv[s] > 0.0f) mx = fmaxf(mx, mv[s]);
    float total = 0.0f, sum = 0.0f;
#pragma unroll
    for (int s = 0; s < kHeld; ++s) {
      const float scale = s < splits ? merge_scale(mv[s], lv[s], mx) : 0.0f;
      total += lv[s] * scale;
      if (scale > 0.0f) sum += pv[s] * scale;
    }
    if (d < hd) out[d] = total > 0.0f ? sum / total : 0.0f;
    return;
  }
  const float mx = merged_max(splits, m, l);
  float total = 0.0f;
  for (int s = 0; s < splits; ++s) total += l(s) * merge_scale(m(s), l(s), mx);
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
    float sum = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float scale = merge_scale(m(s), l(s), mx);
      if (scale > 0.0f) sum += p[s * (hd + 2) + d] * scale;
    }
    out[d] = total > 0.0f ? sum / total : 0.0f;
  }
}

__global__ void __launch_bounds__(128) attention_combine_kernel(AttentionArgs a, int splits, const float* partial) {
  let_next_start();
  wait_for_inputs();
  combine_splits(a, splits, partial + int64_t(blockIdx.x) * splits * (a.head_dim + 2));
}

// A decode batch's splits: blockIdx.y picks the sequence.
__global__ void __launch_bounds__(128) attention_combine_multi_kernel(const AttentionArgs* __restrict__ all, int splits,
                                                                      const float* partial) {
  let_next_start();
  wait_for_inputs();
  const AttentionArgs a = all[blockIdx.y];
  if (int64_t(blockIdx.x) / a.heads >= a.n_q) return;
  combine_splits(a, splits, partial + (int64_t(blockIdx.y) * gridDim.x + blockIdx.x) * splits * (a.head_dim + 2));
}

// The split kernels of one KV type, head dim (P = head_dim / 32) and span choice, launched.
template <class T, int P, bool S>
struct SplitKernels {
  static void one(dim3 grid, cudaStream_t stream, const AttentionArgs& a, int64_t per, float* partial) {
    launch_dependent(attention_split_kernel<T, P, S>, grid, 32 * kSplitWarps, 0, stream, a, per, partial);
  }
  static void multi(dim3 grid, cudaStream_t stream, const AttentionArgs* args, float* partial) {
    launch_dependent(attention_split_multi_kernel<T, P, S>, grid, 32 * kSplitWarps, 0, stream, args, partial);
  }
};
// go(SplitKernels<...>{}) for a's KV type and head dim (whole lanes: split_plan), span or not.
template <class Go>
void with_split_kernels(const AttentionArgs& a, bool span, Go go) {
  auto pick = [&](auto type, auto lanes) {
    using T = typename decltype(type)::type;
    constexpr int P = decltype(lanes)::value;
    if (span)
      go(SplitKernels<T, P, true>{});
    else
      go(SplitKernels<T, P, false>{});
  };
  using H = std::type_identity<__half>;
  using F = std::type_identity<float>;
  switch ((a.head_dim / 32) * (a.kv_f16 ? 1 : -1)) {
    case 1: return pick(H{}, std::integral_constant<int, 1>{});
    case 2: return pick(H{}, std::integral_constant<int, 2>{});
    case 4: return pick(H{}, std::integral_constant<int, 4>{});
    case 8: return pick(H{}, std::integral_constant<int, 8>{});
    case -1: return pick(F{}, std::integral_constant<int, 1>{});
    case -2: return pick(F{}, std::integral_constant<int, 2>{});
    case -4: return pick(F{}, std::integral_constant<int, 4>{});
    default: return pick(F{}, std::integral_constant<int, 8>{});
  }
}
bool has_span(const AttentionArgs& a) { return a.k_first != 0 || a.k_count != a.n_k; }

// How the keys split: enough blocks for ~8 a multiprocessor, at least 16 keys a split (a block's
// 4 warps x 4 keys in flight: a short context's keys in one round of loads, not four; 27B tg128
// on an H200 173-174 t/s against 164-167 at 64 keys, 172-173 at 8). Long contexts split by the
// block count: ~8 a multiprocessor since a warp keeps its next round's loads in flight (tg32 at
// 4096 tokens of context 160.5 / 158.2 against 150.8 / 150.8 at ~4; before that, 4 had won).
struct SplitPlan {
  int splits = 0;  // 0: not this kernel
  int64_t keys_per_split = 0;
};
// Whether the split kernel takes a: a lane's P values are P * sizeof(T) apart in every row,
// aligned where the caches start on 16 bytes.
bool takes_split_kernel(const AttentionArgs& a) {
  const int64_t hd = a.head_dim;
  const bool lanes = hd == 32 || hd == 64 || hd == 128 || hd == 256;
  const bool aligned = reinterpret_cast<uintptr_t>(a.k) % 16 == 0 && reinterpret_cast<uintptr_t>(a.v) % 16 == 0;
  return lanes && aligned && a.k_count > 0;
}
// Splits of `keys` for `blocks` (query, head) blocks to make about per_mp blocks a
// multiprocessor, at least 16 keys each.
int64_t split_count(int64_t keys, int64_t blocks, int64_t per_mp, int multiprocessors) {
  const int64_t want = std::clamp<int64_t>((per_mp * multiprocessors + blocks - 1) / blocks, 1, 256);
  return std::clamp<int64_t>((keys + 15) / 16, 1, want);
}
SplitPlan split_plan(const AttentionArgs& a, int multiprocessors) {
  if (!takes_split_kernel(a)) return {};
  const int64_t splits = split_count(a.k_count, a.n_q * a.heads, 8, multiprocessors);
  const int64_t per = (a.k_count + splits - 1) / splits;
  return {int((a.k_count + per - 1) / per), per};
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
  const int32_t qp = a.q_pos[q0 + i], qg = a.q_group[q0 + i];
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
    if (visible_to(a, qp, qg, j)) mx = fmaxf(mx, s[j]);
  mx = block_reduce(mx, true);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < a.n_k; j += blockDim.x) {
    const float e = visible_to(a, qp, qg, j) ? __expf(s[j] - mx) : 0.0f;
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

int attention_multi_splits(std::span<const AttentionArgs> host, int64_t max_nq, int multiprocessors) {
  int64_t most_keys = 0;
  for (const AttentionArgs& a : host) {
    if (!takes_split_kernel(a)) return 0;
    most_keys = std::max(most_keys, a.k_count);
  }
  if (host.empty() || max_nq == 0) return 0;
  // As split_plan, over all the batch's (query, head) blocks, ~4 a multiprocessor: 32 sequences
  // of 32 heads fill an H200's 132 without splitting (27B, 32 sequences at 2048 tokens of
  // context: 812 / 820 t/s at ~4, 792 / 811 / 832 at ~8, 812 at ~2: no clear winner; 621-653
  // with one block per (query, head) walking every key, the kernel before).
  return int(split_count(most_keys, int64_t(host.size()) * max_nq * host[0].heads, 4, multiprocessors));
}

int64_t attention_multi_scratch_bytes(std::span<const AttentionArgs> host, int64_t max_nq, int splits) {
  if (splits <= 1 || host.empty()) return 0;
  return int64_t(host.size()) * max_nq * host[0].heads * splits * (host[0].head_dim + 2) * 4;
}

void attention_multi(const AttentionArgs* args, std::span<const AttentionArgs> host, int64_t max_nq, int splits,
                     void* scratch, cudaStream_t stream) {
  if (host.empty() || max_nq == 0) return;
  const AttentionArgs& a = host[0];
  const auto count = unsigned(host.size()), blocks = unsigned(max_nq * a.heads);
  if (splits == 0) {
    const dim3 grid(blocks, count);
    if (a.kv_f16)
      launch_dependent(attention_multi_kernel<__half>, grid, 32 * kWarpsBatch, 0, stream, args);
    else
      launch_dependent(attention_multi_kernel<float>, grid, 32 * kWarpsBatch, 0, stream, args);
    return;
  }
  float* partial = static_cast<float*>(scratch);
  const dim3 grid(blocks, unsigned(splits), count);
  const bool span = std::ranges::any_of(host, has_span);
  with_split_kernels(a, span, [&](auto k) { decltype(k)::multi(grid, stream, args, partial); });
  if (splits > 1)
    launch_dependent(attention_combine_multi_kernel, dim3(blocks, count), 128, 0, stream, args, splits,
                     static_cast<const float*>(partial));
}

int64_t attention_scratch_bytes(const AttentionArgs& a, int multiprocessors) {
  const SplitPlan plan = split_plan(a, multiprocessors);
  return plan.splits > 1 ? a.n_q * a.heads * plan.splits * (a.head_dim + 2) * 4 : 0;
}

bool attention_takes_new_key(const AttentionArgs& a, int multiprocessors) {
  return a.n_q == 1 && split_plan(a, multiprocessors).splits > 0;
}

void attention(const AttentionArgs& a, int multiprocessors, void* scratch, cudaStream_t stream) {
  if (a.n_q == 0) return;
  const SplitPlan plan = split_plan(a, multiprocessors);
  if (plan.splits > 0) {
    float* partial = static_cast<float*>(scratch);
    const dim3 grid(unsigned(a.n_q * a.heads), unsigned(plan.splits));
    with_split_kernels(a, has_span(a), [&](auto k) { decltype(k)::one(grid, stream, a, plan.keys_per_split, partial); });
    if (plan.splits > 1)
      launch_dependent(attention_combine_kernel, unsigned(a.n_q * a.heads), 128, 0, stream, a, plan.splits,
                       static_cast<const float*>(partial));
    return;
  }
  if (a.kv_f16)
    launch_dependent(attention_kernel<__half>, unsigned(a.n_q * a.heads), 32 * kWarpsOne, 0, stream, a);
  else
    launch_dependent(attention_kernel<float>, unsigned(a.n_q * a.heads), 32 * kWarpsOne, 0, stream, a);
}

}  // namespace unicorn::cuda
