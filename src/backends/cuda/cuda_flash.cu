// Flash attention for many queries (prefill chunks, the vision tower) on the f16 tensor cores:
// mma.sync m16n8k16 with f32 sums, an online softmax whose scores never leave registers, and
// the engine's mask (ops/backend.h AttentionMask) per score.
// A block of 4 warps takes 64 queries of one head, each warp 16, and walks the keys 64 at a
// time: K and V tiles (f16) come into shared memory by cp.async while the previous tile is
// used, with the tile's key positions and image groups; ldmatrix turns them into B fragments
// (V transposed on the way). A warp skips the products of a tile in which none of its scores
// is visible (the future half of a causal chunk). Where every query sees every key (the vision
// tower: not causal, no empty slot, whole tiles) a second form of the kernel skips the mask and
// gives each warp two tiles of 16 queries.
// Scores are kept in base 2 (q scaled by scale * log2 e), so each probability is one ex2.
// Fragments (PTX ISA, m16n8k16, lane = 4 g + t): A a0 = (row g, cols 2t, 2t + 1), a1 = row
// g + 8, a2 = cols 2t + 8, 2t + 9 of row g, a3 of row g + 8; B b0 = (rows 2t, 2t + 1, col g),
// b1 = rows 2t + 8, 2t + 9; C c0, c1 = (row g, cols 2t, 2t + 1), c2, c3 = row g + 8. A score
// tile's C fragments are the A fragments of the probabilities for P V as they are.
#include <cuda.h>
#include <cudaTypedefs.h>

#include "backends/cuda/cuda_common.cuh"

namespace unicorn::cuda {

namespace {

constexpr int kK = 64;  // keys a tile

// Shared memory: two stages of K and V tiles [kK][HDP + 8] (padded rows: 16-byte aligned,
// ldmatrix without bank conflicts), then two stages of key positions and groups.
template <int HDP>
struct FlashLayout {
  static constexpr int kStride = HDP + 8;
  static constexpr int kTile = kK * kStride;  // halves
  static constexpr size_t kBytes = 4 * size_t(kTile) * sizeof(__half) + 4 * kK * sizeof(int32_t);
};

__device__ __forceinline__ unsigned smem_address(const void* p) {
  return unsigned(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, in flight until cp_async_wait; zeros where !valid.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_address(dst)), "l"(src),
               "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;" ::: "memory"); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const __half* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(p))
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], const __half* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(smem_address(p))
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const __half* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(p))
               : "memory");
}

__device__ __forceinline__ void mma_f16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// m16n8k8: A a0 = (row g, cols 2t, 2t + 1), a1 = row g + 8; B b0 = (rows 2t, 2t + 1, col g).
__device__ __forceinline__ void mma_f16_k8(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t b0) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(b0));
}

__device__ __forceinline__ uint32_t pack_f16(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}
// f16 or (kBf16) bf16 pairs: the wgmma kernel's operands take the type of q, K and V.
template <bool kBf16>
__device__ __forceinline__ uint32_t pack_pair(float lo, float hi) {
  if constexpr (kBf16) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  } else {
    return pack_f16(lo, hi);
  }
}

// What q is multiplied by so that scores come out in base 2: scale * log2 e.
__device__ __forceinline__ float base2_q_scale(const AttentionArgs& a) { return a.scale * 1.4426950408889634f; }

__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// The pieces of a 64-key tile every kernel below runs, for MT 16-query tiles a warp.
// HDP, NT: as the kernels'. KF: whole 16-wide steps of q k^T; KS: A fragments of q (one
// more for an odd NT).
template <int NT>
constexpr int kSteps = (NT + 1) / 2;

// s = scores of MT x 16 queries x 64 keys (8 tiles of 8 keys, two a ldmatrix) of K tile tk.
template <int HDP, int NT, int MT>
__device__ __forceinline__ void tile_scores(float (&s)[MT][8][4], const uint32_t (&qa)[MT][kSteps<NT>][4],
                                            const __half* tk, int mi, int mr) {
  using L = FlashLayout<HDP>;
  constexpr int KF = NT / 2;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.0f;
#pragma unroll
  for (int np = 0; np < 4; ++np)
#pragma unroll
    for (int ks = 0; ks < KF; ++ks) {
      uint32_t b[4];  // keys np*16 + (mi >> 1) * 8 + mr, dims ks*16 + (mi & 1) * 8
      ldmatrix_x4(b, tk + (np * 16 + (mi >> 1) * 8 + mr) * L::kStride + ks * 16 + (mi & 1) * 8);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        mma_f16(s[mt][2 * np], qa[mt][ks], b[0], b[1]);
        mma_f16(s[mt][2 * np + 1], qa[mt][ks], b[2], b[3]);
      }
    }
  if constexpr (NT % 2 == 1) {
    // The last 8 dimensions: four key tiles a ldmatrix (keys np*32 + mi*8 + mr).
#pragma unroll
    for (int np = 0; np < 2; ++np) {
      uint32_t b[4];
      ldmatrix_x4(b, tk + (np * 32 + mi * 8 + mr) * L::kStride + KF * 16);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int i = 0; i < 4; ++i) mma_f16_k8(s[mt][4 * np + i], qa[mt][KF][0], qa[mt][KF][1], b[i]);
    }
  }
}

// The online softmax of a tile's scores (rows g: e = 0, 1 and g + 8: e = 2, 3 of each query
// tile; scores whose bit of `seen` is clear are masked unless kEvery): the running maxima m
// and sums l, o rescaled where a maximum moved, and the probabilities as f16 pairs, the A
// fragments of P V: ph[mt][nt][r] = keys nt * 8 + 2t, + 1 of row r (bf16 pairs with kBf16).
template <int NT, int MT, bool kEvery, bool kBf16 = false>
__device__ __forceinline__ void tile_softmax(float (&s)[MT][8][4], uint32_t seen, float (&m)[MT][2], float (&l)[MT][2],
                                             float (&o)[MT][NT][4], uint32_t (&ph)[MT][8][2]) {
  float mx[MT][2], base[MT][2], corr[MT][2];
  bool settled = true;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    mx[mt][0] = mx[mt][1] = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        if (!kEvery && !(seen >> (nt * 4 + e) & 1u)) s[mt][nt][e] = -INFINITY;
        mx[mt][e >> 1] = fmaxf(mx[mt][e >> 1], s[mt][nt][e]);
      }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[mt][r] = fmaxf(mx[mt][r], __shfl_xor_sync(0xffffffffu, mx[mt][r], 1));
      mx[mt][r] = fmaxf(mx[mt][r], __shfl_xor_sync(0xffffffffu, mx[mt][r], 2));
      const float m_new = fmaxf(m[mt][r], mx[mt][r]);
      base[mt][r] = m_new == -INFINITY ? 0.0f : m_new;  // nothing visible yet: every p is 0
      corr[mt][r] = exp2_approx(m[mt][r] - base[mt][r]);
      m[mt][r] = m_new;
      l[mt][r] *= corr[mt][r];
      settled = settled && corr[mt][r] == 1.0f;
    }
  }
  // Once the rows' maxima settle (most tiles of a long row), no rescaling of the sums.
  if (!__all_sync(0xffffffffu, settled)) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int v = 0; v < NT; ++v) {
        o[mt][v][0] *= corr[mt][0], o[mt][v][1] *= corr[mt][0];
        o[mt][v][2] *= corr[mt][1], o[mt][v][3] *= corr[mt][1];
      }
  }
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float x0 = s[mt][nt][2 * r] - base[mt][r], x1 = s[mt][nt][2 * r + 1] - base[mt][r];
        const float p0 = exp2_approx(x0), p1 = exp2_approx(x1);
        l[mt][r] += p0 + p1;
        ph[mt][nt][r] = pack_pair<kBf16>(p0, p1);
      }
}

// o += P V over the 64 keys of V tile tv: 4 steps of 16, two dimension tiles a ldmatrix.
template <int HDP, int NT, int MT>
__device__ __forceinline__ void tile_pv(float (&o)[MT][NT][4], const uint32_t (&ph)[MT][8][2], const __half* tv, int mi,
                                        int mr) {
  using L = FlashLayout<HDP>;
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    uint32_t p[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      p[mt][0] = ph[mt][2 * kk][0];
      p[mt][1] = ph[mt][2 * kk][1];
      p[mt][2] = ph[mt][2 * kk + 1][0];
      p[mt][3] = ph[mt][2 * kk + 1][1];
    }
#pragma unroll
    for (int vp = 0; vp < NT / 2; ++vp) {
      uint32_t b[4];  // keys kk*16 + (mi & 1) * 8 + mr, dims vp*16 + (mi >> 1) * 8, transposed
      ldmatrix_x4_trans(b, tv + (kk * 16 + (mi & 1) * 8 + mr) * L::kStride + vp * 16 + (mi >> 1) * 8);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        mma_f16(o[mt][2 * vp], p[mt], b[0], b[1]);
        mma_f16(o[mt][2 * vp + 1], p[mt], b[2], b[3]);
      }
    }
    if constexpr (NT % 2 == 1) {  // the last dimension tile alone (lanes 16-31 unused)
      uint32_t b[2];
      ldmatrix_x2_trans(b, tv + (kk * 16 + (mi & 1) * 8 + mr) * L::kStride + (NT - 1) * 8);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) mma_f16(o[mt][NT - 1], p[mt], b[0], b[1]);
    }
  }
}

// A warp's rows g and g + 8 of each of its MT query tiles from q0: queries scaled by scale *
// log2 e as A fragments for the head dimension's steps, and whether each row exists.
template <int NT, int MT>
__device__ __forceinline__ void load_q(const AttentionArgs& a, int64_t q0, int64_t h, int g, int t,
                                       uint32_t (&qa)[MT][kSteps<NT>][4], bool (&row_in)[MT][2]) {
  const float q_scale = base2_q_scale(a);
  const int64_t hd = a.head_dim, qw = a.heads * hd;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int64_t row = q0 + 16 * mt + g + 8 * r;
      row_in[mt][r] = row < a.n_q;
#pragma unroll
      for (int ks = 0; ks < kSteps<NT>; ++ks)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int64_t d = ks * 16 + 2 * t + 8 * half;
          float2 x = make_float2(0.0f, 0.0f);
          if (row_in[mt][r] && d < hd) x = *reinterpret_cast<const float2*>(a.q + row * qw + h * hd + d);
          qa[mt][ks][r + 2 * half] = pack_f16(x.x * q_scale, x.y * q_scale);
        }
    }
}

// The warp's rows out: o / l (zeros where no key was visible, as the CPU backend).
template <int NT, int MT>
__device__ __forceinline__ void store_o(const AttentionArgs& a, int64_t q0, int64_t h, int g, int t,
                                        const bool (&row_in)[MT][2], float (&l)[MT][2], const float (&o)[MT][NT][4]) {
  const int64_t hd = a.head_dim, qw = a.heads * hd;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      l[mt][r] += __shfl_xor_sync(0xffffffffu, l[mt][r], 1);
      l[mt][r] += __shfl_xor_sync(0xffffffffu, l[mt][r], 2);
    }
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int64_t row = q0 + 16 * mt + g + 8 * r;
      if (!row_in[mt][r]) continue;
      const float inv = l[mt][r] > 0.0f ? 1.0f / l[mt][r] : 0.0f;
#pragma unroll
      for (int v = 0; v < NT; ++v) {
        const int64_t d = v * 8 + 2 * t;
        if (d >= hd) continue;
        const float lo = o[mt][v][2 * r] * inv, hi = o[mt][v][2 * r + 1] * inv;
        if (a.out_bf16)
          *reinterpret_cast<__nv_bfloat162*>(static_cast<__nv_bfloat16*>(a.out_bf16) + row * qw + h * hd + d) =
              __floats2bfloat162_rn(lo, hi);
        else
          *reinterpret_cast<float2*>(a.out + row * qw + h * hd + d) = make_float2(lo, hi);
      }
    }
}

// HDP: the head dimension padded to 16 (the tiles' rows); NT: the 8-wide dimension tiles
// multiplied (HDP / 8, or one fewer where head_dim leaves the last empty: SigLIP's 72 of 80,
// whose last step of q k^T is then an m16n8k8); columns past head_dim are zeros. K and V are
// f16, head_dim a multiple of 8. kEvery: every query sees every key and n_k is whole tiles.
// MT: 16-query tiles a warp; with two, each K or V fragment read from shared memory feeds two
// products (half the ldmatrix a query).
template <int HDP, int NT, bool kEvery, int kWarps, int MT>
__global__ void __launch_bounds__(kWarps * 32, MT == 2 ? 8 / kWarps : (kEvery && HDP == 80 ? 16 / kWarps : 1))
    flash_attention_kernel(AttentionArgs a) {
  static_assert(MT == 1 || kEvery, "the masked kernel takes one query tile a warp");
  constexpr int kThreads = kWarps * 32, kQ = kWarps * 16 * MT;
  using L = FlashLayout<HDP>;
  constexpr int KS = kSteps<NT>, CPR = NT;  // KS: q's A fragments; CPR: 16-byte chunks loaded a row
  extern __shared__ __align__(16) unsigned char smem[];
  __half* const sk = reinterpret_cast<__half*>(smem);  // [2][kK][kStride]
  __half* const sv = sk + 2 * L::kTile;                // [2][kK][kStride]
  int32_t* const spos = reinterpret_cast<int32_t*>(sv + 2 * L::kTile);  // [2][kK]
  int32_t* const sgroup = spos + 2 * kK;                                 // [2][kK]
  const int tid = int(threadIdx.x), warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int64_t h = blockIdx.y, kvh = h / (a.heads / a.kv_heads), hd = a.head_dim;
  const int64_t kw = a.kv_heads * hd;
  const int chunks = int(hd / 8);
  const __half* const K = static_cast<const __half*>(a.k) + kvh * hd;
  const __half* const V = static_cast<const __half*>(a.v) + kvh * hd;

  // K and V tiles by cp.async, 16 bytes a copy (zeros past head_dim and past n_k): 8 threads
  // take a row's first 8 chunks (128 contiguous bytes), rows kThreads / 8 apart, and the
  // chunks past a multiple of 8 (SigLIP's 9th) go one a thread. A copy's offset in a tile is
  // the same every tile (32 bits: flash_attention checks), so a tile adds only two 64-bit
  // bases. (A loop over i = tid, tid + kThreads, ... with 64-bit sums per chunk and a trip
  // count the compiler could not see had taken a fifth of the kernel's stall samples.)
  constexpr int kRowsPass = kThreads / 8, kWide = CPR / 8 * 8, kRest = CPR - kWide;
  constexpr int kRestCopies = kK * kRest, kRestRounds = (kRestCopies + kThreads - 1) / kThreads;
  const int row_stride = int(kw), sub = tid & 7, row0 = tid >> 3;
  auto load_tile = [&](int stage, int64_t k0) {
    __half* const dk = sk + stage * L::kTile;
    __half* const dv = sv + stage * L::kTile;
    const __half* const kt = K + k0 * kw;
    const __half* const vt = V + k0 * kw;
    auto copy = [&](int key, int c) {  // chunk c of row `key`, in K and in V
      const bool in = (kEvery || k0 + key < a.n_k) && c < chunks;
      const int at = key * row_stride + c * 8, to = key * L::kStride + c * 8;
      cp_async16(dk + to, in ? kt + at : K, in);
      cp_async16(dv + to, in ? vt + at : V, in);
    };
#pragma unroll
    for (int c0 = 0; c0 < kWide; c0 += 8)
#pragma unroll
      for (int r = 0; r < kK; r += kRowsPass) copy(r + row0, c0 + sub);
    if constexpr (kRest > 0) {
#pragma unroll
      for (int n = 0; n < kRestRounds; ++n) {
        const int i = tid + n * kThreads;
        if (kRestCopies % kThreads == 0 || i < kRestCopies) copy(i / kRest, kWide + i % kRest);
      }
    }
    if (!kEvery && tid < kK) {
      const int64_t j = k0 + tid;
      spos[stage * kK + tid] = j < a.n_k ? a.k_pos[j] : -1;
      sgroup[stage * kK + tid] = j < a.n_k ? a.k_group[j] : -1;
    }
  };
  load_tile(0, 0);
  cp_async_commit();
  // This warp's rows g and g + 8 of each of its query tiles, and what the mask needs of them.
  const int64_t q0 = int64_t(blockIdx.x) * kQ + warp * 16 * MT;
  bool row_in[MT][2];
  uint32_t qa[MT][KS][4];
  load_q<NT, MT>(a, q0, h, g, t, qa, row_in);
  int32_t row_pos[2], row_group[2];  // (one query tile where there is a mask)
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t row = q0 + g + 8 * r;
    row_pos[r] = row_in[0][r] && !kEvery ? a.q_pos[row] : 0;
    row_group[r] = row_in[0][r] && !kEvery ? a.q_group[row] : -1;
  }
  float o[MT][NT][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int v = 0; v < NT; ++v) o[mt][v][0] = o[mt][v][1] = o[mt][v][2] = o[mt][v][3] = 0.0f;
  float m[MT][2], l[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.0f;
  const int mi = lane >> 3, mr = lane & 7;  // ldmatrix: the matrix and row this lane addresses

  int stage = 0;
  for (int64_t k0 = 0; k0 < a.n_k; k0 += kK, stage ^= 1) {
    cp_async_wait_all();
    // Tile `stage` is in shared memory for every thread, and every warp is done with the
    // other stage (the tile before): the next tile loads into it while this one is used.
    __syncthreads();
    if (k0 + kK < a.n_k) {
      load_tile(stage ^ 1, k0 + kK);
      cp_async_commit();
    }
    const __half* const tk = sk + stage * L::kTile;
    const __half* const tv = sv + stage * L::kTile;
    const int32_t* const tpos = spos + stage * kK;
    const int32_t* const tgroup = sgroup + stage * kK;

    // The mask of this thread's 32 scores (one query tile: MT is 1 here): bit 4 nt + e, key
    // nt * 8 + 2t + (e & 1), row e >> 1.
    uint32_t seen = kEvery ? ~0u : 0u;
#pragma unroll
    for (int nt = 0; nt < (kEvery ? 0 : 8); ++nt)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int kj = nt * 8 + 2 * t + c;
        const int32_t kp = tpos[kj];
        if (kp < 0) continue;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          bool vis = row_in[0][r];
          if (vis && a.causal) {
            const int32_t qp = row_pos[r];
            if (a.window != 0 && int64_t(qp) - kp >= a.window)
              vis = false;  // also inside an image
            else if (kp > qp)
              vis = row_group[r] >= 0 && row_group[r] == tgroup[kj];
          }
          if (vis) seen |= 1u << (nt * 4 + 2 * r + c);
        }
      }
    if (kEvery || __any_sync(0xffffffffu, seen != 0)) {
      float s[MT][8][4];
      tile_scores<HDP, NT, MT>(s, qa, tk, mi, mr);
      uint32_t ph[MT][8][2];
      tile_softmax<NT, MT, kEvery>(s, seen, m, l, o, ph);
      tile_pv<HDP, NT, MT>(o, ph, tv, mi, mr);
    }
  }
  store_o<NT, MT>(a, q0, h, g, t, row_in, l, o);
}

template <int HDP, int NT, bool kEvery, int kWarps, int MT = 1>
void launch_flash(const AttentionArgs& a, cudaStream_t stream) {
  constexpr size_t bytes = FlashLayout<HDP>::kBytes;
  constexpr int kQ = kWarps * 16 * MT;
  // Per launch, not once: the attribute belongs to the current device.
  UNICORN_CUDA_CHECK(cudaFuncSetAttribute(flash_attention_kernel<HDP, NT, kEvery, kWarps, MT>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  const dim3 grid{unsigned((a.n_q + kQ - 1) / kQ), unsigned(a.heads)};
  flash_attention_kernel<HDP, NT, kEvery, kWarps, MT><<<grid, kWarps * 32, bytes, stream>>>(a);
  UNICORN_CUDA_LAUNCHED();
}

// Without a mask, 128 queries a block share each K and V tile (on an H200, the 27B vision
// tower's image 23.7 -> 22.6 ms against 64), as 4 warps of two query tiles each, so each K or V
// fragment read from shared memory feeds two products (18.0 / 18.6 -> 17.4 / 18.1 ms against 8
// warps of one tile).
template <int HDP, int NT = HDP / 8>
void launch_flash(const AttentionArgs& a, cudaStream_t stream) {
  if (!a.every_key || a.n_k % kK != 0)
    launch_flash<HDP, NT, false, 4>(a, stream);
  else if constexpr (HDP <= 80)
    launch_flash<HDP, NT, true, 4, 2>(a, stream);
  else  // (two tiles of 128 dimensions would not fit the registers)
    launch_flash<HDP, NT, true, 8, 1>(a, stream);
}

#if defined(UNICORN_CUDA_WGMMA)
// ---- Hopper (sm_90a): the unmasked kernel for SigLIP's head dim 72 on wgmma ----
// Two warpgroups of 64 queries share K/V tiles of 64 keys that thread 0 brings by TMA (4 stages,
// full / empty mbarriers, no block barrier in the loop); each group issues q k^T of the next
// tile (wgmma, q and K from shared memory) before the softmax of this one, then P V (P from
// registers). Tiles land swizzled, as wgmma reads them: dims 0-63 in rows of 128 bytes (128-byte
// swizzle), K's 64-79 in rows of 32 (32-byte swizzle; 72-79 are the next head's or zeros, times
// q's zeros), V's 64-71 in rows of 16. q, K and V f16, or bf16 as cuBLAS writes the vision
// tower's (no conversion before attention). On H200s (27B vision tower, in place): 227-229 us a
// layer in f16 against 290-293 for the mma.sync kernel, 200 us in bf16.
// An m64n64 accumulator (a thread's 8 x 4 floats) as asm operands %0-%31.
#define UNICORN_WGMMA_ACC64(d) \
  "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), \
  "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), \
  "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), \
  "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]), \
  "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), \
  "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), \
  "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), \
  "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])

// The three products' PTX for operands of type T ("f16" or "bf16"), and each as a function of
// kBf16 (asm wants one string literal: the two forms differ in the type only).
#define UNICORN_WGMMA_QK(T)                                                                                       \
  "{\n.reg .pred acc;\nsetp.ne.b32 acc, %34, 0;\n"                                                             \
  "wgmma.mma_async.sync.aligned.m64n64k16.f32." T "." T " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, " \
  "%13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, acc, " \
  "1, 1, 0, 0;\n}\n"
#define UNICORN_WGMMA_PV64(T)                                                                                     \
  "{\n.reg .pred acc;\nsetp.ne.b32 acc, %37, 0;\n"                                                             \
  "wgmma.mma_async.sync.aligned.m64n64k16.f32." T "." T " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, " \
  "%13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, " \
  "%35}, %36, acc, 1, 1, 1;\n}\n"
#define UNICORN_WGMMA_PV8(T)                       \
  "{\n.reg .pred acc;\nsetp.ne.b32 acc, %9, 0;\n" \
  "wgmma.mma_async.sync.aligned.m64n8k16.f32." T "." T " {%0, %1, %2, %3}, {%4, %5, %6, %7}, %8, acc, 1, 1, 1;\n}\n"
template <bool kBf16>
__device__ __forceinline__ void wgmma_qk(float (&d)[8][4], uint64_t qd, uint64_t kd, int accumulate) {
  if constexpr (kBf16)
    asm volatile(UNICORN_WGMMA_QK("bf16") : UNICORN_WGMMA_ACC64(d) : "l"(qd), "l"(kd), "r"(accumulate));
  else
    asm volatile(UNICORN_WGMMA_QK("f16") : UNICORN_WGMMA_ACC64(d) : "l"(qd), "l"(kd), "r"(accumulate));
}
template <bool kBf16>
__device__ __forceinline__ void wgmma_pv64(float (&d)[8][4], const uint32_t (&p)[4], uint64_t vd) {
  if constexpr (kBf16)
    asm volatile(UNICORN_WGMMA_PV64("bf16")
                 : UNICORN_WGMMA_ACC64(d)
                 : "r"(p[0]), "r"(p[1]), "r"(p[2]), "r"(p[3]), "l"(vd), "r"(1));
  else
    asm volatile(UNICORN_WGMMA_PV64("f16")
                 : UNICORN_WGMMA_ACC64(d)
                 : "r"(p[0]), "r"(p[1]), "r"(p[2]), "r"(p[3]), "l"(vd), "r"(1));
}
template <bool kBf16>
__device__ __forceinline__ void wgmma_pv8(float (&d)[4], const uint32_t (&p)[4], uint64_t vd) {
  if constexpr (kBf16)
    asm volatile(UNICORN_WGMMA_PV8("bf16")
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(p[0]), "r"(p[1]), "r"(p[2]), "r"(p[3]), "l"(vd), "r"(1));
  else
    asm volatile(UNICORN_WGMMA_PV8("f16")
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(p[0]), "r"(p[1]), "r"(p[2]), "r"(p[3]), "l"(vd), "r"(1));
}
#undef UNICORN_WGMMA_QK
#undef UNICORN_WGMMA_PV64
#undef UNICORN_WGMMA_PV8
#undef UNICORN_WGMMA_ACC64

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
// Pins accumulator registers at this point of the program (no copies across wgmma stages).
template <int N>
__device__ __forceinline__ void fence_regs(float (&r)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
    asm volatile("" : "+f"(r[i][0]), "+f"(r[i][1]), "+f"(r[i][2]), "+f"(r[i][3])::"memory");
}
// A descriptor of a tile in shared memory: start, lbo and sbo in bytes, swizzle (0: none, 1: 128
// bytes, 3: 32 bytes).
__device__ __forceinline__ uint64_t wg_desc(const void* p, uint32_t lbo, uint32_t sbo, uint64_t swizzle) {
  return uint64_t((smem_address(p) & 0x3FFFF) >> 4) | uint64_t(lbo >> 4) << 16 | uint64_t(sbo >> 4) << 32 | swizzle << 62;
}

__device__ __forceinline__ void barrier_init(uint64_t* bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_address(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void barrier_expect(uint64_t* bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_address(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void barrier_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_address(bar)) : "memory");
}
__device__ __forceinline__ void barrier_wait(uint64_t* bar, unsigned parity) {
  asm volatile(
      "{\n .reg .pred done;\n WAIT_%=:\n mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      " @!done bra WAIT_%=;\n}" ::"r"(smem_address(bar)),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ void tma_2d(void* dst, const CUtensorMap* map, int x, int y, uint64_t* bar) {
  asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(
                   smem_address(dst)),
               "l"(map), "r"(x), "r"(y), "r"(smem_address(bar))
               : "memory");
}

// A stage: K's dims 0-63 (64 rows of 128 bytes, 128-byte swizzle), K's 64-79 (rows of 32
// bytes, 32-byte swizzle), V's 0-63 (as K's), V's 64-71 (rows of 16 bytes); q likewise (its
// first two parts) for each group.
constexpr int kWgGroups = 2, kWgStages = 4;
constexpr int kWgKA = 8192, kWgKB = 2048, kWgVA = 8192, kWgVB = 1024;  // bytes
constexpr int kWgStage = kWgKA + kWgKB + kWgVA + kWgVB, kWgQPart = kWgKA + kWgKB, kWgQ = 64 * kWgGroups;
constexpr int kWgThreads = 128 * kWgGroups;
constexpr size_t kWgBytes = size_t(kWgGroups) * kWgQPart + size_t(kWgStages) * kWgStage;
struct WgMaps {
  CUtensorMap ka, kb, va, vb;
};

// q, K and V f16 (q f32 in a.q, scaled and rounded here) or (kBf16) bf16 (q in a.q_bf16).
template <bool kBf16>
__global__ void __launch_bounds__(kWgThreads, 2) flash_wgmma_kernel(const __grid_constant__ WgMaps maps, AttentionArgs a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ __align__(8) uint64_t full[kWgStages], empty[kWgStages];
  // (swizzled tiles start on 1024 bytes: the launch asks for 1024 bytes more)
  unsigned char* const base = smem + (1024 - smem_address(smem) % 1024) % 1024;
  unsigned char* const sq = base;                          // [groups][kWgQPart]
  unsigned char* const st = base + kWgGroups * kWgQPart;   // [stages][kWgStage]
  const int tid = int(threadIdx.x), wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int64_t h = blockIdx.y, kvh = h / (a.heads / a.kv_heads), hd = a.head_dim, qw = a.heads * hd;
  const int tiles = int(a.n_k / kK);
  if (tid == 0) {
    for (int s = 0; s < kWgStages; ++s) barrier_init(&full[s], 1), barrier_init(&empty[s], 4 * kWgGroups);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  // Thread 0 brings the tiles: the first kWgStages now, tile j + 3 at step j once every warp is
  // done with tile j - 1 (the stage it takes).
  auto bring = [&](int j) {
    const int s = j % kWgStages, x = int(kvh * hd), y = j * kK;
    unsigned char* const d = st + s * kWgStage;
    barrier_expect(&full[s], unsigned(kWgStage));
    tma_2d(d, &maps.ka, x, y, &full[s]);
    tma_2d(d + kWgKA, &maps.kb, x + 64, y, &full[s]);
    tma_2d(d + kWgKA + kWgKB, &maps.va, x, y, &full[s]);
    tma_2d(d + kWgKA + kWgKB + kWgVA, &maps.vb, x + 64, y, &full[s]);
  };
  if (tid == 0)
    for (int j = 0; j < min(tiles, kWgStages); ++j) bring(j);
  // This group's 64 rows of q (scaled by scale * log2 e, in the operands' type), zeros past
  // head_dim and n_q, swizzled as TMA would: 16-byte chunk c of row r at c ^ (r & 7) (128-byte
  // rows) or c ^ ((r >> 2) & 1) (32-byte rows).
  const int64_t q0 = int64_t(blockIdx.x) * kWgQ + wg * 64;
  unsigned char* const sqw = sq + wg * kWgQPart;
  const float q_scale = base2_q_scale(a);
  for (int i = tid & 127; i < 64 * 10; i += 128) {
    const int row = i / 10, c = i - row * 10;
    uint32_t packed[4] = {0, 0, 0, 0};
    if (q0 + row < a.n_q && c < 9) {
      const int64_t at = (q0 + row) * qw + h * hd + c * 8;
      if constexpr (kBf16) {
        const uint4 raw = *reinterpret_cast<const uint4*>(static_cast<const __nv_bfloat16*>(a.q_bf16) + at);
        const __nv_bfloat162* src = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float2 f = __bfloat1622float2(src[e]);
          packed[e] = pack_pair<true>(f.x * q_scale, f.y * q_scale);
        }
      } else {
        const float2* src = reinterpret_cast<const float2*>(a.q + at);
#pragma unroll
        for (int e = 0; e < 4; ++e) packed[e] = pack_f16(src[e].x * q_scale, src[e].y * q_scale);
      }
    }
    unsigned char* const d = c < 8 ? sqw + row * 128 + ((c ^ (row & 7)) * 16)
                                   : sqw + kWgKA + row * 32 + (((c - 8) ^ ((row >> 2) & 1)) * 16);
    *reinterpret_cast<uint4*>(d) = make_uint4(packed[0], packed[1], packed[2], packed[3]);
  }
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");  // (st.shared -> wgmma)
  asm volatile("bar.sync %0, 128;" ::"r"(1 + wg) : "memory");
  auto qk = [&](float (&s)[1][8][4], int stage) {
    const unsigned char* const d = st + stage * kWgStage;
    fence_regs(s[0]);
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < 4; ++ks)
      wgmma_qk<kBf16>(s[0], wg_desc(sqw + ks * 32, 16, 1024, 1), wg_desc(d + ks * 32, 16, 1024, 1), ks > 0);
    wgmma_qk<kBf16>(s[0], wg_desc(sqw + kWgKA, 16, 256, 3), wg_desc(d + kWgKA, 16, 256, 3), 1);
    wgmma_commit();
    fence_regs(s[0]);
  };
  float o[1][9][4], m[1][2] = {{-INFINITY, -INFINITY}}, l[1][2] = {{0.0f, 0.0f}};
#pragma unroll
  for (int v = 0; v < 9; ++v) o[0][v][0] = o[0][v][1] = o[0][v][2] = o[0][v][3] = 0.0f;
  float sa[1][8][4], sb[1][8][4];
  barrier_wait(&full[0], 0);
  qk(sa, 0);
  wgmma_wait<0>();
  // cur: the scores of tile j.
  auto step = [&](float (&cur)[1][8][4], float (&nxt)[1][8][4], int j) {
    // (after the last tile too, on whatever its stage holds: the same groups every step, which
    // ptxas needs to see that no accumulator is read while a wgmma writes it)
    const int s = (j + 1) % kWgStages;
    if (j + 1 < tiles) barrier_wait(&full[s], unsigned((j + 1) / kWgStages) & 1u);
    qk(nxt, s);
    if (j > 0 && lane == 0) barrier_arrive(&empty[(j - 1) % kWgStages]);  // this warp is done with tile j - 1
    if (tid == 0 && j > 0 && j + kWgStages - 1 < tiles) {
      barrier_wait(&empty[(j - 1) % kWgStages], unsigned((j - 1) / kWgStages) & 1u);
      bring(j + kWgStages - 1);
    }
    uint32_t ph[1][8][2];
    tile_softmax<9, 1, true, kBf16>(cur, ~0u, m, l, o, ph);
    fence_regs(o[0]);
    wgmma_fence();
    const unsigned char* const va = st + (j % kWgStages) * kWgStage + kWgKA + kWgKB;
    const unsigned char* const vb = va + kWgVA;
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      const uint32_t p[4] = {ph[0][2 * kk][0], ph[0][2 * kk][1], ph[0][2 * kk + 1][0], ph[0][2 * kk + 1][1]};
      // V transposed (dims the contiguous N): 16 keys are two 1024-byte atoms along K (sbo);
      // N = 64 is one atom (lbo unused)
      wgmma_pv64<kBf16>(reinterpret_cast<float(&)[8][4]>(o[0][0]), p, wg_desc(va + kk * 2048, 8192, 1024, 1));
      wgmma_pv8<kBf16>(o[0][8], p, wg_desc(vb + kk * 256, 128, 128, 0));
    }
    wgmma_commit();
    wgmma_wait<0>();  // q k^T of tile j + 1 and P V of tile j
  };
  for (int j = 0; j < tiles; j += 2) {  // (an even number of tiles)
    step(sa, sb, j);
    step(sb, sa, j + 1);
  }
  wgmma_wait<0>();
  const int64_t qr = q0 + warp * 16;
  bool row_in[1][2] = {{qr + g < a.n_q, qr + g + 8 < a.n_q}};
  store_o<9, 1>(a, qr, h, g, t, row_in, l, o);
#else
  __trap();  // (launched only where compiled for sm_90a)
#endif
}

// Columns [x, x + box) of rows [y, y + 64) of a [n_k][kw] f16 (or bf16) matrix as a 2-d tensor
// map with the given swizzle (reading past the last column gives zeros).
bool encode_map(CUtensorMap* map, const void* base, bool bf16, int64_t kw, int64_t n_k, int box,
                CUtensorMapSwizzle swizzle) {
  static PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult status{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &status) != cudaSuccess ||
        status != cudaDriverEntryPointSuccess)
      fn = nullptr;
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  if (!encode) return false;
  const cuuint64_t dims[2] = {cuuint64_t(kw), cuuint64_t(n_k)}, strides[1] = {cuuint64_t(kw * 2)};
  const cuuint32_t boxes[2] = {cuuint32_t(box), cuuint32_t(kK)}, unit[2] = {1, 1};
  const auto type = bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  return encode(map, type, 2, const_cast<void*>(base), dims, strides, boxes, unit, CU_TENSOR_MAP_INTERLEAVE_NONE,
                swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}
#endif  // UNICORN_CUDA_WGMMA
}  // namespace

bool flash_attention_supported(int64_t head_dim) { return head_dim % 8 == 0 && head_dim <= 128; }

bool flash_wgmma_built() {
#if defined(UNICORN_CUDA_WGMMA)
  return true;
#else
  return false;
#endif
}

bool flash_attention(const AttentionArgs& a, bool wgmma, cudaStream_t stream) {
  const bool bf16 = a.kv_bf16 && a.q_bf16;  // the wgmma kernel only
  // (a tile's offsets in 32 bits)
  if ((!a.kv_f16 && !bf16) || !flash_attention_supported(a.head_dim) || a.kv_heads * a.head_dim * kK > INT32_MAX)
    return false;
  if (a.n_q == 0) return true;
#if defined(UNICORN_CUDA_WGMMA)
  WgMaps maps;
  const int64_t kw = a.kv_heads * a.head_dim;
  if (wgmma && a.every_key && a.head_dim == 72 && a.n_k % (2 * kK) == 0 &&
      encode_map(&maps.ka, a.k, bf16, kw, a.n_k, 64, CU_TENSOR_MAP_SWIZZLE_128B) &&
      encode_map(&maps.kb, a.k, bf16, kw, a.n_k, 16, CU_TENSOR_MAP_SWIZZLE_32B) &&
      encode_map(&maps.va, a.v, bf16, kw, a.n_k, 64, CU_TENSOR_MAP_SWIZZLE_128B) &&
      encode_map(&maps.vb, a.v, bf16, kw, a.n_k, 8, CU_TENSOR_MAP_SWIZZLE_NONE)) {
    auto go = [&](auto kernel) {
      constexpr size_t bytes = kWgBytes + 1024;
      UNICORN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
      const dim3 grid{unsigned((a.n_q + kWgQ - 1) / kWgQ), unsigned(a.heads)};
      kernel<<<grid, kWgThreads, bytes, stream>>>(maps, a);
      UNICORN_CUDA_LAUNCHED();
    };
    if (bf16)
      go(flash_wgmma_kernel<true>);
    else
      go(flash_wgmma_kernel<false>);
    return true;
  }
#else
  (void)wgmma;
#endif
  if (bf16) return false;
  if (a.head_dim <= 32)
    launch_flash<32>(a, stream);
  else if (a.head_dim <= 64)
    launch_flash<64>(a, stream);
  else if (a.head_dim == 72)  // SigLIP
    launch_flash<80, 9>(a, stream);
  else if (a.head_dim <= 80)
    launch_flash<80>(a, stream);
  else
    launch_flash<128>(a, stream);
  return true;
}

}  // namespace unicorn::cuda
